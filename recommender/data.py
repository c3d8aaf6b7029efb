"""Reading Million Playlist Dataset slices into compact playlist-track arrays.

MPD slices are JSON objects ``{"info": {...}, "playlists": [...]}``, plain or gzipped. Each
playlist has a ``pid`` and ``tracks``; each track needs only ``track_uri`` (``track_name`` and
``artist_name`` are kept for display; ``pos``, album and duration fields are optional and
unused). Reading streams one slice at a time, so memory follows the number of distinct tracks
and rows, not the size of the files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

log = logging.getLogger(__name__)

TRACK_URI_PREFIX = "spotify:track:"
_TRACK_ID = re.compile(r"[0-9A-Za-z]{22}")
_SNIFF_BYTES = 4096
MAX_PID = 2**63 - 1


class DataError(ValueError):
    """Input data that cannot be used, with a message fit for a user."""


@dataclass(frozen=True)
class Playlist:
    """One playlist: its id, title and track ids (22-character Spotify ids) in order."""

    pid: int
    name: str
    track_ids: list[str]


@dataclass
class Interactions:
    """Playlists as CSR rows over a track vocabulary.

    ``tracks[indptr[p]:indptr[p + 1]]`` are the vocabulary indices of playlist ``p`` in order.
    """

    track_ids: list[str]
    track_names: list[str]
    track_artists: list[str]
    pids: npt.NDArray[np.int64]
    playlist_names: list[str]
    indptr: npt.NDArray[np.int64]
    tracks: npt.NDArray[np.int32]
    files: list[str] = field(default_factory=list)

    @property
    def n_playlists(self) -> int:
        return len(self.pids)

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    def playlist(self, row: int) -> npt.NDArray[np.int32]:
        """Vocabulary indices of playlist ``row``, shape (length,), int32."""
        return self.tracks[self.indptr[row] : self.indptr[row + 1]]

    def counts(self) -> npt.NDArray[np.int64]:
        """Occurrences of each track (a repeat inside one playlist counts each time)."""
        return np.bincount(self.tracks, minlength=self.n_tracks)

    def subset(self, rows: npt.NDArray[np.int64]) -> Interactions:
        """The playlists at ``rows`` (shape (m,), int), over the tracks they use only.

        The vocabulary is compacted (order kept), so a track that occurs only in playlists
        left out is unknown to whatever is trained on the subset.
        """
        lengths = np.diff(self.indptr)[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        parts = [self.playlist(int(r)) for r in rows]
        old = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        used = np.unique(old)
        remap = np.full(self.n_tracks, -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        tracks = remap[old]
        return Interactions(
            track_ids=[self.track_ids[i] for i in used],
            track_names=[self.track_names[i] for i in used],
            track_artists=[self.track_artists[i] for i in used],
            pids=self.pids[rows],
            playlist_names=[self.playlist_names[int(r)] for r in rows],
            indptr=indptr,
            tracks=tracks.astype(np.int32, copy=False),
            files=self.files,
        )


def track_id_from_uri(uri: str) -> str | None:
    """The 22-character id of a ``spotify:track:`` URI, or None for anything else."""
    if not isinstance(uri, str) or not uri.startswith(TRACK_URI_PREFIX):
        return None
    track_id = uri[len(TRACK_URI_PREFIX) :]
    return track_id if _TRACK_ID.fullmatch(track_id) else None


def _open_text(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def is_mpd_slice(path: Path) -> bool:
    """Whether ``path`` looks like an MPD slice, judged from its first bytes only."""
    try:
        with _open_text(path) as handle:
            head = handle.read(_SNIFF_BYTES)
    except (OSError, UnicodeDecodeError, EOFError, zlib.error):
        return False
    stripped = head.lstrip("\ufeff \t\r\n")
    return stripped.startswith("{") and ('"playlists"' in head or '"info"' in head)


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root``, following symlinked folders (once each), hidden ones skipped.

    People point ``--data`` at a folder of symlinks to their downloads, which ``Path.rglob``
    would not enter.
    """
    return sorted(path for _, files in _walk(root) for path in files)


def data_folders(root: Path) -> list[Path]:
    """The real path of every folder :func:`walk_files` reads files from, symlinked files'
    folders included."""
    folders: dict[Path, None] = {}
    for real, files in _walk(root):
        folders[real] = None
        for path in files:
            if path.is_symlink():
                folders[path.resolve().parent] = None
    return list(folders)


def _walk(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    visited: set[str] = set()
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:
            subdirectories[:] = []
            continue
        visited.add(real)
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        yield Path(real), [Path(directory) / name for name in files if not name.startswith(".")]


def find_mpd_files(root: Path) -> list[Path]:
    """Every MPD slice under ``root`` (a file or a directory), in sorted path order."""
    if root.is_file():
        candidates = [root]
    elif root.is_dir():
        candidates = [p for p in walk_files(root) if p.name.endswith((".json", ".json.gz"))]
    else:
        raise DataError(f"no such file or directory: {root}")
    return [p for p in candidates if is_mpd_slice(p)]


def _parse_slice(path: Path) -> list[dict[str, Any]]:
    try:
        with _open_text(path) as handle:
            document = json.load(handle)
    # ValueError covers bad JSON, bad UTF-8 and a number too long to convert.
    except (OSError, EOFError, ValueError, RecursionError, zlib.error) as error:
        log.warning("skipping %s: not readable as JSON (%s)", path, error)
        return []
    playlists = document.get("playlists") if isinstance(document, dict) else None
    if not isinstance(playlists, list):
        log.warning("skipping %s: no 'playlists' list", path)
        return []
    return [p for p in playlists if isinstance(p, dict)]


def _to_playlist(raw: dict[str, Any], meta: dict[str, tuple[str, str]]) -> Playlist | None:
    pid = raw.get("pid")
    tracks = raw.get("tracks")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(tracks, list):
        return None
    if not 0 <= pid <= MAX_PID:  # pids are stored as int64
        return None
    if tracks and all(isinstance(t, dict) and "pos" in t for t in tracks):
        tracks = sorted(tracks, key=lambda t: t["pos"] if isinstance(t["pos"], int) else 0)
    track_ids: list[str] = []
    for track in tracks:
        if not isinstance(track, dict):
            continue
        track_id = track_id_from_uri(track.get("track_uri", ""))
        if track_id is None:
            continue
        track_ids.append(track_id)
        if track_id not in meta:
            meta[track_id] = (
                str(track.get("track_name") or ""),
                str(track.get("artist_name") or ""),
            )
    return Playlist(pid=pid, name=str(raw.get("name") or ""), track_ids=track_ids)


def iter_playlists(
    files: Iterable[Path],
    *,
    progress: bool = False,
    metadata: dict[str, tuple[str, str]] | None = None,
) -> Iterator[Playlist]:
    """Yield playlists slice by slice; ``metadata`` collects track id -> (name, artist)."""
    meta = metadata if metadata is not None else {}
    files = list(files)
    for path in tqdm(files, desc="playlists", unit="file", disable=not progress):
        for raw in _parse_slice(path):
            playlist = _to_playlist(raw, meta)
            if playlist is not None:
                yield playlist


def read_interactions(root: Path, *, progress: bool = False, min_length: int = 1) -> Interactions:
    """Read every MPD slice under ``root`` into :class:`Interactions`.

    Playlists with fewer than ``min_length`` valid tracks are skipped. A playlist repeated
    exactly (same pid, same tracks) is read once; two different playlists that share a pid
    (subsets renumber pids, so this happens when two subsets sit side by side) are both kept.
    Raises :class:`DataError` when no playlist is found.
    """
    files = find_mpd_files(root)
    if not files:
        raise DataError(f"no Million Playlist Dataset slices (mpd.slice.*.json[.gz]) under {root}")
    vocabulary: dict[str, int] = {}
    metadata: dict[str, tuple[str, str]] = {}
    pids: list[int] = []
    names: list[str] = []
    lengths: list[int] = []
    chunks: list[npt.NDArray[np.int32]] = []
    seen: set[tuple[int, int]] = set()
    for playlist in iter_playlists(files, progress=progress, metadata=metadata):
        key = (playlist.pid, hash(tuple(playlist.track_ids)))
        if key in seen or len(playlist.track_ids) < min_length:
            continue
        seen.add(key)
        indices = [vocabulary.setdefault(t, len(vocabulary)) for t in playlist.track_ids]
        chunks.append(np.asarray(indices, dtype=np.int32))
        pids.append(playlist.pid)
        names.append(playlist.name)
        lengths.append(len(indices))
    if not pids:
        raise DataError(f"the slices under {root} hold no playlist with tracks")
    track_ids = list(vocabulary)
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    log.info("read %d playlists, %d rows, %d tracks", len(pids), indptr[-1], len(track_ids))
    return Interactions(
        track_ids=track_ids,
        track_names=[metadata[t][0] for t in track_ids],
        track_artists=[metadata[t][1] for t in track_ids],
        pids=np.asarray(pids, dtype=np.int64),
        playlist_names=names,
        indptr=indptr,
        tracks=np.concatenate(chunks),
        files=[str(p) for p in files],
    )


def fingerprint_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """A sha256 over the names and bytes of ``paths``: the identity of a training set."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        inside = root is not None and path.is_relative_to(root)
        name = str(path.relative_to(root)) if inside and root is not None else path.name
        # A file name that is not UTF-8 comes back as its own bytes, not an error.
        digest.update(name.encode("utf-8", "surrogateescape"))
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
