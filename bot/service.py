"""The bot's work, off the event loop: read what a member gave, ask the model, keep history.

Blocking calls (spotipy, file parsing, the database) run in a bounded thread pool; every
recommender call runs in one more thread, the model lane, so Annoy and numpy are never used
from two threads at once. At most ``max_pending`` requests are admitted at a time; past that a
member is told the bot is busy rather than queued without limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from bot.answers import Counts, shorten
from bot.spotify import SpotifyClient
from bot.storage import (
    HistoryStore,
    RequestEntry,
    RequestKind,
    RequestStatus,
    StorageError,
    TrackEntry,
)
from recommender.bundle import load_bundle
from recommender.hybrid import HybridRecommender, RecommendationResult, UnknownTrackError
from recommender.links import LinkError, parse_track_ref, split_links
from recommender.playlist_io import MAX_FILE_BYTES, PlaylistFileError, parse_playlist_text

log = logging.getLogger(__name__)

T = TypeVar("T")

AUTOCOMPLETE_LIMIT = 25
CHOICE_LIMIT = 100
# A /similar answer drops the member's dislikes; this many spares are fetched for them at most.
DISLIKE_SPARES = 200
# History rows kept in memory after failed writes; past this the oldest are dropped.
MAX_UNSAVED = 1000
# Forget cooldown stamps once this many members are remembered (old ones have expired anyway).
_COOLDOWN_PRUNE = 10_000


class ReplyError(Exception):
    """An expected failure whose ``str()`` is the reply for the member."""


class Busy(ReplyError):  # noqa: N818 (named for what the member is told)
    """Too many requests in progress; the member should try again shortly."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "I'm busy with other requests right now; please try again in a minute."
        )


class OnCooldown(ReplyError):  # noqa: N818 (named for what the member is told)
    """The member asked again within the cooldown."""

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(f"Please wait {seconds} s before asking me again.")
        self.retry_after = retry_after


class BadInput(ReplyError):  # noqa: N818 (named for what the member is told)
    """What the member gave cannot be used (nothing given, no tracks in it, unknown track)."""


# Failures caused by what the member typed: they do not cost the member a cooldown.
INPUT_ERRORS = (BadInput, LinkError, PlaylistFileError)


@dataclass(frozen=True)
class Requester:
    """Who asked, and where (``guild_id`` is None in direct messages and the console)."""

    member_id: int
    guild_id: int | None = None
    channel_id: int | None = None


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes


@dataclass(frozen=True)
class Source:
    """What a member gave /recommend: a playlist link, track links, an uploaded file, or some."""

    playlist: str | None = None
    tracks: str | None = None
    upload: Upload | None = None

    def describe(self) -> str:
        """The input as stored in history."""
        filename = self.upload.filename if self.upload else None
        return describe_input(self.playlist, self.tracks, filename)


def describe_input(playlist: str | None, tracks: str | None, filename: str | None) -> str:
    """What a member gave /recommend, as stored in history (a file by its name only)."""
    parts = [playlist, tracks, filename and f"file: {filename}"]
    return "\n".join(part for part in parts if part)


def failed_entry(who: Requester, kind: RequestKind, text: str, error: str) -> RequestEntry:
    """The history row of a request that failed with an expected error (told to the member)."""
    return RequestEntry(
        member_id=who.member_id,
        guild_id=who.guild_id,
        channel_id=who.channel_id,
        kind=kind,
        input_text=text,
        status=RequestStatus.ERROR,
        error=error,
    )


@dataclass(frozen=True)
class Seeds:
    """Track ids read from the member's input and what was left out; see ``Counts``."""

    track_ids: list[str]
    total: int
    skipped: int = 0
    capped: bool = False
    name: str | None = None


@dataclass(frozen=True)
class Answer:
    """A finished answer: the result, display names for its reasons, and its history row."""

    title: str
    result: RecommendationResult
    labels: dict[str, str]
    counts: Counts | None
    entry: RequestEntry


@dataclass(frozen=True)
class ServiceLimits:
    """How much work the service takes on. ``cooldown_seconds`` is per member."""

    workers: int = 4
    max_pending: int = 16
    cooldown_seconds: float = 10.0
    playlist_cap: int = 1000
    max_upload_bytes: int = MAX_FILE_BYTES


class TrackNames:
    """The catalogue's names in memory, sorted for prefix search: autocomplete never waits.

    Only tracks with audio features are offered, since /similar can answer for no others.
    Three sorted orders of those rows (by name, by artist, by "artist - name") and one of every
    named row take 32 bytes a track; a lookup is a binary search, fast with millions of tracks.
    """

    def __init__(self, recommender: HybridRecommender) -> None:
        catalog = recommender.catalog
        content = recommender.content
        self._catalog = catalog
        self._labels = [
            f"{artist} - {name}" if name.strip() and artist.strip() else ""
            for name, artist in zip(catalog.names, catalog.artists, strict=True)
        ]

        def knows(row: int) -> bool:
            return content is not None and content.knows(row)

        known = [row for row in range(len(catalog)) if knows(row)]
        popular = recommender.popular_rows.tolist()
        self._popular = [row for row in popular if knows(row)][:AUTOCOMPLETE_LIMIT]
        self._by_name = _sorted_rows(catalog.names, known)
        self._by_artist = _sorted_rows(catalog.artists, known)
        self._by_label = _sorted_rows(self._labels, known)
        self._all_by_name = _sorted_rows(catalog.names, range(len(catalog)))

    def suggest(self, text: str, limit: int = AUTOCOMPLETE_LIMIT) -> list[tuple[str, str]]:
        """Up to ``limit`` (label, track id) pairs for what the member has typed so far."""
        query = _normal(text)
        rows: dict[int, None] = {}
        pasted = self._pasted_row(text)
        if pasted is not None:
            rows[pasted] = None
        if not query:
            rows.update(dict.fromkeys(self._popular))
        else:
            columns = (self._catalog.names, self._catalog.artists, self._labels)
            orders = (self._by_name, self._by_artist, self._by_label)
            for order, column in zip(orders, columns, strict=True):
                rows.update(dict.fromkeys(_prefixed(order, column, query, limit)))
        return [(self.label(row), self._catalog.track_ids[row]) for row in list(rows)[:limit]]

    def resolve(self, text: str) -> str:
        """The track id a /similar argument means: a link, an id, or a name from the list.

        A name may be the track's alone or "Artist - Name" as answers show it, in any case.
        """
        query = _normal(text)
        if not query:
            raise BadInput("Give me a track link or name.")
        pasted = self._pasted_row(text)
        if pasted is not None:
            return self._catalog.track_ids[pasted]
        names, labels = self._catalog.names, self._labels
        for order, column in ((self._by_name, names), (self._by_label, labels)):
            for row in _prefixed(order, column, query, AUTOCOMPLETE_LIMIT):
                if _normal(column[row]) == query:
                    return self._catalog.track_ids[row]
        for row in _prefixed(self._all_by_name, names, query, AUTOCOMPLETE_LIMIT):
            if _normal(names[row]) == query:
                raise BadInput(
                    "I have no audio features for that track, so I can't tell what sounds like "
                    "it. Try /recommend with its link instead."
                )
        try:
            parse_track_ref(text)
        except LinkError:
            raise BadInput(
                "I don't know a track by that name; pick a suggestion or paste a track link."
            ) from None
        raise BadInput("I don't know that track; it is not in my catalogue.")

    def label(self, row: int) -> str:
        return shorten(self._catalog.label(row), CHOICE_LIMIT)

    def _pasted_row(self, text: str) -> int | None:
        try:
            return self._catalog.index_of(parse_track_ref(text))
        except LinkError:
            return None


class RecommendService:
    """Runs requests for the bot: admission, the pipeline, and history.

    >>> with service.admit(member_id):
    ...     answer = await service.recommend(Requester(member_id), Source(playlist=link), 10)
    """

    def __init__(
        self,
        history: HistoryStore,
        spotify: SpotifyClient | None,
        *,
        limits: ServiceLimits | None = None,
        load: Callable[[Path], HybridRecommender] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.history = history
        self.spotify = spotify
        self.limits = limits or ServiceLimits()
        self.recommender: HybridRecommender | None = None
        self.names: TrackNames | None = None
        self._load = load or _load_recommender
        self._clock = clock
        self.io = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="harmonya-io")
        # One thread: every recommender call runs here, one at a time.
        self.model_lane = ThreadPoolExecutor(1, thread_name_prefix="harmonya-model")
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._last_request: dict[int, float] = {}
        self._parse_lock = threading.Lock()
        # History rows whose write failed, retried before the next write; see ``record``.
        self._unsaved: list[RequestEntry] = []
        self._write_lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()

    async def load_model(self, path: Path) -> None:
        """Load the bundle at ``path`` (once, at start-up) and index its names."""
        recommender = await self._run(self.model_lane, self._load, path)
        self.names = await self._run(self.io, TrackNames, recommender)
        self.recommender = recommender

    async def run_io(self, function: Callable[..., T], *args: object) -> T:
        """Run a blocking call in the service's thread pool."""
        return await self._run(self.io, function, *args)

    @contextmanager
    def admit(self, member_id: int) -> Iterator[None]:
        """Hold one of ``max_pending`` slots for a request; raises Busy or OnCooldown."""
        if self._closing:
            raise Busy("I'm restarting; please try again in a minute.")
        now = self._clock()
        last = self._last_request.get(member_id)
        cooldown = self.limits.cooldown_seconds
        if last is not None and now - last < cooldown:
            raise OnCooldown(cooldown - (now - last))
        if self._pending >= self.limits.max_pending:
            log.warning("busy: %d in progress, member %d refused", self._pending, member_id)
            raise Busy()
        self._remember(member_id, now)
        self._pending += 1
        self._idle.clear()
        try:
            yield
        except INPUT_ERRORS:
            if self._last_request.get(member_id) == now:
                del self._last_request[member_id]
            raise
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def recommend(self, who: Requester, source: Source, count: int) -> Answer:
        """Recommend ``count`` tracks for what the member gave, minus their dislikes."""
        self._model()
        seeds = await self._read_seeds(source)
        if not seeds.track_ids:
            raise BadInput(
                f"I found no Spotify tracks to use: {seeds.skipped} of {seeds.total} entries "
                "were local files, episodes, removed tracks or not track links."
            )
        disliked = await self._disliked(who.member_id)
        result, labels = await self._run(
            self.model_lane, self._recommend_blocking, seeds.track_ids, count, disliked, seeds.name
        )
        if not result.items:
            raise BadInput("I have nothing to recommend for those tracks, sorry.")
        unknown = len(result.unknown)
        repeats = max(0, len(seeds.track_ids) - result.seeds)
        used = result.seeds - unknown
        counts = Counts(used, seeds.total, seeds.skipped, unknown, seeds.capped, repeats)
        title = f"Tracks for {seeds.name}" if seeds.name else "Tracks for you"
        entry = _entry(who, RequestKind.RECOMMEND, source.describe(), result, counts)
        return Answer(title, result, labels, counts, entry)

    async def similar(self, who: Requester, track: str, count: int) -> Answer:
        """Tracks that sound like ``track`` (a link, an id or a catalogue name)."""
        self._model()
        assert self.names is not None
        track_id = self.names.resolve(track)
        disliked = await self._disliked(who.member_id)
        result, labels = await self._run(
            self.model_lane, self._similar_blocking, track_id, count, disliked
        )
        title = f"Sounds like {labels.get(track_id, track_id)}"
        entry = _entry(who, RequestKind.SIMILAR, track, result, Counts(1, 1))
        return Answer(title, result, labels, None, entry)

    def suggest(self, text: str) -> list[tuple[str, str]]:
        """Autocomplete for /similar from the catalogue in memory; [] before the model loads."""
        return self.names.suggest(text) if self.names is not None else []

    async def record(self, entry: RequestEntry) -> None:
        """Store a request's history row; a failure is logged and the row kept to retry.

        Rows kept from earlier failures are written first, so one successful write stores
        them all; ``close`` tries them once more.
        """
        async with self._write_lock:
            pending = [*self._unsaved, entry]
            self._unsaved.clear()
            for done, row in enumerate(pending):
                try:
                    await self._run(self.io, self.history.record_request, row)
                except StorageError as error:
                    self._keep_unsaved(pending[done:])
                    log.error(
                        "history of member %d not stored (%d rows kept to retry): %s",
                        row.member_id,
                        len(self._unsaved),
                        error,
                    )
                    return
                except Exception:
                    log.exception("history of member %d not stored", row.member_id)

    async def settle(self, *, forget: int | None = None) -> None:
        """Wait for the history writes in progress; drop rows kept for member ``forget``."""
        while self._writes:
            await asyncio.wait(set(self._writes))
        if forget is not None:
            self._unsaved = [row for row in self._unsaved if row.member_id != forget]

    def record_soon(self, entry: RequestEntry) -> None:
        """``record`` in the background: a slow or locked database holds up no answer."""
        task = asyncio.get_running_loop().create_task(self.record(entry))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self, timeout: float) -> None:
        """Refuse new requests and wait up to ``timeout`` s for those in progress."""
        self._closing = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
                await self.settle()
        except TimeoutError:
            log.warning(
                "%d requests and %d history writes still in progress at shutdown",
                self._pending,
                len(self._writes),
            )

    def close(self) -> None:
        """Stop the threads, store rows kept from failed writes, close the database.

        Call after ``drain``.
        """
        self._closing = True
        self.io.shutdown(wait=True, cancel_futures=True)
        self.model_lane.shutdown(wait=True, cancel_futures=True)
        for done, row in enumerate(self._unsaved):
            try:
                self.history.record_request(row)
            except StorageError as error:
                left = len(self._unsaved) - done
                log.error("%d history rows lost at shutdown: %s", left, error)
                break
        self._unsaved.clear()
        self.history.close()

    def _keep_unsaved(self, rows: list[RequestEntry]) -> None:
        self._unsaved.extend(rows)
        if len(self._unsaved) > MAX_UNSAVED:
            lost = len(self._unsaved) - MAX_UNSAVED
            del self._unsaved[:lost]
            log.error("history retry queue full: %d oldest rows dropped", lost)

    def _model(self) -> HybridRecommender:
        if self.recommender is None:
            raise Busy("I'm still loading my model; please try again in a minute.")
        return self.recommender

    async def _run(self, executor: Executor, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(function, *args))

    def _remember(self, member_id: int, now: float) -> None:
        if len(self._last_request) >= _COOLDOWN_PRUNE:
            horizon = now - self.limits.cooldown_seconds
            self._last_request = {m: t for m, t in self._last_request.items() if t > horizon}
        self._last_request[member_id] = now

    async def _read_seeds(self, source: Source) -> Seeds:
        parts: list[Seeds] = []
        if source.playlist:
            parts.append(await self._run(self.io, self._read_playlist, source.playlist))
        if source.tracks:
            parts.append(_track_links(source.tracks))
        if source.upload:
            parts.append(await self._run(self.io, self._read_upload, source.upload))
        if not parts:
            raise BadInput("Give me a playlist link, some track links or a playlist file.")
        return Seeds(
            track_ids=[track_id for part in parts for track_id in part.track_ids],
            total=sum(part.total for part in parts),
            skipped=sum(part.skipped for part in parts),
            capped=any(part.capped for part in parts),
            name=next((part.name for part in parts if part.name), None),
        )

    def _read_playlist(self, link: str) -> Seeds:
        if self.spotify is None:
            raise BadInput(
                "This bot cannot read Spotify playlists (no Spotify app is set up). "
                "Send me track links or upload an export of the playlist instead."
            )
        read = self.spotify.read_playlist(link, self.limits.playlist_cap)
        catalog = self._model().catalog
        # A relinked track may be known to the model by its copy's id only.
        track_ids = [
            read.alternate_ids[t] if t not in catalog and t in read.alternate_ids else t
            for t in read.track_ids
        ]
        skipped = sum(read.skipped.values())
        return Seeds(track_ids, read.total, skipped, read.capped, read.name or None)

    def _read_upload(self, upload: Upload) -> Seeds:
        limit = self.limits.max_upload_bytes
        # json.loads holds the GIL for up to ~0.3 s on a 5 MB file; one parse at a time keeps
        # several big uploads from stalling the event loop for their sum.
        with self._parse_lock:
            playlist = parse_playlist_text(upload.content, upload.filename, max_bytes=limit)
        total = len(playlist.track_ids) + len(playlist.skipped)
        return Seeds(playlist.track_ids, total, len(playlist.skipped), name=playlist.name)

    async def _disliked(self, member_id: int) -> set[str]:
        try:
            return await self._run(self.io, self.history.disliked_tracks, member_id)
        except StorageError as error:
            log.warning("dislikes of member %d not read, answering without: %s", member_id, error)
            return set()

    def _recommend_blocking(
        self, track_ids: list[str], count: int, disliked: set[str], name: str | None = None
    ) -> tuple[RecommendationResult, dict[str, str]]:
        recommender = self._model()
        started = time.perf_counter()
        # The playlist's name helps only when the model knows none of its tracks.
        result = recommender.recommend(track_ids, count, exclude=disliked, title=name)
        log.debug("recommended %d for %d seeds in %.3f s", count, len(track_ids), _since(started))
        return result, _labels(recommender, [i.because for i in result.items if i.because])

    def _similar_blocking(
        self, track_id: str, count: int, disliked: set[str]
    ) -> tuple[RecommendationResult, dict[str, str]]:
        recommender = self._model()
        spares = min(len(disliked), DISLIKE_SPARES)
        try:
            result = recommender.similar(track_id, count + spares)
        except UnknownTrackError:
            raise BadInput(
                "I have no audio features for that track, so I can't tell what sounds like it. "
                "Try /recommend with its link instead."
            ) from None
        kept = [item for item in result.items if item.track_id not in disliked][:count]
        return dataclasses.replace(result, items=kept), _labels(recommender, [track_id])


def _load_recommender(path: Path) -> HybridRecommender:
    return load_bundle(path)[0]


def _labels(recommender: HybridRecommender, track_ids: Sequence[str]) -> dict[str, str]:
    catalog = recommender.catalog
    labels = {}
    for track_id in track_ids:
        row = catalog.index_of(track_id)
        if row is not None:
            labels[track_id] = catalog.label(row)
    return labels


def _track_links(text: str) -> Seeds:
    tokens = split_links(text)
    track_ids: list[str] = []
    for token in tokens:
        try:
            track_ids.append(parse_track_ref(token))
        except LinkError:
            continue
    if not track_ids:
        raise BadInput("None of those is a Spotify track link.")
    return Seeds(track_ids, len(tokens), len(tokens) - len(track_ids))


def _entry(
    who: Requester, kind: RequestKind, text: str, result: RecommendationResult, counts: Counts
) -> RequestEntry:
    return RequestEntry(
        member_id=who.member_id,
        guild_id=who.guild_id,
        channel_id=who.channel_id,
        kind=kind,
        input_text=text,
        used=counts.used,
        skipped=counts.skipped,
        unknown=counts.unknown,
        total=counts.total,
        tracks=tuple(
            TrackEntry(item.track_id, item.score, item.sources, item.because)
            for item in result.items
        ),
    )


def _normal(text: str) -> str:
    """``text`` as names are compared: spaces collapsed, lower case."""
    return " ".join(text.split()).lower()


def _sorted_rows(column: list[str], rows: Iterable[int]) -> npt.NDArray[np.int64]:
    """``rows`` whose ``column`` value is not blank, sorted by that value in lower case."""
    order = sorted((row for row in rows if column[row].strip()), key=lambda r: column[r].lower())
    return np.asarray(order, dtype=np.int64)


def _prefixed(
    order: npt.NDArray[np.int64], column: list[str], prefix: str, limit: int
) -> Iterator[int]:
    """Rows whose ``column`` value starts with ``prefix`` (lower case), in sorted order."""
    start = bisect_left(order, prefix, key=lambda row: column[row].lower())
    for row in order[start : start + limit].tolist():
        if not column[row].lower().startswith(prefix):
            return
        yield row


def _since(started: float) -> float:
    return time.perf_counter() - started
