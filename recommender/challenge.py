"""The RecSys Challenge 2018 files: reading a challenge set, writing a submission.

These files are ours to produce and the challenge's to define, so their checks are stricter
than for playlists people upload: a malformed entry is an error naming its pid.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from recommender.playlist_io import PlaylistFileError, load_json_file, os_reason

log = logging.getLogger(__name__)

_TRACK_URI_RE = re.compile(r"spotify:track:[0-9A-Za-z]{22}")


@dataclass(frozen=True)
class ChallengePlaylist:
    """One playlist of the RecSys Challenge 2018 challenge set; `seed_uris` may be empty."""

    pid: int
    name: str | None
    seed_uris: list[str]
    num_holdouts: int | None
    num_samples: int | None


def read_challenge_set(path: Path) -> list[ChallengePlaylist]:
    """Read the challenge's `challenge_set.json`; seeds come back in `pos` order."""
    path = Path(path)
    if not path.name:
        raise PlaylistFileError("no challenge set file was given")
    data = load_json_file(path)
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
    row is valid, so a failure leaves `path` as it was. A symlink's target is what gets
    replaced, and an existing file keeps its permission bits. Raises PlaylistFileError when
    `path` cannot be written or is not a regular file, ValueError naming the pid for a
    malformed pid or URI, a repeated pid, or a row that lists a track twice; 500 tracks per
    row is the caller's business.
    """
    path = Path(path)
    for label, value in (("team_name", team_name), ("contact", contact)):
        if not value or any(char in value for char in ",\r\n"):
            raise ValueError(f"{label} must be non-empty and contain no comma or line break")
    target, mode = _target(path)

    handle = _temp_file(path, target)
    temp_path = Path(handle.name)
    try:
        _write(handle, f"team_info,{team_name},{contact}\n", path)
        count = _write_rows(handle, rows, path)
        with _write_errors(path):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            temp_path.chmod(mode)
            temp_path.replace(target)
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


def check_writable(path: Path, *, not_same_as: Path | None = None) -> None:
    """Raise PlaylistFileError unless a file could be written at `path`, before work is spent.

    `path` (or the file a symlink there points to) must be a regular file or not exist yet, in
    a directory where a file can be created; that is tried, since root passes any permission
    check. Give `not_same_as` the input file to refuse overwriting it. `write_submission`
    still reports a later failure.
    """
    path = Path(path)
    target, _ = _target(path)
    if not_same_as is not None and _same_file(target, Path(not_same_as)):
        raise PlaylistFileError(_cannot_write(path, "it is the challenge set itself"))
    _probe(path, target)


def _target(path: Path) -> tuple[Path, int]:
    """Return the file a write to `path` replaces (symlinks resolved) and the mode to give it."""
    if not path.name:
        raise PlaylistFileError(_cannot_write(path, "no file name was given"))
    target = Path(os.path.realpath(path))
    try:
        # `path`, not `target`: /dev/stdout resolves to a name like "pipe:[123]" that is no file.
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        # A dangling symlink creates its target, so it is the target's directory that counts.
        _check_directory(path, target.parent if path.is_symlink() else path.parent)
        return target, _new_file_mode()
    except OSError as exc:
        raise PlaylistFileError(_cannot_write(path, os_reason(exc))) from exc
    if stat.S_ISDIR(status.st_mode):
        raise PlaylistFileError(_cannot_write(path, "it is a directory"))
    # Replacing a FIFO or a device (/dev/null, /dev/stdout) would swap it for a plain file.
    if not stat.S_ISREG(status.st_mode):
        raise PlaylistFileError(_cannot_write(path, "it is not a regular file"))
    return target, stat.S_IMODE(status.st_mode)


def _check_directory(path: Path, directory: Path) -> None:
    try:
        status = directory.stat()
    except (FileNotFoundError, NotADirectoryError):
        reason = f"the directory {directory} does not exist"
        raise PlaylistFileError(_cannot_write(path, reason)) from None
    except OSError as exc:
        raise PlaylistFileError(_cannot_write(path, os_reason(exc))) from exc
    if not stat.S_ISDIR(status.st_mode):
        raise PlaylistFileError(_cannot_write(path, f"{directory} is not a directory"))


def _probe(path: Path, target: Path) -> None:
    # os.access says yes to root for any directory; creating the temp file the write would
    # create is an answer that holds for everyone.
    handle = _temp_file(path, target)
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(OSError):
        Path(handle.name).unlink()


def _same_file(target: Path, other: Path) -> bool:
    try:
        return target.samefile(other)
    except OSError:
        return target == Path(os.path.realpath(other))


def _new_file_mode() -> int:
    # The umask can only be read by setting it; it is put back at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o644 & ~umask


def _cannot_write(path: Path, reason: str) -> str:
    return f"cannot write {path}: {reason}" if path.name else f"cannot write: {reason}"


def _challenge_playlist(raw: object, number: int) -> ChallengePlaylist:
    where = f"playlist number {number} in the challenge set"
    if not isinstance(raw, dict):
        raise PlaylistFileError(f"{where} is not a JSON object")
    if raw.get("pid") is None:
        raise PlaylistFileError(f"{where} has no pid")
    if not _is_int(raw["pid"]):
        raise PlaylistFileError(f"the pid of {where} must be an integer, not {raw['pid']!r}")
    if "hidden" in raw and "tracks" not in raw:
        raise PlaylistFileError(
            f"{where} has 'hidden' tracks: is this the truth file, not the challenge set?"
        )
    pid = int(raw["pid"])
    if not 0 <= pid < 2**63:  # written as a row's first field and read back as int64
        raise PlaylistFileError(f"the pid of {where} must be from 0 to 2**63 - 1, not {pid}")
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


def _temp_file(path: Path, target: Path) -> IO[str]:
    try:
        return tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="\n",
            dir=target.parent,
            # Cut so that prefix and random part stay under the usual 255-byte name limit.
            prefix=f".{target.name[:100]}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as exc:
        reason = f"no file can be created in {target.parent} ({os_reason(exc)})"
        raise PlaylistFileError(_cannot_write(path, reason)) from exc


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    # Wraps only our own file operations: an OSError raised by the caller's rows stays as is.
    try:
        yield
    except OSError as exc:
        raise PlaylistFileError(_cannot_write(path, os_reason(exc))) from exc


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
