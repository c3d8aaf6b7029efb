"""Playlists people give us (JSON, text or CSV files) and the RecSys Challenge 2018 files.

User files are read defensively: anything that goes wrong becomes a `PlaylistFileError` whose
message can be shown as is. The challenge files are ours, so their checks are stricter.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import json
import logging
import numbers
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from recommender.links import LinkError, parse_track_ref

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ENTRIES = 10_000
SKIP_LOCAL = "local file"
SKIP_EPISODE = "podcast episode"
# A skipped entry keeps this much of its text, enough to recognise it in a report.
_RAW_LIMIT = 200
# Track column headers, compared without case, spaces, "_" or "-"; the first one present wins.
_URI_COLUMNS = ("trackuri", "spotifyuri", "uri", "trackid", "spotifyid", "id")
_DELIMITERS = (",", ";", "\t")
_TRACK_URI_RE = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
_SKIP_REASONS = {"local": SKIP_LOCAL, "episode": SKIP_EPISODE}
# Rows read ahead to tell a title line from a CSV header and to find a column of links.
_SAMPLE_ROWS = 50
# Blank and "#" comment lines above a CSV header, such as "# exported by Exportify, 2024".
_PREAMBLE_RE = re.compile(r"(?:[ \t]*(?:#[^\r\n]*)?(?:\r\n|\r|\n|\Z))*")
_LINE_BREAK_RE = re.compile(r"\r\n?|\n")

# (line, row or list position; the value to read; the raw text to report if it is skipped)
_Entry = tuple[int, object, str]


class PlaylistFileError(ValueError):
    """A playlist file that cannot be used; `str(error)` is one sentence fit for a user."""


@dataclass(frozen=True)
class PlaylistInput:
    """The tracks of a playlist file, in file order without repeats, and what was left out.

    `skipped` holds (number, raw text, reason): the line number for text and CSV files, the
    1-based position for JSON lists. Local files and episodes have the reasons `SKIP_LOCAL`
    and `SKIP_EPISODE`, so they can be counted.
    """

    track_ids: list[str]
    skipped: list[tuple[int, str, str]]
    name: str | None = None


@dataclass(frozen=True)
class ChallengePlaylist:
    """One playlist of the RecSys Challenge 2018 challenge set; `seed_uris` may be empty."""

    pid: int
    name: str | None
    seed_uris: list[str]
    num_holdouts: int | None
    num_samples: int | None


def read_playlist_file(
    path: Path, *, max_bytes: int = MAX_FILE_BYTES, max_entries: int = MAX_ENTRIES
) -> PlaylistInput:
    """Read a JSON, text or CSV playlist file; the format is told from the content."""
    path = Path(path)
    # Path("") is Path("."), so an empty argument arrives here without a name.
    if not path.name:
        raise PlaylistFileError("no playlist file was given")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise PlaylistFileError(
            f"the file {path.name} could not be read: {_os_reason(exc)}"
        ) from exc
    return parse_playlist_text(data, path.name, max_bytes=max_bytes, max_entries=max_entries)


def parse_playlist_text(
    text: str | bytes,
    filename: str = "",
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_entries: int = MAX_ENTRIES,
) -> PlaylistInput:
    """Read a playlist from memory, e.g. an upload; `filename` only helps to recognise a CSV.

    `max_bytes` counts bytes for `bytes` input and characters for `str` input.
    """
    if len(text) > max_bytes:
        raise PlaylistFileError(f"the file is larger than {_size(max_bytes)}")
    if isinstance(text, bytes):
        text = _decode(text)
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise PlaylistFileError("the file is not a text file")
    if not text.strip():
        raise PlaylistFileError("the file is empty")

    entries, name = _read_entries(text, filename)
    if len(entries) > max_entries:
        raise PlaylistFileError(f"the file has more than {max_entries:,} entries")
    playlist = _collect(entries, name)
    log.debug(
        "read %d tracks from %r, skipped %d entries",
        len(playlist.track_ids),
        filename,
        len(playlist.skipped),
    )
    return playlist


def read_challenge_set(path: Path) -> list[ChallengePlaylist]:
    """Read the challenge's `challenge_set.json`; seeds come back in `pos` order."""
    path = Path(path)
    if not path.name:
        raise PlaylistFileError("no challenge set file was given")
    data = _load_json(path)
    raw_playlists = data.get("playlists") if isinstance(data, dict) else None
    if not isinstance(raw_playlists, list):
        raise PlaylistFileError(f"{path.name} has no list of playlists")
    if not raw_playlists:
        raise PlaylistFileError("the challenge set holds no playlists")

    playlists = [_challenge_playlist(raw, number) for number, raw in enumerate(raw_playlists, 1)]
    seen: set[int] = set()
    for playlist in playlists:
        if playlist.pid in seen:
            raise PlaylistFileError(f"pid {playlist.pid} appears twice in {path.name}")
        seen.add(playlist.pid)
    log.info("read %d challenge playlists from %s", len(playlists), path)
    return playlists


def write_submission(
    path: Path,
    rows: Iterable[tuple[int, Sequence[str]]],
    *,
    team_name: str = "HarmonYa",
    contact: str = "harmonya@example.invalid",
) -> int:
    """Write a challenge submission CSV atomically and return the number of playlist rows.

    The first line is `team_info,<team_name>,<contact>`, then one `pid,uri1,uri2,...` line per
    row. Fields are joined by a bare "," (the official sample puts a space after each comma;
    both are accepted). The file is written next to `path` and moved over it only when every
    row is valid, so a failure leaves `path` as it was. Raises PlaylistFileError when `path`
    cannot be written, ValueError naming the pid for a malformed pid or URI, a repeated pid,
    or a row that lists a track twice; 500 tracks per row is the caller's business.
    """
    path = Path(path)
    for label, value in (("team_name", team_name), ("contact", contact)):
        if not value or any(char in value for char in ",\r\n"):
            raise ValueError(f"{label} must be non-empty and contain no comma or line break")
    check_writable(path)

    handle = _temp_file(path)
    temp_path = Path(handle.name)
    try:
        _write(handle, f"team_info,{team_name},{contact}\n", path)
        count = _write_rows(handle, rows, path)
        with _write_errors(path):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            temp_path.chmod(0o644)
            temp_path.replace(path)
    except BaseException:
        # The temp file is thrown away, so a second error while closing it would only hide
        # the first.
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            temp_path.unlink(missing_ok=True)
        raise
    log.info("wrote %d submission rows to %s", count, path)
    return count


def check_writable(path: Path) -> None:
    """Raise PlaylistFileError unless a file could be written at `path`, before work is spent.

    Only what can be seen without writing is checked: `path` is not a directory and its parent
    is a directory this process may write to. `write_submission` still reports a later failure.
    """
    path = Path(path)
    if not path.name:
        raise PlaylistFileError(_cannot_write(path, "no file name was given"))
    parent = path.parent
    try:
        if path.is_dir():
            raise PlaylistFileError(_cannot_write(path, "it is a directory"))
        if parent.exists() and not parent.is_dir():
            raise PlaylistFileError(_cannot_write(path, f"{parent} is not a directory"))
        if not parent.exists():
            raise PlaylistFileError(_cannot_write(path, f"the directory {parent} does not exist"))
    except OSError as exc:
        raise PlaylistFileError(_cannot_write(path, _os_reason(exc))) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PlaylistFileError(_cannot_write(path, f"the directory {parent} is not writable"))


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _cannot_write(path: Path, reason: str) -> str:
    return f"cannot write {path}: {reason}" if path.name else f"cannot write: {reason}"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


def _decode(data: bytes) -> str:
    # Excel's "Unicode text" export is UTF-16 with a byte order mark.
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PlaylistFileError("the file is not UTF-8 text") from exc


def _read_entries(text: str, filename: str) -> tuple[list[_Entry], str | None]:
    if text.lstrip()[0] in "[{":
        return _json_entries(text)
    if _looks_like_csv(text, filename):
        return _csv_entries(text), None
    return _line_entries(text), None


def _looks_like_csv(text: str, filename: str) -> bool:
    if Path(filename).suffix.lower() in (".csv", ".tsv"):
        return True
    lines = (line.strip() for line in text.splitlines())
    content = (line for line in lines if line and not line.startswith("#"))
    first = next(content, "")
    if not any(delimiter in first for delimiter in _DELIMITERS) or _is_track(first):
        return False
    # A text file may open with a title such as "Road trip, part 2" above its links.
    kinds = [_ref_kind(line) for line in itertools.islice(content, _SAMPLE_ROWS)]
    return None in kinds or "track" not in kinds


def _ref_kind(text: str) -> str | None:
    """Return "track", what else a Spotify reference points to ("local", ...), or None."""
    try:
        parse_track_ref(text)
    except LinkError as exc:
        return exc.kind
    return "track"


def _is_track(text: str) -> bool:
    return _ref_kind(text) == "track"


def _line_entries(text: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            entries.append((number, stripped, stripped))
    return entries


def _csv_entries(text: str) -> list[_Entry]:
    match = _PREAMBLE_RE.match(text)
    preamble = match.group() if match else ""
    body = text[len(preamble) :]
    if not body:
        return []
    delimiter = _pick_delimiter(body.splitlines()[0])
    rows = _csv_rows(body, delimiter, len(_LINE_BREAK_RE.findall(preamble)))
    if not rows:
        return []

    column, has_header = _find_column([row for _, row in rows[: _SAMPLE_ROWS + 1]])
    return [
        (number, row[column].strip() if column < len(row) else "", delimiter.join(row))
        for number, row in rows[1 if has_header else 0 :]
    ]


def _csv_rows(body: str, delimiter: str, lines_before: int) -> list[tuple[int, list[str]]]:
    """Return (line number in the file, cells) for each row of `body` that is not blank."""
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((lines_before + reader.line_num, row))
    except csv.Error as exc:
        line = lines_before + reader.line_num
        raise PlaylistFileError(f"the CSV file is malformed near line {line}") from exc
    return rows


def _pick_delimiter(header: str) -> str:
    def cells(delimiter: str) -> list[str]:
        return next(csv.reader([header], delimiter=delimiter), [])

    for delimiter in _DELIMITERS:
        if _header_column(cells(delimiter)) is not None:
            return delimiter
    return max(_DELIMITERS, key=lambda delimiter: len(cells(delimiter)))


def _find_column(rows: list[list[str]]) -> tuple[int, bool]:
    """Return the track column and whether the first of `rows` is a header rather than data."""
    first_row = rows[0]
    column = _header_column(first_row)
    if column is not None:
        return column, True
    # No known header: a file of bare rows is fine when one of its cells is a track.
    for index, cell in enumerate(first_row):
        if _is_track(cell):
            return index, False
    # An unknown header or a title line: the links may still be there, further down.
    column = _link_column(rows[1:])
    if column is not None:
        first_cell = first_row[column] if column < len(first_row) else ""
        return column, _ref_kind(first_cell) is None
    seen = ", ".join(cell.strip()[:40] for cell in first_row[:12])
    raise PlaylistFileError(f"no track URI column was found; the columns are: {seen}")


def _link_column(rows: list[list[str]]) -> int | None:
    """Return the column holding Spotify references in at least half of `rows`, some tracks."""
    kinds = [[_ref_kind(cell) for cell in row] for row in rows]
    best, best_count = None, 0
    for index in range(max((len(row) for row in rows), default=0)):
        column = [row[index] for row in kinds if index < len(row)]
        count = sum(kind is not None for kind in column)
        if "track" in column and 2 * count >= len(rows) and count > best_count:
            best, best_count = index, count
    return best


def _header_column(header: list[str]) -> int | None:
    names = [re.sub(r"[\s_\-]+", "", cell).lower() for cell in header]
    for wanted in _URI_COLUMNS:
        if wanted in names:
            return names.index(wanted)
    return None


def _json_entries(text: str) -> tuple[list[_Entry], str | None]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlaylistFileError("the file looks like JSON but is not valid JSON") from exc
    name = None
    if isinstance(data, dict):
        name = data.get("name") if isinstance(data.get("name"), str) else None
        data = _json_track_list(data)
    if not isinstance(data, list):
        raise PlaylistFileError("the JSON file has no list of tracks")
    return [(number, item, _json_raw(item)) for number, item in enumerate(data, start=1)], name


def _json_track_list(data: dict[str, Any]) -> object:
    # {"tracks": [...]}, {"items": [...]}, or the Web API's playlist with its paged item list.
    for key in ("items", "tracks"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("items")
        if isinstance(value, list):
            return value
    return None


def _json_raw(item: object) -> str:
    return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)[:_RAW_LIMIT]


def _entry_ref(value: object) -> str:
    """Return the text of an entry that should hold a track reference, or raise LinkError."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise LinkError("that entry is not a Spotify track link")
    track = _unwrap(value)
    if track.get("is_local") is True:
        raise LinkError(SKIP_LOCAL, kind="local")
    kind = track.get("type")
    if isinstance(kind, str) and kind != "track":
        raise LinkError(f"that is a Spotify {kind}, not a track", kind=kind)
    for key in ("uri", "track_uri", "id"):
        if isinstance(track.get(key), str):
            return str(track[key])
    raise LinkError("that entry has no track URI or id")


def _unwrap(entry: dict[str, Any]) -> dict[str, Any]:
    # Web API playlist items wrap the track as "track" (or "item"); a track object itself may
    # carry "track": true, which is a flag, not a wrapper.
    for wrapper in ("track", "item"):
        inner = entry.get(wrapper, False)
        if isinstance(inner, dict):
            return inner
        if inner is None:
            raise LinkError("that entry has no track; it may have been removed from Spotify")
    return entry


def _collect(entries: list[_Entry], name: str | None) -> PlaylistInput:
    track_ids: list[str] = []
    seen: set[str] = set()
    skipped: list[tuple[int, str, str]] = []
    if not entries:
        raise PlaylistFileError("the file lists no tracks")
    for number, value, raw in entries:
        try:
            track_id = parse_track_ref(_entry_ref(value))
        except LinkError as exc:
            skipped.append((number, raw[:_RAW_LIMIT], _SKIP_REASONS.get(exc.kind or "", str(exc))))
            continue
        if track_id not in seen:
            seen.add(track_id)
            track_ids.append(track_id)

    if not track_ids:
        raise PlaylistFileError(
            f"none of the {len(entries)} entries in the file is a Spotify track "
            f"(the first was skipped as: {skipped[0][2]})"
        )
    return PlaylistInput(track_ids, skipped, name)


def _load_json(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except OSError as exc:
        raise PlaylistFileError(f"{path.name} could not be read: {_os_reason(exc)}") from exc
    except (ValueError, RecursionError) as exc:
        raise PlaylistFileError(f"{path.name} is not valid JSON") from exc


def _challenge_playlist(raw: object, number: int) -> ChallengePlaylist:
    where = f"playlist number {number} in the challenge set"
    if not isinstance(raw, dict):
        raise PlaylistFileError(f"{where} is not a JSON object")
    if raw.get("pid") is None:
        raise PlaylistFileError(f"{where} has no pid")
    if not _is_int(raw["pid"]):
        raise PlaylistFileError(f"the pid of {where} must be an integer, not {raw['pid']!r}")
    pid = int(raw["pid"])
    name = raw.get("name")
    # A missing or null track list means no seeds; anything else that is not a list is broken.
    tracks = raw.get("tracks")
    return ChallengePlaylist(
        pid=pid,
        name=name if isinstance(name, str) else None,
        seed_uris=_seed_uris([] if tracks is None else tracks, pid),
        num_holdouts=_optional_int(raw, "num_holdouts", pid),
        num_samples=_optional_int(raw, "num_samples", pid),
    )


def _seed_uris(tracks: object, pid: int) -> list[str]:
    if not isinstance(tracks, list):
        raise PlaylistFileError(f"playlist pid {pid} has a malformed track list")
    uris: list[str] = []
    positions: list[int] = []
    for track in tracks:
        uri = track.get("track_uri") if isinstance(track, dict) else None
        if not isinstance(uri, str) or not _TRACK_URI_RE.fullmatch(uri):
            raise PlaylistFileError(f"playlist pid {pid} has a malformed track URI: {uri!r}")
        uris.append(uri)
        position = track.get("pos")
        if isinstance(position, int):
            positions.append(position)
    # Sort only when every seed has a position; a partial `pos` says nothing about the rest.
    if len(positions) == len(uris):
        uris = [uri for _, uri in sorted(zip(positions, uris, strict=True), key=_first)]
    return uris


def _first(pair: tuple[int, str]) -> int:
    return pair[0]


def _optional_int(raw: dict[str, Any], key: str, pid: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not _is_int(value):
        raise PlaylistFileError(f"playlist pid {pid} has a malformed {key}: {value!r}")
    return int(value)


def _temp_file(path: Path) -> IO[str]:
    try:
        return tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="\n",
            dir=path.parent,
            # Cut so that prefix and random part stay under the usual 255-byte name limit.
            prefix=f".{path.name[:100]}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as exc:
        reason = f"no file can be created in {path.parent} ({_os_reason(exc)})"
        raise PlaylistFileError(_cannot_write(path, reason)) from exc


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    # Wraps only our own file operations: an OSError raised by the caller's rows stays as is.
    try:
        yield
    except OSError as exc:
        raise PlaylistFileError(_cannot_write(path, _os_reason(exc))) from exc


def _write(handle: IO[str], text: str, path: Path) -> None:
    with _write_errors(path):
        handle.write(text)


def _write_rows(handle: IO[str], rows: Iterable[tuple[int, Sequence[str]]], path: Path) -> int:
    seen: set[int] = set()
    for number, row in enumerate(rows, start=1):
        try:
            pid, uris = row
        except (TypeError, ValueError):
            raise ValueError(f"submission row {number} is not a (pid, track URIs) pair") from None
        line = _submission_line(pid, uris)
        if int(pid) in seen:
            raise ValueError(f"pid {pid} appears twice in the submission")
        seen.add(int(pid))
        _write(handle, line, path)
    return len(seen)


def _submission_line(pid: int, uris: Sequence[str]) -> str:
    if not _is_int(pid):
        raise ValueError(f"a submission pid must be an integer, not {pid!r}")
    if isinstance(uris, str):
        raise ValueError(f"the tracks of pid {pid} must be a sequence of URIs, not one string")
    try:
        uri_list = list(uris)
    except TypeError:
        kind = type(uris).__name__
        raise ValueError(
            f"the tracks of pid {pid} must be a sequence of URIs, not {kind}"
        ) from None
    seen: set[str] = set()
    for uri in uri_list:
        if not isinstance(uri, str) or not _TRACK_URI_RE.fullmatch(uri):
            raise ValueError(f"pid {pid} has a malformed track URI: {uri!r}")
        if uri in seen:
            raise ValueError(f"pid {pid} lists {uri} more than once")
        seen.add(uri)
    return ",".join([str(int(pid)), *uri_list]) + "\n"


def _is_int(value: object) -> bool:
    # numbers.Integral also admits numpy integers, which is what pandas hands callers.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
