"""The RecSys Challenge 2018 metrics, and a line-by-line check of a submission file.

The metrics follow Spotify's own evaluation code, not the rules page where the two differ:
`metrics.py` (Copyright 2017 Spotify AB, Cedric De Boom) for NDCG and clicks, and Spotify's
`r_precision_with_artist_fallback` gist for the artist credit of R-precision; both are kept in
github.com/irhete/recsys-challenge-2018 (metrics.py). Each function says where that matters.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Protocol

from recommender.playlist_io import PlaylistFileError, os_reason

log = logging.getLogger(__name__)

MAX_RECOMMENDATIONS = 500
# Credit for a recommended track that misses but is by an artist of a hidden track (the gist).
ARTIST_CREDIT = 0.25
_TRACK_URI_RE = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
_PID_RE = re.compile(r"[0-9]+")
# Challenge pids fit in int64; a longer number is refused before it is converted.
MAX_PID_DIGITS = 19
_TEAM_LINE = "team_info,<team name>,<contact>"
# A reported value keeps this many characters, enough to find it in the file.
_SHOW_LIMIT = 60


class TruthLike(Protocol):
    """What scoring needs of a challenge playlist: its seeds and its hidden tracks, as URIs."""

    @property
    def seeds(self) -> AbstractSet[str]: ...

    @property
    def hidden(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Truth:
    """One challenge playlist's answer: the seeds it gave and the tracks it hid."""

    pid: int
    seeds: frozenset[str]
    hidden: tuple[str, ...]


@dataclass(frozen=True)
class PlaylistScore:
    """The three challenge metrics for one playlist; `hits` counts hidden tracks in the top k."""

    pid: int
    r_precision: float
    ndcg: float
    clicks: int
    hits: int


@dataclass(frozen=True)
class MeanScores:
    """Metrics averaged over `playlists` playlists, as the challenge's leaderboard did."""

    playlists: int
    r_precision: float
    ndcg: float
    clicks: float


@dataclass(frozen=True)
class Problem:
    """Something wrong in a submission file; `line` is 1-based, 0 for the file as a whole."""

    line: int
    pid: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.message}"


@dataclass
class SubmissionCheck:
    """The usable rows of a submission file (pid -> track URIs) and every problem found."""

    rows: dict[int, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    team_name: str | None = None
    contact: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def r_precision(
    recommended: Sequence[str],
    hidden: Sequence[str],
    artist_of: Mapping[str, str] | None = None,
) -> float:
    """R-precision with the challenge's artist credit.

    (|S_T ∩ G_T| + 0.25 |S_A ∩ G_A|) / |G_T|, where G_T is the set of hidden tracks, S_T the
    distinct tracks among the first |G_T| recommendations (of at most 500), G_A the artists of
    all hidden tracks, and S_A the artists of the tracks of S_T that are not hits. An artist
    earns its 0.25 once, even when several misses are by it, and also when one of its tracks is
    a hit (Spotify's gist counts only artist credits, not track hits, against the once-only
    rule). A repeated recommendation still takes a place among the first |G_T|. Without
    `artist_of` (track URI -> artist) there is no artist credit; unmapped tracks get none.
    """
    targets = _targets(hidden)
    window = dict.fromkeys(islice(recommended, min(len(targets), MAX_RECOMMENDATIONS)))
    hidden_artists = _artists(targets, artist_of)

    track_hits = 0
    credited: set[str] = set()
    for uri in window:
        if uri in targets:
            track_hits += 1
        elif artist_of is not None and artist_of.get(uri) in hidden_artists:
            credited.add(artist_of[uri])
    return (track_hits + ARTIST_CREDIT * len(credited)) / len(targets)


def ndcg(recommended: Sequence[str], hidden: Sequence[str], k: int = MAX_RECOMMENDATIONS) -> float:
    """NDCG of the first `k` recommendations, as Spotify's evaluation code computes it.

    DCG = sum of rel_i / log2(i + 1) over ranks i = 1.. (so rel_1 counts in full), and
    IDCG = 1 + sum_{i=2}^{N} 1 / log2(i + 1) with N = min(|G|, k), G the hidden tracks. The
    rules page writes log2(i) and N = |G ∩ R|; the official code uses log2(i + 1) and |G|, so
    a list that finds few hidden tracks is not scored as if it were perfect. The list is cut at
    `k` first and then repeats are dropped, so a repeat takes no rank.
    """
    targets = _targets(hidden)
    discounts = _discounts(_checked_k(k))

    ranked = dict.fromkeys(islice(recommended, k))
    dcg = sum(discounts[rank] for rank, uri in enumerate(ranked) if uri in targets)
    ideal = sum(discounts[: min(len(targets), k)])
    return dcg / ideal


def clicks(recommended: Sequence[str], hidden: Sequence[str], k: int = MAX_RECOMMENDATIONS) -> int:
    """Recommended Songs clicks: floor((rank of the first hidden track - 1) / 10), 1-based rank.

    With no hidden track in the first `k` it is k // 10 + 1, which is 51 for the challenge's 500
    (Spotify's code: max_n_predictions / 10 + 1), also for a list shorter than `k`. Ranks are
    positions in the list as given: a repeat counts as a position, as in Spotify's code.
    """
    targets = _targets(hidden)
    _checked_k(k)

    for index, uri in enumerate(islice(recommended, k)):
        if uri in targets:
            return index // 10
    return k // 10 + 1


def score_playlist(
    pid: int,
    recommended: Sequence[str],
    hidden: Sequence[str],
    artist_of: Mapping[str, str] | None = None,
    *,
    k: int = MAX_RECOMMENDATIONS,
) -> PlaylistScore:
    """All three metrics for one playlist; raises ValueError when `hidden` is empty."""
    targets = _targets(hidden)
    hits = len(targets.intersection(islice(recommended, _checked_k(k))))
    return PlaylistScore(
        pid=pid,
        r_precision=r_precision(recommended, hidden, artist_of),
        ndcg=ndcg(recommended, hidden, k),
        clicks=clicks(recommended, hidden, k),
        hits=hits,
    )


def score_submission(
    check: SubmissionCheck,
    truths: Mapping[int, TruthLike],
    artist_of: Mapping[str, str] | None = None,
) -> list[PlaylistScore]:
    """Score every playlist of `truths`, in its order; a pid without a usable row scores 0, 0, 51.

    Raises ValueError when a truth has no hidden tracks: the metrics are undefined for it.
    """
    return [
        score_playlist(pid, check.rows.get(pid, []), truth.hidden, artist_of)
        for pid, truth in truths.items()
    ]


def mean_scores(scores: Iterable[PlaylistScore]) -> MeanScores:
    """Average each metric over the playlists; raises ValueError when there are none."""
    score_list = list(scores)
    if not score_list:
        raise ValueError("there are no playlist scores to average")
    count = len(score_list)
    return MeanScores(
        playlists=count,
        r_precision=math.fsum(score.r_precision for score in score_list) / count,
        ndcg=math.fsum(score.ndcg for score in score_list) / count,
        clicks=sum(score.clicks for score in score_list) / count,
    )


MAX_LINE_BYTES = 2**20


def read_submission(
    path: Path, truths: Mapping[int, TruthLike], *, expected_length: int = MAX_RECOMMENDATIONS
) -> SubmissionCheck:
    """Check a submission CSV line by line, keeping what can be scored and reporting the rest.

    The first non-blank line must be `team_info,<team name>,<contact>`; every other one
    `pid,uri1,...`. Fields may have spaces after the commas; blank lines are skipped. A row
    with an unreadable, unknown or repeated pid is left out (the first row of a pid wins). Any
    other row is kept with its bad URIs, repeats (after the first) and seed tracks dropped, the
    rest in order and cut at `expected_length`. Raises PlaylistFileError, one sentence, only
    when the file cannot be read or is not UTF-8 text.
    """
    path = Path(path)
    checker = _Checker(truths, expected_length)
    try:
        if not path.is_file():
            reason = "is not a file" if path.exists() else "does not exist"
            raise PlaylistFileError(f"{path} {reason}")
        with path.open("rb") as handle:
            # Read with a cap, so a file with no line breaks (or /dev/zero) is refused, not
            # loaded whole: a 500-track row is about 19 kB.
            for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
                if len(raw) > MAX_LINE_BYTES:
                    raise PlaylistFileError(
                        f"line {number} of {path.name} is longer than {MAX_LINE_BYTES >> 20} MiB: "
                        "not a submission"
                    )
                checker.feed(number, _decode(raw, number, path))
    except OSError as exc:
        raise PlaylistFileError(f"{path.name} could not be read: {os_reason(exc)}") from exc

    check = checker.finish()
    log.info("read %d rows from %s: %d problems", len(check.rows), path, len(check.problems))
    return check


class _Checker:
    """The state of one pass over a submission file."""

    def __init__(self, truths: Mapping[int, TruthLike], expected_length: int) -> None:
        self.truths = truths
        self.expected_length = expected_length
        self.check = SubmissionCheck()
        self.first_line: dict[int, int] = {}
        self.started = False

    def feed(self, number: int, line: str) -> None:
        if not line.strip():
            return
        fields = [part.strip() for part in line.split(",")]
        if fields[0] == "team_info":
            self._team(number, fields)
            return
        if not self.started:
            self._problem(number, None, f"the first line must be `{_TEAM_LINE}`")
        self.started = True
        self._row(number, fields)

    def finish(self) -> SubmissionCheck:
        if not self.started:
            self._problem(0, None, f"the file has no `{_TEAM_LINE}` line and no rows")
        for pid in self.truths:
            if pid not in self.check.rows:
                self._problem(0, pid, f"pid {pid} has no usable row")
        return self.check

    def _team(self, number: int, fields: list[str]) -> None:
        if self.started:
            self._problem(number, None, "a team_info line after the first line")
            return
        self.started = True
        if len(fields) != 3 or not all(fields[1:]):
            self._problem(number, None, f"a garbled team_info line; expected `{_TEAM_LINE}`")
            return
        self.check.team_name, self.check.contact = fields[1], fields[2]

    def _row(self, number: int, fields: list[str]) -> None:
        pid = self._pid(number, fields[0])
        if pid is None:
            return
        self.first_line[pid] = number
        tracks = fields[1:]
        if len(tracks) != self.expected_length:
            message = f"{_plural(len(tracks), 'track')}, expected {self.expected_length}"
            self._problem(number, pid, message)
        usable = self._tracks(number, pid, tracks)
        self.check.rows[pid] = usable[: self.expected_length]

    def _pid(self, number: int, text: str) -> int | None:
        if not _PID_RE.fullmatch(text):
            self._problem(number, None, f"no pid: the line starts with {_show(text)}")
            return None
        if len(text.lstrip("0")) > MAX_PID_DIGITS:
            self._problem(number, None, f"pid {_show(text)} is not in the challenge set")
            return None
        pid = int(text.lstrip("0") or "0")  # leading zeros would count against int()'s limit
        if pid not in self.truths:
            self._problem(number, pid, f"pid {pid} is not in the challenge set")
            return None
        if pid in self.first_line:
            earlier = self.first_line[pid]
            self._problem(number, pid, f"pid {pid} repeats the row on line {earlier}; skipped")
            return None
        return pid

    def _tracks(self, number: int, pid: int, tracks: list[str]) -> list[str]:
        seeds = self.truths[pid].seeds
        positions: dict[str, int] = {}
        malformed: list[tuple[int, str]] = []
        repeated: list[tuple[int, str]] = []
        seeded: list[tuple[int, str]] = []
        usable: list[str] = []
        for position, uri in enumerate(tracks, start=1):
            if not _TRACK_URI_RE.fullmatch(uri):
                malformed.append((position, uri))
            elif uri in positions:
                repeated.append((position, uri))
            elif uri in seeds:
                positions[uri] = position
                seeded.append((position, uri))
            else:
                positions[uri] = position
                usable.append(uri)
        self._report(number, pid, malformed, "malformed track URI", "")
        self._report(number, pid, repeated, "repeated track", "", positions)
        self._report(number, pid, seeded, "seed track", " included")
        return usable

    def _report(
        self,
        number: int,
        pid: int,
        found: list[tuple[int, str]],
        kind: str,
        suffix: str,
        first_seen: Mapping[str, int] | None = None,
    ) -> None:
        if not found:
            return
        position, uri = found[0]
        message = f"{_plural(len(found), kind)}{suffix}; the first, {_show(uri)}, at position "
        message += str(position)
        if first_seen is not None:
            message += f" (listed first at position {first_seen[uri]})"
        self._problem(number, pid, message)

    def _problem(self, line: int, pid: int | None, message: str) -> None:
        self.check.problems.append(Problem(line, pid, message))


def _decode(raw: bytes, number: int, path: Path) -> str:
    # Decoded a line at a time so that the error names the line it is on.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlaylistFileError(f"line {number} of {path.name} is not UTF-8 text") from None
    return text.removeprefix("\ufeff") if number == 1 else text


def _targets(hidden: Sequence[str]) -> set[str]:
    if isinstance(hidden, str):
        raise TypeError("hidden must be a sequence of track URIs, not one string")
    targets = set(hidden)
    if not targets:
        raise ValueError("there are no hidden tracks: the challenge metrics are undefined")
    return targets


def _artists(targets: AbstractSet[str], artist_of: Mapping[str, str] | None) -> set[str]:
    if artist_of is None:
        return set()
    return {artist_of[uri] for uri in targets if uri in artist_of}


def _checked_k(k: int) -> int:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    return k


@functools.lru_cache(maxsize=8)
def _discounts(k: int) -> tuple[float, ...]:
    # 0-based rank r holds 1 / log2(r + 2): 1 for the first, 1 / log2(3) for the second, ...
    return tuple(1.0 / math.log2(rank + 2) for rank in range(k))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _show(text: str) -> str:
    return repr(text if len(text) <= _SHOW_LIMIT else text[:_SHOW_LIMIT] + "...")
