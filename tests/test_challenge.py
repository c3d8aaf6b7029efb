from __future__ import annotations

import csv
import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from recommender.challenge import (
    ChallengePlaylist,
    check_writable,
    read_challenge_set,
    write_submission,
)
from recommender.playlist_io import PlaylistFileError

A = "4uLU6hMCjMI75M1A2tKUQC"
B = "0VjIjW4GlUZAMYd2vXMi3b"
C = "7qiZfU4dY1lWllzX7mPBI3"
# What click hands over for an empty argument; it equals Path(".").
EMPTY_PATH = Path("")  # noqa: PTH201


def uri(track_id: str) -> str:
    return f"spotify:track:{track_id}"


# --- challenge set --------------------------------------------------------------------------


def challenge_track(pos: int, track_id: str) -> dict[str, object]:
    return {
        "pos": pos,
        "artist_name": "Someone",
        "track_uri": uri(track_id),
        "artist_uri": f"spotify:artist:{B}",
        "track_name": "Something",
        "album_uri": f"spotify:album:{C}",
        "duration_ms": 200000,
        "album_name": "Some Album",
    }


def write_challenge(path: Path, playlists: list[dict[str, object]]) -> Path:
    data = {"date": "2018-01-16 08:47:28.198015", "version": "v1", "playlists": playlists}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


CHALLENGE = [
    {
        "name": "spring",
        "num_holdouts": 2,
        "pid": 1000,
        "num_samples": 3,
        "num_tracks": 5,
        "tracks": [challenge_track(2, C), challenge_track(0, A), challenge_track(1, B)],
    },
    {"num_holdouts": 10, "pid": 1001, "num_samples": 0, "num_tracks": 10, "tracks": []},
    {"name": "no samples key", "pid": 1002},
]


def test_read_challenge_set_sorts_seeds_and_keeps_empty_playlists(tmp_path: Path) -> None:
    path = write_challenge(tmp_path / "challenge_set.json", CHALLENGE)

    playlists = read_challenge_set(path)

    assert playlists == [
        ChallengePlaylist(1000, "spring", [uri(A), uri(B), uri(C)], 2, 3),
        ChallengePlaylist(1001, None, [], 10, 0),
        ChallengePlaylist(1002, "no samples key", [], None, None),
    ]


def test_challenge_seeds_without_pos_keep_file_order(tmp_path: Path) -> None:
    tracks = [{"track_uri": uri(C)}, {"track_uri": uri(A), "pos": 0}]
    path = write_challenge(tmp_path / "c.json", [{"pid": 5, "tracks": tracks}])

    assert read_challenge_set(path)[0].seed_uris == [uri(C), uri(A)]


@pytest.mark.parametrize(
    ("playlists", "message"),
    [
        ([{"pid": 7}, {"pid": 7}], "pid 7 appears twice in c.json"),
        ([{"pid": 7}, {"name": "x"}], "playlist number 2 in the challenge set has no pid"),
        ([{"pid": None}], "playlist number 1 in the challenge set has no pid"),
        (
            [{"pid": 7}, {"pid": "2365"}],
            "the pid of playlist number 2 in the challenge set must be an integer, not '2365'",
        ),
        (
            [{"pid": True}],
            "the pid of playlist number 1 in the challenge set must be an integer, not True",
        ),
        ([42], "playlist number 1 in the challenge set is not a JSON object"),
        ([{"pid": 9, "tracks": {}}], "playlist pid 9 has a malformed track list"),
        ([{"pid": 9, "tracks": 0}], "playlist pid 9 has a malformed track list"),
        ([{"pid": 9, "tracks": ""}], "playlist pid 9 has a malformed track list"),
        ([{"pid": 9, "tracks": False}], "playlist pid 9 has a malformed track list"),
        (
            [{"pid": 9, "tracks": [{"pos": 0, "track_uri": f"spotify:album:{B}"}]}],
            f"playlist pid 9 has a malformed track URI: 'spotify:album:{B}'",
        ),
        (
            [{"pid": 9, "tracks": [{"pos": 0}]}],
            "playlist pid 9 has a malformed track URI: None",
        ),
        ([{"pid": 9, "tracks": "nope"}], "playlist pid 9 has a malformed track list"),
        ([{"pid": 9, "num_holdouts": "5"}], "playlist pid 9 has a malformed num_holdouts: '5'"),
        (
            [{"pid": 9, "seeds": [], "hidden": [B]}],
            "playlist number 1 in the challenge set has 'hidden' tracks: "
            "is this the truth file, not the challenge set?",
        ),
        (
            [{"pid": -1}],
            "the pid of playlist number 1 in the challenge set must be from 0 to 2**63 - 1, not -1",
        ),
    ],
)
def test_challenge_set_validation(
    tmp_path: Path, playlists: list[dict[str, object]], message: str
) -> None:
    path = write_challenge(tmp_path / "c.json", playlists)

    with pytest.raises(PlaylistFileError) as caught:
        read_challenge_set(path)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "c.json is not valid JSON"),
        ('{"date": "x"}', "c.json has no list of playlists"),
        ("[]", "c.json has no list of playlists"),
        ('{"playlists": []}', "the challenge set holds no playlists"),
    ],
)
def test_challenge_set_file_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(PlaylistFileError) as caught:
        read_challenge_set(path)

    assert str(caught.value) == message


def test_challenge_tracks_null_means_no_seeds(tmp_path: Path) -> None:
    path = write_challenge(tmp_path / "c.json", [{"pid": 4, "tracks": None}])

    assert read_challenge_set(path)[0].seed_uris == []


def test_challenge_set_missing_or_empty_path_says_why(tmp_path: Path) -> None:
    with pytest.raises(PlaylistFileError) as caught:
        read_challenge_set(tmp_path / "c.json")
    assert str(caught.value) == "c.json could not be read: no such file or directory"

    with pytest.raises(PlaylistFileError) as caught:
        read_challenge_set(EMPTY_PATH)
    assert str(caught.value) == "no challenge set file was given"


# --- submission -----------------------------------------------------------------------------


def read_submission(path: Path) -> tuple[list[str], dict[int, list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        lines = list(csv.reader(handle))
    return lines[0], {int(row[0]): row[1:] for row in lines[1:]}


def test_challenge_round_trip_through_a_submission(tmp_path: Path) -> None:
    playlists = read_challenge_set(write_challenge(tmp_path / "challenge_set.json", CHALLENGE))
    guesses = {1000: [uri(B)], 1001: [uri(A), uri(C)], 1002: []}
    target = tmp_path / "submission.csv"

    written = write_submission(target, ((p.pid, guesses[p.pid]) for p in playlists))

    assert written == 3
    header, rows = read_submission(target)
    assert header == ["team_info", "HarmonYa", "harmonya@example.invalid"]
    assert rows == guesses
    assert target.read_text(encoding="utf-8").splitlines()[1] == f"1000,{uri(B)}"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "challenge_set.json",
        "submission.csv",
    ]


def test_submission_team_line_and_numpy_pid(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"

    rows = [(np.int64(3), (uri(A),))]
    write_submission(target, rows, team_name="Team X", contact="x@example.org")  # type: ignore[arg-type]

    assert target.read_text(encoding="utf-8") == f"team_info,Team X,x@example.org\n3,{uri(A)}\n"


def test_submission_overwrites_atomically(tmp_path: Path) -> None:
    target = tmp_path / "submission.csv"
    target.write_text("old\n", encoding="utf-8")

    assert write_submission(target, [(1, [uri(A)])]) == 1
    assert target.read_text(encoding="utf-8").endswith(f"1,{uri(A)}\n")
    assert [path.name for path in tmp_path.iterdir()] == ["submission.csv"]


def rows_then_bad(bad: tuple[int, Sequence[str]]) -> Iterator[tuple[int, Sequence[str]]]:
    yield 1, [uri(A), uri(B)]
    yield 2, [uri(C)]
    yield bad


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((3, [uri(A), uri(B), uri(A)]), f"pid 3 lists {uri(A)} more than once"),
        ((1, [uri(C)]), "pid 1 appears twice in the submission"),
        ((3, [f"spotify:album:{A}"]), f"pid 3 has a malformed track URI: 'spotify:album:{A}'"),
        ((3, [uri(A) + ",x"]), "pid 3 has a malformed track URI"),
        ((3, uri(A)), "pid 3 must be a sequence of URIs"),
        ((3, None), "the tracks of pid 3 must be a sequence of URIs, not NoneType"),
        (("3", [uri(A)]), "a submission pid must be an integer"),
        ((3,), "submission row 3 is not a (pid, track URIs) pair"),
    ],
)
def test_a_bad_row_leaves_the_target_untouched(
    tmp_path: Path, bad: tuple[int, Sequence[str]], message: str
) -> None:
    target = tmp_path / "submission.csv"
    target.write_text("previous submission\n", encoding="utf-8")

    with pytest.raises(ValueError, match=re.escape(message)):
        write_submission(target, rows_then_bad(bad))

    assert target.read_text(encoding="utf-8") == "previous submission\n"
    assert [path.name for path in tmp_path.iterdir()] == ["submission.csv"]


def test_a_crash_mid_write_leaves_no_file(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[int, Sequence[str]]]:
        yield 1, [uri(A)]
        raise RuntimeError("model fell over")

    target = tmp_path / "submission.csv"

    with pytest.raises(RuntimeError):
        write_submission(target, rows())

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("team_name", ["", "a,b", "two\nlines"])
def test_submission_rejects_a_bad_team_name(tmp_path: Path, team_name: str) -> None:
    with pytest.raises(ValueError, match="team_name"):
        write_submission(tmp_path / "s.csv", [], team_name=team_name)

    assert list(tmp_path.iterdir()) == []


def test_submission_into_a_missing_directory_was_a_raw_os_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "submission.csv"

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])

    assert str(caught.value) == (
        f"cannot write {target}: the directory {target.parent} does not exist"
    )
    assert list(tmp_path.iterdir()) == []


def test_submission_onto_a_directory_was_a_raw_os_error(tmp_path: Path) -> None:
    target = tmp_path / "out"
    (target / "inside").mkdir(parents=True)

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])

    assert str(caught.value) == f"cannot write {target}: it is a directory"
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
    assert [path.name for path in target.iterdir()] == ["inside"]


def test_submission_under_a_file_was_a_raw_os_error(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("x", encoding="utf-8")
    target = tmp_path / "notes" / "submission.csv"

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])

    assert str(caught.value) == f"cannot write {target}: {target.parent} is not a directory"


def test_submission_to_an_empty_path_was_a_raw_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(EMPTY_PATH, [(1, [uri(A)])])

    assert str(caught.value) == "cannot write: no file name was given"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_submission_under_proc_was_a_raw_os_error() -> None:
    target = Path("/proc/harmonya-submission.csv")

    with pytest.raises(PlaylistFileError) as caught:
        check_writable(target)
    assert str(caught.value).startswith(f"cannot write {target}: no file can be created in /proc")

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])
    assert str(caught.value).startswith(f"cannot write {target}: ")
    assert "\n" not in str(caught.value)


def test_a_failed_write_is_a_playlist_file_error_and_leaves_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "submission.csv"
    target.write_text("previous submission\n", encoding="utf-8")
    monkeypatch.setattr(os, "fsync", disk_full)

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])

    assert str(caught.value) == f"cannot write {target}: no space left on device"
    assert target.read_text(encoding="utf-8") == "previous submission\n"
    assert [path.name for path in tmp_path.iterdir()] == ["submission.csv"]


def test_an_os_error_from_the_callers_rows_is_not_blamed_on_the_target(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[int, Sequence[str]]]:
        yield 1, [uri(A)]
        raise FileNotFoundError(errno.ENOENT, "model file vanished")

    with pytest.raises(FileNotFoundError, match="model file vanished"):
        write_submission(tmp_path / "submission.csv", rows())

    assert list(tmp_path.iterdir()) == []


def test_check_writable_accepts_a_new_or_existing_file(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_text("x", encoding="utf-8")

    check_writable(tmp_path / "new.csv")
    check_writable(tmp_path / "old.csv")

    assert [path.name for path in tmp_path.iterdir()] == ["old.csv"]


def test_check_writable_refuses_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x", encoding="utf-8")
    cases = {
        tmp_path / "dir": "it is a directory",
        tmp_path / "gone" / "s.csv": f"the directory {tmp_path / 'gone'} does not exist",
        tmp_path / "file" / "s.csv": f"{tmp_path / 'file'} is not a directory",
    }

    for path, reason in cases.items():
        with pytest.raises(PlaylistFileError) as caught:
            check_writable(path)
        assert str(caught.value) == f"cannot write {path}: {reason}"


def no_file_may_be_created(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def test_check_writable_trusted_os_access_which_always_says_yes_to_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the failure to create a file is faked rather than chmod-ed.
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_file_may_be_created)
    target = tmp_path / "submission.csv"
    expected = f"cannot write {target}: no file can be created in {tmp_path} (permission denied)"

    with pytest.raises(PlaylistFileError) as caught:
        check_writable(target)
    assert str(caught.value) == expected

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])
    assert str(caught.value) == expected
    assert list(tmp_path.iterdir()) == []


# --- what is at the --out path --------------------------------------------------------------


def test_submission_through_a_symlink_replaced_the_link_and_left_its_target_stale(
    tmp_path: Path,
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "real" / "submission.csv"
    real.write_text("stale\n", encoding="utf-8")
    link = tmp_path / "links" / "submission.csv"
    link.symlink_to(Path("..") / "real" / "submission.csv")

    check_writable(link)
    write_submission(link, [(1, [uri(A)])])

    assert link.is_symlink()
    assert link.readlink() == Path("..") / "real" / "submission.csv"
    assert real.read_text(encoding="utf-8").endswith(f"1,{uri(A)}\n")
    assert [path.name for path in (tmp_path / "real").iterdir()] == ["submission.csv"]
    assert [path.name for path in (tmp_path / "links").iterdir()] == ["submission.csv"]


def test_submission_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "submission.csv"
    link.symlink_to(tmp_path / "real" / "new.csv")

    write_submission(link, [(1, [uri(A)])])

    assert link.is_symlink()
    assert (tmp_path / "real" / "new.csv").read_text(encoding="utf-8").endswith(f"1,{uri(A)}\n")


def test_submission_through_a_dangling_symlink_names_the_missing_directory(
    tmp_path: Path,
) -> None:
    link = tmp_path / "submission.csv"
    link.symlink_to(tmp_path / "gone" / "new.csv")

    with pytest.raises(PlaylistFileError) as caught:
        check_writable(link)

    assert str(caught.value) == (
        f"cannot write {link}: the directory {tmp_path / 'gone'} does not exist"
    )


def test_submission_onto_a_fifo_replaced_it_with_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    link = tmp_path / "link.csv"
    link.symlink_to(fifo)

    for path in (fifo, link):
        with pytest.raises(PlaylistFileError) as caught:
            check_writable(path)
        assert str(caught.value) == f"cannot write {path}: it is not a regular file"
        with pytest.raises(PlaylistFileError) as caught:
            write_submission(path, [(1, [uri(A)])])
        assert str(caught.value) == f"cannot write {path}: it is not a regular file"

    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["link.csv", "out.csv"]


@pytest.mark.skipif(not Path("/dev/null").is_char_device(), reason="needs /dev/null")
def test_submission_onto_dev_null_replaced_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_create(*args: object, **kwargs: object) -> None:
        # Not an OSError, so nothing turns it into a refusal: reaching here fails the test
        # before anything is created in /dev.
        raise AssertionError("a temp file was about to be created")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", must_not_create)
    link = tmp_path / "out.csv"
    link.symlink_to("/dev/null")

    for path in (Path("/dev/null"), link):
        with pytest.raises(PlaylistFileError) as caught:
            check_writable(path)
        assert str(caught.value) == f"cannot write {path}: it is not a regular file"
        with pytest.raises(PlaylistFileError) as caught:
            write_submission(path, [(1, [uri(A)])])
        assert str(caught.value) == f"cannot write {path}: it is not a regular file"

    assert Path("/dev/null").is_char_device()


def test_submission_over_a_private_file_made_it_world_readable(tmp_path: Path) -> None:
    target = tmp_path / "submission.csv"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o600)

    write_submission(target, [(1, [uri(A)])])

    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text(encoding="utf-8").endswith(f"1,{uri(A)}\n")


def test_new_submission_ignored_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_submission(tmp_path / "private.csv", [(1, [uri(A)])])
        os.umask(0o022)
        write_submission(tmp_path / "shared.csv", [(1, [uri(A)])])
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "private.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared.csv").stat().st_mode) == 0o644


def test_check_writable_over_the_challenge_set_itself_was_allowed(tmp_path: Path) -> None:
    challenge_set = write_challenge(tmp_path / "challenge_set.json", CHALLENGE)
    link = tmp_path / "out.csv"
    link.symlink_to(challenge_set.name)

    for path in (challenge_set, link, tmp_path / "." / "challenge_set.json"):
        with pytest.raises(PlaylistFileError) as caught:
            check_writable(path, not_same_as=challenge_set)
        assert str(caught.value) == f"cannot write {path}: it is the challenge set itself"

    check_writable(tmp_path / "submission.csv", not_same_as=challenge_set)
    (tmp_path / "other.csv").write_text("x", encoding="utf-8")
    check_writable(tmp_path / "other.csv", not_same_as=challenge_set)
    assert read_challenge_set(challenge_set)[0].pid == 1000


def test_check_writable_through_a_symlink_loop_says_why(tmp_path: Path) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop.name)

    with pytest.raises(PlaylistFileError) as caught:
        check_writable(loop)

    assert str(caught.value) == f"cannot write {loop}: too many levels of symbolic links"
