"""Audio features for every track found under a data directory.

Every audio-feature table under the directory (CSV, gzipped CSV, or a JSON array of Spotify
``/audio-features`` objects) is read, whatever its column order or naming, into one table that
maps a 22-character Spotify track id to the 13 features of ``FEATURE_ORDER``.

A file is a feature table when its columns include an id column (``track_id``, ``id``,
``track_uri`` or ``uri``, holding bare ids or ``spotify:track:`` URIs) and at least 8 of the 13
features; the file name does not matter. MPD playlist slices and other files are told apart by
their first bytes, so they are skipped without being parsed.

Values that are NaN, infinite or out of range count as missing: fractions outside [0, 1],
loudness outside [-60, 5] dB, tempo not in (0, 300) BPM, key not in 0..11 (-1 means no key),
mode not 0 or 1, duration_ms not above 0 or over a day, time_signature not in 1..7 (0 means
unknown).
A record with fewer than 8 valid features is dropped.

Duplicate rule: when a track id occurs more than once, within a file or across files, the record
with the most valid features wins; a tie goes to the file that comes first in sorted relative-path
order (paths compared as POSIX strings), then to the earlier row of that file. The display name
and artist are the first non-empty ones in that same order, looking at every record of the track.

Imputation: a value still missing after the duplicate rule gets the feature's median over the
resolved table (for key, mode and time_signature the most common value, the smallest on a tie);
``FeatureTable.imputed`` marks it.

Example::

    table = read_feature_tables(Path("data/raw"), progress=True)
    vector = table.values[np.searchsorted(table.ids, "5ayybTSXNwcarDtxQKqvWX")]
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import time
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from recommender.data import walk_files

log = logging.getLogger(__name__)

FEATURE_ORDER: tuple[str, ...] = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration_ms",
    "time_signature",
)
MIN_VALID_FEATURES = 8

# Earlier names win when a row has several; the rest fill in where the earlier one is not valid.
ID_COLUMNS = ("track_id", "id", "track_uri", "uri")
NAME_COLUMNS = ("track_name", "track", "name")
ARTIST_COLUMNS = ("track_artist", "artist_name", "artist")

_CATEGORICAL = frozenset({"key", "mode", "time_signature"})
_WANTED = frozenset(ID_COLUMNS + NAME_COLUMNS + ARTIST_COLUMNS + FEATURE_ORDER)
_SUFFIXES = (".csv", ".tsv", ".json", ".csv.gz", ".tsv.gz", ".json.gz")
_HEAD_BYTES = 16_384
_READ_ERRORS = (OSError, EOFError, ValueError, RecursionError, zlib.error, csv.Error)

_TRACK_ID = re.compile(
    r"^\s*(?:spotify:track:|https?://open\.spotify\.com/track/)?([0-9A-Za-z]{22})(?:\?\S*)?\s*$"
)
_AUDIO_FEATURES_OBJECT = re.compile(r'\{\s*"audio_features"\s*:\s*\[')
_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MANGLED_METRE = re.compile(r"(?:\d{1,2}-)?([a-z]{3})(?:-\d{1,2})?")
_METRE_FRACTION = re.compile(r"(\d+)\s*/\s*\d+")

# Used only when no table has a single valid value of a feature (e.g. none has time_signature):
# medians (modes for key, mode, time_signature) over shared/data/raw, 135,072 tracks.
_FALLBACK = {
    "danceability": 0.596,
    "energy": 0.637,
    "key": 0.0,
    "loudness": -7.54,
    "mode": 1.0,
    "speechiness": 0.0486,
    "acousticness": 0.178,
    "instrumentalness": 3.78e-05,
    "liveness": 0.127,
    "valence": 0.502,
    "tempo": 119.91,
    "duration_ms": 212_329.0,
    "time_signature": 4.0,
}


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """Audio features of n tracks, one row per track, rows sorted by track id.

    ``ids`` is a ``<U22`` array of shape (n,), sorted and unique; ``values`` is float32 of
    shape (n, 13) with columns in ``FEATURE_ORDER`` and no NaN; ``imputed`` is bool of shape
    (n, 13), True where the value was imputed. ``names`` and ``artists`` hold n strings, ""
    where unknown; ``sources`` maps each feature file read (relative path) to the rows kept
    from it.
    """

    ids: npt.NDArray[np.str_]
    values: npt.NDArray[np.float32]
    imputed: npt.NDArray[np.bool_]
    names: list[str]
    artists: list[str]
    sources: dict[str, int]

    def __post_init__(self) -> None:
        n = len(self.ids)
        shapes = (self.values.shape, self.imputed.shape, len(self.names), len(self.artists))
        if shapes != ((n, len(FEATURE_ORDER)), (n, len(FEATURE_ORDER)), n, n):
            raise ValueError(f"inconsistent FeatureTable shapes for {n} ids: {shapes}")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class _Range:
    """Valid values of one feature; ``open`` excludes the bounds themselves."""

    low: float
    high: float
    open: bool = False
    integral: bool = False

    def contains(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        with np.errstate(invalid="ignore"):
            if self.open:
                inside = (values > self.low) & (values < self.high)
            else:
                inside = (values >= self.low) & (values <= self.high)
            if self.integral:
                inside &= values == np.round(values)
        return inside


_FRACTION = _Range(0.0, 1.0)
_RANGES = {
    "danceability": _FRACTION,
    "energy": _FRACTION,
    "key": _Range(0, 11, integral=True),
    "loudness": _Range(-60.0, 5.0),
    "mode": _Range(0, 1, integral=True),
    "speechiness": _FRACTION,
    "acousticness": _FRACTION,
    "instrumentalness": _FRACTION,
    "liveness": _FRACTION,
    "valence": _FRACTION,
    "tempo": _Range(0.0, 300.0, open=True),
    "duration_ms": _Range(0.0, 86_400_000.0, open=True),  # a day; more is a broken value
    "time_signature": _Range(1, 7, integral=True),
}


def _parse_key(text: str) -> float:
    """Pitch class of a key written as a note name: "C" -> 0, "C#" and "Db" -> 1."""
    text = text.strip()
    if not text or text[0].upper() not in _PITCH_CLASSES or text[1:] not in _ACCIDENTALS:
        return np.nan
    return float((_PITCH_CLASSES[text[0].upper()] + _ACCIDENTALS[text[1:]]) % 12)


def _parse_mode(text: str) -> float:
    return {"major": 1.0, "minor": 0.0}.get(text.strip().lower(), np.nan)


def _parse_time_signature(text: str) -> float:
    """Beats per bar from "3/4", or from a date a spreadsheet made of it ("4-Mar" -> 3)."""
    text = text.strip().lower()
    if match := _METRE_FRACTION.fullmatch(text):
        return float(match[1])
    # Excel read "3/4" as 4 March and saved it as "4-Mar", so the month is the beat count.
    if (match := _MANGLED_METRE.fullmatch(text)) and match[1] in _MONTHS:
        return float(_MONTHS.index(match[1]) + 1)
    return np.nan


_TEXT_PARSERS: dict[str, Callable[[str], float]] = {
    "key": _parse_key,
    "mode": _parse_mode,
    "time_signature": _parse_time_signature,
}


def _canonical(column: object) -> str:
    return str(column).strip().lstrip("\ufeff").strip().lower()


def _select_columns(columns: Iterable[object]) -> dict[Any, str]:
    """Map original column names to the canonical names we use; the first of duplicates wins."""
    selected: dict[Any, str] = {}
    for column in columns:
        name = _canonical(column)
        if name in _WANTED and name not in selected.values():
            selected[column] = name
    return selected


def _is_feature_table(columns: Iterable[object]) -> bool:
    names = set(_select_columns(columns).values())
    n_features = len(names.intersection(FEATURE_ORDER))
    return bool(names.intersection(ID_COLUMNS)) and n_features >= MIN_VALID_FEATURES


def _open(path: Path) -> io.BufferedIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _read_text_head(path: Path) -> str:
    with _open(path) as stream:
        head = stream.read(_HEAD_BYTES)
    return head.decode("utf-8-sig", errors="replace").lstrip()


def _first_json_record(head: str) -> dict[str, Any] | None:
    """First object of a JSON array (bare or under "audio_features") in the head of a file."""
    if head.startswith("["):
        position = 1
    elif match := _AUDIO_FEATURES_OBJECT.match(head):
        position = match.end()
    else:
        return None  # an MPD slice or another JSON object: not a feature table
    decoder = json.JSONDecoder()
    while True:
        while position < len(head) and head[position] in " \t\r\n,":
            position += 1
        try:
            record, position = decoder.raw_decode(head, position)
        except json.JSONDecodeError:
            return None
        if record is not None:
            return record if isinstance(record, dict) else None


class _Layout(NamedTuple):
    """How a feature table is stored: "csv" or "json", and the CSV delimiter and header."""

    kind: str
    delimiter: str = ","
    columns: tuple[str, ...] = ()


def _csv_header(head: str) -> tuple[list[str], str]:
    """Column names and delimiter from the first line of a CSV or TSV file."""
    lines = head.splitlines()
    line = lines[0] if lines else ""
    delimiter = max(",\t;", key=line.count)
    return next(csv.reader([line], delimiter=delimiter), []), delimiter


def _sniff(path: Path) -> _Layout | None:
    """The layout of a feature table from its first bytes; None for any other file."""
    head = _read_text_head(path)
    if head.startswith(("[", "{")):
        record = _first_json_record(head)
        return _Layout("json") if record is not None and _is_feature_table(record) else None
    columns, delimiter = _csv_header(head)
    return _Layout("csv", delimiter, tuple(columns)) if _is_feature_table(columns) else None


def _is_candidate(path: Path, root: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
    return not hidden and path.name.lower().endswith(_SUFFIXES) and path.is_file()


def _relative_key(root: Path) -> Callable[[Path], str]:
    return lambda path: path.relative_to(root).as_posix()


def find_feature_files(root: Path) -> list[Path]:
    """Audio-feature tables under ``root``, sorted by relative path.

    Hidden files and folders are skipped. Only the first bytes of each file are read; a file
    whose first bytes cannot be read is logged as a warning and skipped. Raises
    FileNotFoundError when ``root`` is not a directory.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"no data directory at {root}")
    candidates = sorted(
        (path for path in walk_files(root) if _is_candidate(path, root)), key=_relative_key(root)
    )
    found = []
    for path in candidates:
        try:
            if _sniff(path) is not None:
                found.append(path)
        except _READ_ERRORS as error:
            log.warning("Skipping unreadable file %s: %s", path, error)
    log.debug("Found %d feature tables among %d files under %s", len(found), len(candidates), root)
    return found


def _read_csv(path: Path, layout: _Layout) -> pd.DataFrame:
    with _open(path) as stream:
        data = stream.read()
    # Text columns stay text (ids must not become numbers); the C parser reads the rest faster
    # than pd.to_numeric would.
    selected = _select_columns(layout.columns)
    text = {column: str for column, name in selected.items() if name not in FEATURE_ORDER}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=layout.delimiter,
            dtype=text,
            encoding="utf-8-sig",
            encoding_errors="replace",
            on_bad_lines="warn",
        )
    n_bad = sum(str(warning.message).count("Skipping line") for warning in caught)
    if n_bad:
        log.warning("Skipped %d malformed rows (too many fields) in %s", n_bad, path)
    if _last_row_truncated(data, len(frame.columns), layout.delimiter) and len(frame):
        log.debug("Dropping the truncated last row of %s", path)
        frame = frame.iloc[:-1]
    return frame


def _last_row_truncated(data: bytes, n_columns: int, delimiter: str) -> bool:
    """True when the file stops mid-row: no final line break and too few fields on the line."""
    if not data or data.endswith((b"\n", b"\r")):
        return False
    last_line = data[data.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")
    return len(next(csv.reader([last_line], delimiter=delimiter), [])) < n_columns


def _read_json(path: Path) -> pd.DataFrame:
    with _open(path) as stream:
        document = json.loads(stream.read().decode("utf-8-sig"))
    records = document.get("audio_features") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise ValueError("expected a JSON array of audio-features objects")
    return pd.DataFrame.from_records([record for record in records if isinstance(record, dict)])


def _parse_ids(column: pd.Series) -> pd.Series:
    return column.astype("string").str.extract(_TRACK_ID, expand=False)


def _track_ids(frame: pd.DataFrame) -> pd.Series:
    """The first valid track id of each row over ``ID_COLUMNS``, NaN when there is none."""
    ids = pd.Series(np.nan, index=frame.index, dtype=object)
    for name in ID_COLUMNS:
        missing = ids.isna()
        if name in frame and missing.any():
            ids[missing] = _parse_ids(frame.loc[missing, name]).astype(object)
    return ids


def _to_float(column: pd.Series, parse_text: Callable[[str], float] | None) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce").astype(np.float64)
    text_rows = numbers.isna() & column.notna()
    if parse_text is not None and text_rows.any():
        texts = column[text_rows].astype(str)
        parsed = {text: parse_text(text) for text in texts.unique()}
        numbers[text_rows] = texts.map(parsed).astype(np.float64)
    return numbers


def _feature_values(column: pd.Series, feature: str) -> npt.NDArray[np.float64]:
    """Float64 values of one feature column, NaN where missing, unparseable or out of range."""
    values = _to_float(column, _TEXT_PARSERS.get(feature)).to_numpy(np.float64)
    return np.where(_RANGES[feature].contains(values), values, np.nan)


def _first_text(frame: pd.DataFrame, candidates: tuple[str, ...]) -> pd.Series:
    result = pd.Series("", index=frame.index, dtype=object)
    for name in candidates:
        if name in frame:
            text = frame[name].astype("string").str.strip().fillna("")
            empty = result == ""
            result[empty] = text[empty].astype(object)
    return result


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a valid id as id + ``FEATURE_ORDER`` (float64, NaN if missing) + name + artist."""
    selected = _select_columns(frame.columns)
    frame = frame[list(selected)].rename(columns=selected)
    out = pd.DataFrame({"id": _track_ids(frame)})
    for feature in FEATURE_ORDER:
        out[feature] = _feature_values(frame[feature], feature) if feature in frame else np.nan
    out["name"] = _first_text(frame, NAME_COLUMNS)
    out["artist"] = _first_text(frame, ARTIST_COLUMNS)
    return out[out["id"].notna()].reset_index(drop=True)


def read_feature_file(path: Path) -> pd.DataFrame | None:
    """One feature table as columns id, the 13 of ``FEATURE_ORDER``, name and artist.

    Rows keep the file's order; rows without a valid track id are dropped, duplicates are
    kept. Features are float64, NaN where missing or invalid; name and artist are "" where
    unknown. Returns None when the file is not a feature table; raises OSError or ValueError
    when it cannot be read.
    """
    layout = _sniff(path)
    if layout is None:
        return None
    raw = _read_json(path) if layout.kind == "json" else _read_csv(path, layout)
    return _normalise(raw)


def read_feature_tables(root: Path, *, progress: bool = False) -> FeatureTable:
    """Read, validate, deduplicate and impute every feature table under ``root``.

    See the module docstring for the duplicate rule and the imputation. Unreadable files are
    logged as warnings and skipped; ``progress`` shows a tqdm bar over the files.
    """
    started = time.perf_counter()
    frames: list[pd.DataFrame] = []
    relative_paths: list[str] = []
    paths = find_feature_files(root)
    for path in tqdm(paths, desc="feature tables", unit="file", disable=not progress):
        frame = _read_safely(path)
        if frame is not None:
            frames.append(frame.assign(file=len(relative_paths), row=np.arange(len(frame))))
            relative_paths.append(path.relative_to(root).as_posix())
    table = _resolve(frames, relative_paths)
    log.info(
        "Read %d tracks from %d feature tables in %.2f s",
        len(table),
        len(relative_paths),
        time.perf_counter() - started,
    )
    return table


def _read_safely(path: Path) -> pd.DataFrame | None:
    started = time.perf_counter()
    try:
        frame = read_feature_file(path)
    except _READ_ERRORS as error:
        log.warning("Skipping unreadable feature table %s: %s", path, error)
        return None
    rows = 0 if frame is None else len(frame)
    log.debug("Read %d rows from %s in %.3f s", rows, path, time.perf_counter() - started)
    return frame


def _resolve(frames: list[pd.DataFrame], relative_paths: list[str]) -> FeatureTable:
    """Apply the duplicate rule and the imputation to the normalised frames of every file."""
    if not frames:
        log.warning("No audio-feature tables found")
        return _empty_table()
    combined = pd.concat(frames, ignore_index=True)
    combined["n_valid"] = combined[list(FEATURE_ORDER)].notna().sum(axis=1)
    ranked = combined.sort_values(
        ["id", "n_valid", "file", "row"], ascending=[True, False, True, True]
    )
    unique = ranked.drop_duplicates("id")
    best = unique[unique["n_valid"] >= MIN_VALID_FEATURES]
    log.debug(
        "%d rows, %d unique ids, %d ids dropped with fewer than %d valid features",
        len(combined),
        len(unique),
        len(unique) - len(best),
        MIN_VALID_FEATURES,
    )
    values, imputed = _impute(best[list(FEATURE_ORDER)].to_numpy(np.float64))
    kept = best["file"].value_counts()
    return FeatureTable(
        ids=best["id"].to_numpy(dtype="<U22"),
        values=values,
        imputed=imputed,
        names=_first_non_empty(ranked, best, "name"),
        artists=_first_non_empty(ranked, best, "artist"),
        sources={path: int(kept.get(rank, 0)) for rank, path in enumerate(relative_paths)},
    )


def _first_non_empty(ranked: pd.DataFrame, best: pd.DataFrame, column: str) -> list[str]:
    present = ranked.loc[ranked[column] != "", ["id", column]].drop_duplicates("id")
    lookup = present.set_index("id")[column]
    return lookup.reindex(best["id"]).fillna("").to_numpy(dtype=object).tolist()


def _impute(
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Fill NaN in an (n, 13) array per feature; returns float32 values and the (n, 13) mask."""
    imputed = np.isnan(values)
    fill = np.array([_fill_value(values[:, j], f) for j, f in enumerate(FEATURE_ORDER)])
    log.debug(
        "Imputed per feature: %s",
        dict(zip(FEATURE_ORDER, imputed.sum(axis=0).tolist(), strict=True)),
    )
    return np.where(imputed, fill, values).astype(np.float32), imputed


def _fill_value(column: npt.NDArray[np.float64], feature: str) -> float:
    """Median of a feature's valid values, or its most common value for a categorical one."""
    valid = column[~np.isnan(column)]
    if valid.size == 0:
        if column.size:
            log.warning("No valid %s in any table; imputing %s", feature, _FALLBACK[feature])
        return _FALLBACK[feature]
    if feature in _CATEGORICAL:
        levels, counts = np.unique(valid, return_counts=True)
        return float(levels[np.argmax(counts)])
    return float(np.median(valid))


def _empty_table() -> FeatureTable:
    shape = (0, len(FEATURE_ORDER))
    return FeatureTable(
        ids=np.array([], dtype="<U22"),
        values=np.zeros(shape, dtype=np.float32),
        imputed=np.zeros(shape, dtype=bool),
        names=[],
        artists=[],
        sources={},
    )
