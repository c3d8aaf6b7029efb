"""Reading Spotify playlists for the bot: spotipy with client credentials, bounded in time.

Everything here blocks, so the bot runs it in an executor. Every failure a member can cause or
meet becomes a `SpotifyError` whose `str()` is one reply for them; `LinkError` (from
`recommender.links`) still means the text was not a playlist link.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import spotipy
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from spotipy.exceptions import SpotifyOauthError

from recommender.links import LinkError, ShortLinkError, parse_playlist_ref, parse_track_ref
from recommender.text import one_line

log = logging.getLogger(__name__)

T = TypeVar("T")
SkipReason = Literal["null", "local", "episode", "other"]

# Spotify's own playlists (Discover Weekly, the editorial lists) all have ids starting with this;
# since November 2024 the Web API answers 404 for them to apps like this one.
SPOTIFY_MADE_PREFIX = "37i9dQZ"
# The largest page the playlist items endpoint serves.
PAGE_SIZE = 100
# A 429 without a Retry-After is treated as asking for this long.
DEFAULT_RETRY_AFTER = 10.0
DESTINATION_HOST = "open.spotify.com"


class SpotifyError(Exception):
    """A Spotify failure with a reply for the member: `str(error)` is that reply."""


class PlaylistForbidden(SpotifyError):  # noqa: N818 (named for what happened)
    """Spotify refused to let this app read the playlist (403)."""

    def __init__(self) -> None:
        super().__init__(
            "Spotify would not let me read that playlist. While this bot's Spotify app is in "
            "development mode, it can only read playlists made by the app's owner. Send me "
            "track links instead, or upload an export of the playlist."
        )


class PlaylistNotFound(SpotifyError):  # noqa: N818 (named for what happened)
    """Spotify does not show this playlist to the app (404): missing, private or Spotify's own."""

    def __init__(self, playlist_id: str) -> None:
        if playlist_id.startswith(SPOTIFY_MADE_PREFIX):
            message = (
                "That playlist is made by Spotify (like Discover Weekly or its editorial "
                "lists), and Spotify no longer lets apps read those. Copy its tracks into a "
                "playlist of your own, or send me track links or an uploaded export."
            )
        else:
            message = (
                "I could not find that playlist. It may be private or deleted, or the link may "
                "be incomplete."
            )
        super().__init__(message)
        self.playlist_id = playlist_id


class RateLimited(SpotifyError):  # noqa: N818 (named for what happened)
    """Spotify asked us to slow down for `retry_after` seconds (429)."""

    def __init__(self, retry_after: float) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            "Spotify is limiting how often I can ask it right now; "
            f"try again in about {minutes} {unit}."
        )
        self.retry_after = retry_after


class SpotifyUnavailable(SpotifyError):  # noqa: N818 (named for what happened)
    """Spotify failed (5xx), was unreachable, or too slow, even after retrying."""

    def __init__(self, detail: str = "is not answering properly") -> None:
        super().__init__(f"Spotify {detail} right now; please try again in a few minutes.")


class SpotifyAuthError(SpotifyError):
    """The bot's client id or secret was refused: something for the admin, not the member."""

    def __init__(self) -> None:
        super().__init__("The bot's Spotify credentials were refused; please tell a server admin.")


@dataclass(frozen=True)
class SpotifyEndpoints:
    """Where Spotify lives; tests point these at a fake server on loopback."""

    api_url: str = "https://api.spotify.com/v1/"
    token_url: str = "https://accounts.spotify.com/api/token"
    short_link_hosts: frozenset[str] = frozenset({"spotify.link", "spotify.app.link"})


@dataclass(frozen=True)
class SpotifyLimits:
    """Time limits, in seconds; see `SpotifyClient` for the bound they give."""

    request_timeout: float = 5.0
    call_budget: float = 25.0
    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 5.0
    max_redirects: int = 5


@dataclass
class PlaylistRead:
    """What one playlist gave: the track ids the model should see, and what was left out.

    `track_ids` are in playlist order, duplicates kept. For a relinked track (Spotify plays
    another copy of it in the configured market) the id is the one stored in the playlist and
    `alternate_ids` maps it to the copy's id, so a catalogue that knows only one can use it.
    `total` is every item in the playlist; `skipped` counts the items read but not used, by
    reason; `capped` says the cap stopped reading before the end.
    """

    playlist_id: str
    name: str
    track_ids: list[str] = field(default_factory=list)
    alternate_ids: dict[str, str] = field(default_factory=dict)
    total: int = 0
    skipped: dict[SkipReason, int] = field(default_factory=dict)
    capped: bool = False

    @property
    def used(self) -> int:
        return len(self.track_ids)


class _LockedCredentials(spotipy.SpotifyClientCredentials):
    """Client credentials whose token is fetched by one thread at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def get_access_token(self, as_dict: bool = False, check_cache: bool = True) -> Any:
        with self._lock:
            return super().get_access_token(as_dict=as_dict, check_cache=check_cache)

    def forget_token(self) -> None:
        with self._lock:
            self.cache_handler.save_token_to_cache(None)


class SpotifyClient:
    """Reads playlists and resolves short links; safe to share between executor threads.

    Bound: a public call returns or raises within about `call_budget + 2 * request_timeout`
    seconds (35 s with the defaults): requests and waits stop once `call_budget` is spent, a
    request started just before that may use one `request_timeout`, and a token fetch inside it
    another. This assumes a server that answers within the timeout once it starts to; `requests`
    cannot bound a response that keeps trickling bytes.

    Each request gets `request_timeout`; 5xx answers and timeouts are retried `retries` times
    with doubling backoff. A 429 with a Retry-After up to `max_retry_after` is waited out once;
    a longer one raises `RateLimited` and pauses every call on this client until it is over,
    without asking Spotify. spotipy's own retries are off so that no wait happens unseen.

    >>> client = SpotifyClient(client_id, client_secret, market="SE")
    >>> read = client.read_playlist("https://open.spotify.com/playlist/<id>", cap=500)
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        endpoints: SpotifyEndpoints | None = None,
        limits: SpotifyLimits | None = None,
        market: str | None = None,
        cache_handler: CacheHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoints = endpoints or SpotifyEndpoints()
        self.limits = limits or SpotifyLimits()
        self.market = market
        self._clock = clock
        self._sleep = sleep
        # A memory cache: spotipy's default writes the token to a `.cache` file in the cwd.
        self._credentials = _LockedCredentials(
            client_id,
            client_secret,
            requests_session=requests.Session(),
            requests_timeout=self.limits.request_timeout,
            cache_handler=cache_handler or MemoryCacheHandler(),
        )
        self._credentials.OAUTH_TOKEN_URL = self.endpoints.token_url
        _quiet_spotipy_debug()
        self._local = threading.local()
        self._pause_lock = threading.Lock()
        self._paused_until = 0.0

    def read_playlist(self, ref: str, cap: int) -> PlaylistRead:
        """Read up to `cap` usable tracks of the playlist a link, URI, id or short link names.

        Raises `LinkError` for text that is not a playlist link, `SpotifyError` otherwise.
        """
        if cap < 1:
            raise ValueError(f"cap must be at least 1, not {cap}")
        deadline = self._clock() + self.limits.call_budget
        playlist_id = self._playlist_id(ref, deadline)

        meta = self._call(
            lambda sp: sp.playlist(playlist_id, market=self.market), deadline, playlist_id
        )
        # The name is the answer's title: kept to one printable line, as uploads' names are.
        name = one_line(str(_as_dict(meta, playlist_id).get("name") or ""))
        read = PlaylistRead(playlist_id, name)
        self._read_items(read, cap, deadline)

        log.debug(
            "playlist %s: used %d of %d, skipped %s",
            playlist_id,
            read.used,
            read.total,
            read.skipped,
        )
        return read

    def resolve_short_link(self, url: str) -> str:
        """Follow a short link's redirects to an open.spotify.com playlist; return its id.

        Only hosts in `endpoints.short_link_hosts` are fetched; the destination is parsed, not
        opened. Raises `LinkError` for any other destination, `SpotifyUnavailable` on failure.
        """
        return self._resolve(url, self._clock() + self.limits.call_budget)

    def _playlist_id(self, ref: str, deadline: float) -> str:
        try:
            return parse_playlist_ref(ref)
        except ShortLinkError as short:
            return self._resolve(short.url, deadline)

    def _resolve(self, url: str, deadline: float) -> str:
        current = url
        for _ in range(self.limits.max_redirects + 1):
            parts = urlsplit(current)
            host = (parts.hostname or "").lower()
            if host == DESTINATION_HOST and parts.scheme == "https":
                return parse_playlist_ref(current)
            if host not in self.endpoints.short_link_hosts:
                raise LinkError("that short link does not lead to a Spotify playlist")
            current = urljoin(current, self._redirect_target(current, deadline))
        raise LinkError("that short link redirects too many times")

    def _read_items(self, read: PlaylistRead, cap: int, deadline: float) -> None:
        # TODO: thousands of skipped items (local files) can spend the whole budget before the
        # cap is reached; that fails the call rather than answering with the tracks read so far.
        seen = 0
        playlist_id = read.playlist_id
        page = self._call(partial(self._items_page, playlist_id=playlist_id), deadline, playlist_id)
        while True:
            page = _as_dict(page, read.playlist_id)
            entries = page.get("items") or []
            read.total = int(page.get("total") or 0)
            for entry in entries:
                seen += 1
                _add_entry(read, entry)
                if read.used >= cap:
                    read.capped = seen < read.total
                    return
            next_url = page.get("next")
            if not next_url or not entries:
                return
            fetch = partial(self._next_page, page=page, playlist_id=playlist_id, offset=seen)
            page = self._call(fetch, deadline, playlist_id)

    def _items_page(self, sp: spotipy.Spotify, playlist_id: str, offset: int = 0) -> Any:
        return sp.playlist_items(playlist_id, limit=PAGE_SIZE, offset=offset, market=self.market)

    def _next_page(
        self, sp: spotipy.Spotify, page: dict[str, Any], playlist_id: str, offset: int
    ) -> Any:
        # Follow `next` only back to our own API: the bearer token goes wherever it points.
        if str(page["next"]).startswith(self.endpoints.api_url):
            return sp.next(page)
        return self._items_page(sp, playlist_id, offset)

    def _call(
        self, request: Callable[[spotipy.Spotify], T], deadline: float, playlist_id: str
    ) -> T:
        attempt = _Attempt()
        while True:
            self._wait_for_pause(attempt, deadline)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise SpotifyUnavailable("is taking too long to answer")
            try:
                return request(self._spotify(min(self.limits.request_timeout, remaining)))
            except (spotipy.SpotifyException, SpotifyOauthError, requests.RequestException) as exc:
                delay = self._after_failure(exc, attempt, playlist_id)
            if delay and self._clock() + delay >= deadline:
                raise SpotifyUnavailable("is taking too long to answer")
            if delay:
                self._sleep(delay)

    def _after_failure(self, exc: Exception, attempt: _Attempt, playlist_id: str) -> float:
        """Return how long to wait before trying again, or raise the error for the member."""
        status, headers = _status_of(exc)
        if status == 401 and not attempt.refreshed:
            attempt.refreshed = True
            self._credentials.forget_token()
            return 0.0
        if status == 429:
            self._pause(_retry_after(headers))
            return 0.0
        if status is not None and status < 500:
            raise _client_error(status, exc, playlist_id) from exc
        attempt.failures += 1
        log.warning(
            "Spotify failed (%s), attempt %d", status or type(exc).__name__, attempt.failures
        )
        if attempt.failures > self.limits.retries:
            raise SpotifyUnavailable(_failure_detail(status, exc)) from exc
        return self.limits.backoff * 2 ** (attempt.failures - 1)

    def _pause(self, seconds: float) -> None:
        with self._pause_lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        log.warning("Spotify rate limit: pausing calls for %.0f s", seconds)

    def _wait_for_pause(self, attempt: _Attempt, deadline: float) -> None:
        with self._pause_lock:
            left = self._paused_until - self._clock()
        if left <= 0:
            return
        fits = self._clock() + left < deadline
        if attempt.waited or left > self.limits.max_retry_after or not fits:
            raise RateLimited(left)
        attempt.waited = True
        self._sleep(left)

    def _spotify(self, timeout: float) -> spotipy.Spotify:
        # One spotipy client (and requests session) per thread; they share the token. The plain
        # session does not retry: spotipy's own retrying session sleeps through any Retry-After.
        sp: spotipy.Spotify | None = getattr(self._local, "spotify", None)
        if sp is None:
            sp = spotipy.Spotify(
                auth_manager=self._credentials, requests_session=requests.Session()
            )
            sp.prefix = self.endpoints.api_url
            self._local.spotify = sp
        sp.requests_timeout = timeout
        return sp

    def _redirect_target(self, url: str, deadline: float) -> str:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise SpotifyUnavailable("is taking too long to open that short link")
        try:
            response = requests.get(
                url, allow_redirects=False, timeout=min(self.limits.request_timeout, remaining)
            )
            response.close()
        except requests.RequestException as exc:
            raise SpotifyUnavailable("could not open that short link") from exc
        location = response.headers.get("Location")
        if not response.is_redirect or not location:
            raise LinkError("that short link does not lead to a Spotify playlist")
        return location


@dataclass
class _Attempt:
    failures: int = 0
    refreshed: bool = False
    waited: bool = False


def _add_entry(read: PlaylistRead, entry: Any) -> None:
    reason, track_id, alternate = _classify(entry)
    if reason is not None:
        read.skipped[reason] = read.skipped.get(reason, 0) + 1
        return
    assert track_id is not None
    read.track_ids.append(track_id)
    if alternate is not None:
        read.alternate_ids[track_id] = alternate


def _classify(entry: Any) -> tuple[SkipReason | None, str | None, str | None]:
    """Return (skip reason, track id, relinked copy's id) for one playlist item."""
    if not isinstance(entry, dict):
        return "null", None, None
    # Spotify renamed `track` to `item` in 2026; either may come, or both.
    thing = entry.get("item") or entry.get("track")
    if not isinstance(thing, dict):
        return "null", None, None
    if entry.get("is_local") or thing.get("is_local") or _is_local_uri(thing.get("uri")):
        return "local", None, None
    if thing.get("type") == "episode" or thing.get("episode") is True:
        return "episode", None, None
    if thing.get("type", "track") != "track":
        return "other", None, None
    playable = _valid_id(thing.get("id"))
    if playable is None:
        return "null", None, None
    linked = thing.get("linked_from")
    original = _valid_id(linked.get("id")) if isinstance(linked, dict) else None
    if original is None or original == playable:
        return None, playable, None
    return None, original, playable


def _is_local_uri(uri: Any) -> bool:
    return isinstance(uri, str) and uri.startswith("spotify:local:")


def _valid_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_track_ref(value)
    except LinkError:
        return None


def _as_dict(answer: Any, playlist_id: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        log.warning("Spotify sent something that is not JSON for playlist %s", playlist_id)
        raise SpotifyUnavailable("sent an answer I could not read")
    return answer


def _status_of(exc: Exception) -> tuple[int | None, Mapping[str, str]]:
    """HTTP status and headers behind a spotipy or requests error; (None, {}) when none."""
    if isinstance(exc, spotipy.SpotifyException):
        return exc.http_status, exc.headers or {}
    if isinstance(exc, SpotifyOauthError):
        # spotipy raises this while handling the token endpoint's HTTPError, which keeps them.
        cause = exc.__context__
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            return cause.response.status_code, cause.response.headers
        return 400, {}
    return None, {}


def _failure_detail(status: int | None, exc: Exception) -> str:
    if status is not None:
        return "is not answering properly"
    if isinstance(exc, requests.Timeout):
        return "is taking too long to answer"
    return "is not reachable"


def _client_error(status: int, exc: Exception, playlist_id: str) -> SpotifyError:
    if isinstance(exc, SpotifyOauthError) or status == 401:
        log.error("Spotify refused the client credentials (%d)", status)
        return SpotifyAuthError()
    if status == 403:
        return PlaylistForbidden()
    if status in (400, 404):
        return PlaylistNotFound(playlist_id)
    log.error("Spotify answered %d", status)
    return SpotifyUnavailable("refused the request")


def _quiet_spotipy_debug() -> None:
    # spotipy logs request headers at DEBUG: the bearer token and the encoded client secret.
    spotipy_log = logging.getLogger("spotipy")
    if spotipy_log.getEffectiveLevel() < logging.INFO:
        spotipy_log.setLevel(logging.INFO)


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        seconds = float(headers.get("Retry-After", ""))
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if seconds >= 0 else DEFAULT_RETRY_AFTER
