"""A fake Spotify on loopback: token endpoint, playlist Web API and short links, with faults.

It is a real aiohttp server in its own thread and event loop, so spotipy reaches it over real
sockets. Tests fill it with playlists, switch faults on, and read its counters:

    with FakeSpotify() as fake:
        fake.add_playlist("p" * 22, "Road trip", [track_entry("t" * 22)])
        fake.fail(429, retry_after=300)
        ...
        assert fake.token_calls == 1
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
MAX_PAGE = 100
EntryKey = Literal["item", "track", "both"]
Target = Literal["api", "token", "playlist", "items"]


def track_entry(track_id: str, *, linked_from: str | None = None) -> dict[str, Any]:
    """A playlist entry holding a track; `linked_from` makes it a relinked copy of that id."""
    track: dict[str, Any] = {
        "type": "track",
        "id": track_id,
        "uri": f"spotify:track:{track_id}",
        "name": f"Track {track_id}",
        "is_local": False,
    }
    if linked_from is not None:
        track["linked_from"] = {
            "type": "track",
            "id": linked_from,
            "uri": f"spotify:track:{linked_from}",
        }
    return {"is_local": False, "track": track}


def local_entry(name: str) -> dict[str, Any]:
    """A local file: no id, a `spotify:local:` URI and `is_local` set."""
    uri = f"spotify:local:Someone:Somewhere:{name}:180"
    track = {"type": "track", "id": None, "uri": uri, "name": name, "is_local": True}
    return {"is_local": True, "track": track}


def episode_entry(episode_id: str) -> dict[str, Any]:
    """A podcast episode."""
    episode = {"type": "episode", "id": episode_id, "uri": f"spotify:episode:{episode_id}"}
    return {"is_local": False, "track": episode}


REMOVED_ENTRY: dict[str, Any] = {"is_local": False, "track": None}
"""An entry whose track was removed from Spotify: the entry is there, its track is null."""


@dataclass
class Fault:
    """Answer the next `times` matching requests with `status`, or delay them by `delay`."""

    target: Target
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class FakePlaylist:
    playlist_id: str
    name: str
    entries: list[dict[str, Any] | None] = field(default_factory=list)


class FakeSpotify:
    """The fake server; see the module docstring. Counters are safe to read from tests."""

    def __init__(self) -> None:
        self.playlists: dict[str, FakePlaylist] = {}
        self.redirects: dict[str, str] = {}
        self.entry_key: EntryKey = "item"
        self.token_expires_in = 3600
        self.token_calls = 0
        self.api_paths: list[str] = []
        self._tokens: set[str] = set()
        self._counter = itertools.count(1)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/token"

    def short_link(self, code: str) -> str:
        return f"{self.base_url}/r/{code}"

    def add_playlist(
        self, playlist_id: str, name: str, entries: Sequence[dict[str, Any] | None]
    ) -> None:
        self.playlists[playlist_id] = FakePlaylist(playlist_id, name, list(entries))

    def fail(
        self,
        status: int,
        *,
        target: Target = "api",
        retry_after: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `target` with `status` (and a Retry-After)."""
        with self._lock:
            self._faults.append(Fault(target, status, retry_after, times=times))

    def slow(self, seconds: float, *, target: Target = "api", times: int = 1) -> None:
        """Hold the next `times` requests to `target` for `seconds` before answering."""
        with self._lock:
            self._faults.append(Fault(target, delay=seconds, times=times))

    def expire_tokens(self) -> None:
        """Make every token handed out so far invalid, as Spotify does when one expires."""
        with self._lock:
            self._tokens.clear()

    def items_requests(self) -> int:
        return sum(1 for path in self.api_paths if path.endswith(("/items", "/tracks")))

    def start(self) -> FakeSpotify:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Spotify did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeSpotify:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._faults_middleware])
        app.router.add_post("/api/token", self._token)
        app.router.add_get("/v1/playlists/{playlist_id}", self._playlist)
        app.router.add_get("/v1/playlists/{playlist_id}/{kind:items|tracks}", self._items)
        app.router.add_get("/r/{code}", self._redirect)
        # A short shutdown: a slow answer still sleeping must not hold up the test run.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        # Slow answers may still be sleeping; end them so the loop closes cleanly.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _take_fault(self, target: Target) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.target == target:
                    fault.times -= 1
                    return fault
        return None

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        targets = _targets_of(request)
        if "api" in targets:
            self.api_paths.append(request.path)
        if "token" in targets:
            self.token_calls += 1
        for target in targets:
            fault = self._take_fault(target)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            elif fault is not None:
                return _fault_response(fault)
        try:
            response: web.StreamResponse = await handler(request)
        except _ApiError as exc:
            body = {"error": {"status": exc.status, "message": str(exc)}}
            return web.json_response(body, status=exc.status)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"token-{next(self._counter)}"
        with self._lock:
            self._tokens.add(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_expires_in}
        return web.json_response(body)

    def _check(self, request: web.Request) -> FakePlaylist:
        header = request.headers.get("Authorization", "")
        with self._lock:
            valid = header.removeprefix("Bearer ") in self._tokens
        if not valid:
            raise _ApiError(401, "The access token expired")
        playlist = self.playlists.get(request.match_info["playlist_id"])
        if playlist is None:
            raise _ApiError(404, "Resource not found")
        return playlist

    async def _playlist(self, request: web.Request) -> web.Response:
        playlist = self._check(request)
        # Since 2026 a playlist read by an app carries its metadata and a bare `items` summary.
        items = {"href": f"{request.url}/items", "total": len(playlist.entries)}
        body = {
            "id": playlist.playlist_id,
            "name": playlist.name,
            "type": "playlist",
            "uri": f"spotify:playlist:{playlist.playlist_id}",
            "items": items,
        }
        return web.json_response(body)

    async def _items(self, request: web.Request) -> web.Response:
        playlist = self._check(request)
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", str(MAX_PAGE)))
        except ValueError:
            raise _ApiError(400, "Invalid offset or limit") from None
        if not 0 < limit <= MAX_PAGE or offset < 0:
            raise _ApiError(400, "Invalid limit")
        total = len(playlist.entries)
        page = [self._shape(entry) for entry in playlist.entries[offset : offset + limit]]
        following = offset + limit
        next_url = str(request.url.update_query(offset=following)) if following < total else None
        body = {
            "href": str(request.url),
            "items": page,
            "limit": limit,
            "offset": offset,
            "total": total,
            "next": next_url,
            "previous": None,
        }
        return web.json_response(body)

    def _shape(self, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        if entry is None or self.entry_key == "track":
            return entry
        shaped = dict(entry)
        shaped["item"] = shaped["track"]
        if self.entry_key == "item":
            del shaped["track"]
        return shaped

    async def _redirect(self, request: web.Request) -> web.Response:
        location = self.redirects.get(request.match_info["code"])
        if location is None:
            raise _ApiError(404, "No such link")
        return web.Response(status=307, headers={"Location": location})


def _targets_of(request: web.Request) -> list[Target]:
    if request.path == "/api/token":
        return ["token"]
    if request.path.startswith("/v1/playlists/"):
        kind: Target = "items" if request.path.endswith(("/items", "/tracks")) else "playlist"
        return ["api", kind]
    return []


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _fault_response(fault: Fault) -> web.Response:
    body: dict[str, Any] = {"error": {"status": fault.status, "message": "Injected fault"}}
    if fault.target == "token":
        body = {"error": "server_error", "error_description": "Injected fault"}
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return web.json_response(body, status=fault.status, headers=headers)


def running() -> Iterator[FakeSpotify]:
    """Generator for a pytest fixture: a started fake, stopped after the test."""
    with FakeSpotify() as fake:
        yield fake
