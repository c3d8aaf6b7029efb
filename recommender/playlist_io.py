"""Playlists people give us: JSON, text or CSV files (the challenge files are in challenge.py).

User files are read defensively: anything that goes wrong becomes a `PlaylistFileError` whose
message can be shown as is.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.links import LinkError, parse_track_ref, split_links
from recommender.text import one_line

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
_SKIP_REASONS = {"local": SKIP_LOCAL, "episode": SKIP_EPISODE}
# Rows read ahead to tell a title line from a CSV header and to find a column of links.
_SAMPLE_ROWS = 50
# Blank and "#" comment lines above a CSV header, such as "# exported by Exportify, 2024".
_PREAMBLE_RE = re.compile(r"(?:[ \t]*(?:#[^\r\n]*)?(?:\r\n|\r|\n|\Z))*")
_LINE_BREAK_RE = re.compile(r"\r\n?|\n")
# Control bytes no text export holds (tab, line breaks and form feed are allowed).
_BINARY_RE = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")

# (line, row or list position; the value to read; the raw text to report if it is skipped,
# None for a JSON item, whose text is made only if it is skipped)
_Entry = tuple[int, object, str | None]


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
            f"the file {path.name} could not be read: {os_reason(exc)}"
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

    # Reading stops one entry past the limit: a huge file is refused without building it all.
    try:
        entries, name = _read_entries(text, filename, max_entries + 1)
    except csv.Error as exc:
        raise PlaylistFileError("the CSV file is malformed (a field or line is too long)") from exc
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


def os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


def _decode(data: bytes) -> str:
    # Excel's "Unicode text" export is UTF-16 with a byte order mark.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise PlaylistFileError("the file is not UTF-16 text") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Links are ASCII, so a Windows (cp1252) or Latin-1 export is read for its links; binary
    # data is refused.
    if _BINARY_RE.search(data):
        raise PlaylistFileError("the file is not UTF-8 text")
    return data.decode("latin-1")


def _read_entries(text: str, filename: str, limit: int) -> tuple[list[_Entry], str | None]:
    """The file's entries, at most ``limit`` of them, and the playlist's name if it has one."""
    if text.lstrip()[0] in "[{":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # A text playlist may open with a title such as "[2024] Road trip" above its links.
            if not _has_track_line(text):
                raise PlaylistFileError("the file looks like JSON but is not valid JSON") from exc
        else:
            return _json_entries(data, limit)
    if _looks_like_csv(text, filename):
        return _csv_entries(text, limit), None
    return _line_entries(text, limit), None


def _looks_like_csv(text: str, filename: str) -> bool:
    if Path(filename).suffix.lower() in (".csv", ".tsv"):
        return True
    lines = (line.strip() for line in text.splitlines())
    content = (line for line in lines if line and not line.startswith("#"))
    first = next(content, "")
    if not any(delimiter in first for delimiter in _DELIMITERS):
        return False
    if _is_track(first) or _several_tracks(first):
        return False
    # A text file may open with a title such as "Road trip, part 2" above its links.
    lines_after = itertools.islice(content, _SAMPLE_ROWS)
    kinds = ["track" if _several_tracks(line) else _ref_kind(line) for line in lines_after]
    return None in kinds or "track" not in kinds


def _ref_kind(text: str) -> str | None:
    """Return "track", what else a Spotify reference points to ("local", ...), or None."""
    try:
        parse_track_ref(text)
    except LinkError as exc:
        return exc.kind
    return "track"


def _several_tracks(line: str) -> list[str]:
    """The pieces of a line of two or more track references and nothing else, however they
    are separated; else none. Bare ids count only apart by spaces: "id,id" is a CSV row (a
    track id and, say, an artist id)."""
    pieces = split_links(line)
    if len(pieces) < 2 or not all(_is_track(p) for p in pieces):
        return []
    linked = all(":" in p or "/" in p for p in pieces)
    return pieces if linked or not any(d in line for d in _DELIMITERS) else []


def _is_track(text: str) -> bool:
    return _ref_kind(text) == "track"


def _has_track_line(text: str) -> bool:
    lines = (line.strip() for line in text.splitlines())
    content = (line for line in lines if line and not line.startswith("#"))
    return any(_is_track(line) for line in itertools.islice(content, _SAMPLE_ROWS + 1))


def _line_entries(text: str, limit: int) -> list[_Entry]:
    """One entry a line; a line of several Spotify links apart gives one entry each."""
    entries: list[_Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = _several_tracks(stripped) or [stripped]
        for word in words:
            entries.append((number, word, word))
            if len(entries) >= limit:
                return entries
    return entries


def _csv_entries(text: str, limit: int) -> list[_Entry]:
    match = _PREAMBLE_RE.match(text)
    preamble = match.group() if match else ""
    body = text[len(preamble) :]
    if not body:
        return []
    delimiter = _pick_delimiter(_LINE_BREAK_RE.split(body, maxsplit=1)[0])
    # One row more than the limit, in case the first is a header.
    rows = _csv_rows(body, delimiter, len(_LINE_BREAK_RE.findall(preamble)), limit + 1)
    if not rows:
        return []

    column, has_header = _find_column([row for _, row in rows[: _SAMPLE_ROWS + 1]])
    return [
        (number, row[column].strip() if column < len(row) else "", delimiter.join(row))
        for number, row in rows[1 if has_header else 0 :][:limit]
    ]


def _csv_rows(
    body: str, delimiter: str, lines_before: int, limit: int
) -> list[tuple[int, list[str]]]:
    """Return (line number in the file, cells) for the first `limit` rows that are not blank."""
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((lines_before + reader.line_num, row))
                if len(rows) >= limit:
                    break
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


def _json_entries(data: object, limit: int) -> tuple[list[_Entry], str | None]:
    name = None
    if isinstance(data, dict):
        name = data.get("name") if isinstance(data.get("name"), str) else None
        data = _json_track_list(data)
    if not isinstance(data, list):
        raise PlaylistFileError("the JSON file has no list of tracks")
    first = data[:limit]
    return [(number, item, None) for number, item in enumerate(first, start=1)], name


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
            text = one_line(_json_raw(value) if raw is None else raw)
            reason = _SKIP_REASONS.get(exc.kind or "", one_line(str(exc)))
            skipped.append((number, text[:_RAW_LIMIT], reason))
            continue
        if track_id not in seen:
            seen.add(track_id)
            track_ids.append(track_id)

    if not track_ids:
        raise PlaylistFileError(
            f"none of the {len(entries)} entries in the file is a Spotify track "
            f"(the first was skipped as: {skipped[0][2]})"
        )
    # A JSON name may hold what no terminal, file or database takes (a lone surrogate).
    return PlaylistInput(track_ids, skipped, one_line(name) or None if name else None)


def load_json_file(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except OSError as exc:
        raise PlaylistFileError(f"{path.name} could not be read: {os_reason(exc)}") from exc
    except (ValueError, RecursionError) as exc:
        raise PlaylistFileError(f"{path.name} is not valid JSON") from exc
