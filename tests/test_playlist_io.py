from __future__ import annotations

import csv
import errno
import json
import os
import re
from collections import Counter
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
from recommender.playlist_io import (
    SKIP_EPISODE,
    SKIP_LOCAL,
    PlaylistFileError,
    PlaylistInput,
    parse_playlist_text,
    read_playlist_file,
)

A = "4uLU6hMCjMI75M1A2tKUQC"
B = "0VjIjW4GlUZAMYd2vXMi3b"
C = "7qiZfU4dY1lWllzX7mPBI3"
EPISODE = "512ojhOuo1ktJprKbVcKyQ"
# What click hands over for an empty argument; it equals Path(".").
EMPTY_PATH = Path("")  # noqa: PTH201


def uri(track_id: str) -> str:
    return f"spotify:track:{track_id}"


def url(track_id: str) -> str:
    return f"https://open.spotify.com/track/{track_id}?si=abc123"


def reasons(playlist: PlaylistInput) -> Counter[str]:
    return Counter(reason for _, _, reason in playlist.skipped)


# --- text files -----------------------------------------------------------------------------


def test_text_file_one_link_per_line(tmp_path: Path) -> None:
    path = tmp_path / "mix.txt"
    path.write_text(
        f"# my road trip mix\n{url(A)}\n\n  spotify:track:{B}  \n{C}\n<{url(A)}>\n",
        encoding="utf-8",
    )

    playlist = read_playlist_file(path)

    assert playlist == PlaylistInput(track_ids=[A, B, C], skipped=[], name=None)


def test_text_skips_local_files_episodes_and_garbage_with_line_numbers() -> None:
    text = "\n".join(
        [
            uri(A),
            "spotify:local:Some+Artist:Some+Album:Demo+Take:187",
            f"https://open.spotify.com/episode/{EPISODE}",
            "hello there",
            f"https://open.spotify.com/album/{B}",
            uri(C),
        ]
    )

    playlist = parse_playlist_text(text)

    assert playlist.track_ids == [A, C]
    assert [number for number, _, _ in playlist.skipped] == [2, 3, 4, 5]
    assert playlist.skipped[0] == (
        2,
        "spotify:local:Some+Artist:Some+Album:Demo+Take:187",
        SKIP_LOCAL,
    )
    assert playlist.skipped[1][2] == SKIP_EPISODE
    assert playlist.skipped[2][2] == "that is not a Spotify link"
    assert playlist.skipped[3][2] == "that is a Spotify album link, not a track link"


def test_duplicates_are_dropped_keeping_the_first() -> None:
    playlist = parse_playlist_text(f"{uri(B)}\n{url(A)}\n{B}\n{uri(A)}\n{C}\n")

    assert playlist.track_ids == [B, A, C]
    assert playlist.skipped == []


def test_crlf_line_endings() -> None:
    assert parse_playlist_text(f"{uri(A)}\r\n{uri(B)}\r\n").track_ids == [A, B]


TITLED_MIX = f"Road trip, part 2\n{uri(A)}\n{url(B)}\n\nspotify:local:a:b:c:1\n<{url(C)}>\n"


@pytest.mark.parametrize("filename", ["mix.txt", ""])
def test_text_file_whose_title_has_a_comma_was_misread_as_csv(
    tmp_path: Path, filename: str
) -> None:
    if filename:
        path = tmp_path / filename
        path.write_text(TITLED_MIX, encoding="utf-8")
        playlist = read_playlist_file(path)
    else:
        playlist = parse_playlist_text(TITLED_MIX)

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == [
        (1, "Road trip, part 2", "that is not a Spotify link"),
        (5, "spotify:local:a:b:c:1", SKIP_LOCAL),
    ]


def test_titled_text_file_named_csv_takes_the_title_for_a_header() -> None:
    playlist = parse_playlist_text(TITLED_MIX, "mix.csv")

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == [(5, "spotify:local:a:b:c:1", SKIP_LOCAL)]


def test_titled_text_file_with_a_note_line_still_finds_the_links() -> None:
    text = f"Road trip, part 2\n{uri(A)}\nthe good ones, in order\n{url(B)}\n{uri(C)}\n"

    playlist = parse_playlist_text(text)

    assert playlist.track_ids == [A, B, C]
    assert [number for number, _, _ in playlist.skipped] == [3]


# --- CSV files ------------------------------------------------------------------------------

EXPORTIFY_HEADER = (
    "Track URI,Track Name,Artist URI(s),Artist Name(s),Album URI,Album Name,"
    "Album Release Date,Duration (ms),Popularity,Added By,Added At"
)


def exportify_row(track_uri: str, name: str, artists: str) -> str:
    return (
        f'"{track_uri}","{name}","spotify:artist:{B}","{artists}","spotify:album:{C}",'
        f'"Some Album","2019-05-03","201000","55","spotify:user:someone","2023-01-02T10:00:00Z"'
    )


def test_exportify_csv(tmp_path: Path) -> None:
    path = tmp_path / "Road_Trip.csv"
    rows = [
        EXPORTIFY_HEADER,
        exportify_row(uri(A), "Song, with a comma", "Artist One,Artist Two"),
        exportify_row("spotify:local:Me:Demos:Garage+Jam:240", "Garage Jam", "Me"),
        exportify_row(uri(B), 'A "quoted" title', "Artist Three"),
        exportify_row(f"spotify:episode:{EPISODE}", "Episode 12", "A Podcast"),
        exportify_row(uri(C), "Last", "Artist Four"),
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    playlist = read_playlist_file(path)

    assert playlist.track_ids == [A, B, C]
    assert reasons(playlist) == Counter({SKIP_LOCAL: 1, SKIP_EPISODE: 1})
    assert [number for number, _, _ in playlist.skipped] == [3, 5]
    assert playlist.skipped[0][1].startswith("spotify:local:Me:Demos:Garage+Jam:240,Garage Jam")


def test_semicolon_csv_with_bom_and_crlf_as_bytes() -> None:
    text = f"Titel;Spotify URI;Künstler\r\nEins;{uri(A)};X\r\nZwei;{uri(B)};Y\r\n"

    playlist = parse_playlist_text(b"\xef\xbb\xbf" + text.encode("utf-8"), "liste.csv")

    assert playlist.track_ids == [A, B]


@pytest.mark.parametrize(
    "header",
    [
        "Track URI",
        "track uri",
        "  TRACK_URI ",
        "uri",
        "Spotify URI",
        "spotify_uri",
        "track_id",
        "id",
        "Spotify - id",
    ],
)
def test_csv_uri_column_names(header: str) -> None:
    text = f"Track Name,{header},Artist\nOne,{uri(A)},X\nTwo,{B},Y\n"

    assert parse_playlist_text(text).track_ids == [A, B]


def test_csv_with_bom_before_the_uri_header() -> None:
    text = f"\ufeffTrack URI,Track Name\n{uri(A)},One\n"

    assert parse_playlist_text(text.encode("utf-8")).track_ids == [A]


def test_csv_prefers_the_track_uri_column_over_an_id_column() -> None:
    text = f"id,Track URI\n{B},{uri(A)}\n"

    assert parse_playlist_text(text, "x.csv").track_ids == [A]


def test_tab_separated() -> None:
    assert parse_playlist_text(f"name\turi\nOne\t{uri(A)}\n").track_ids == [A]


def test_csv_without_header_when_a_cell_is_a_track() -> None:
    text = f"{uri(A)},First Song\n{uri(B)},Second Song\n"

    assert parse_playlist_text(text).track_ids == [A, B]


def test_csv_empty_uri_cell_is_skipped_with_the_row() -> None:
    playlist = parse_playlist_text(f"Track URI,Track Name\n,Nothing here\n{uri(A)},Real\n")

    assert playlist.track_ids == [A]
    assert playlist.skipped == [(2, ",Nothing here", "no Spotify track link was given")]


def test_csv_without_a_uri_column_lists_the_columns() -> None:
    text = "Track Name,Artist Name(s),Album Name\nSong,Artist,Album\n"

    with pytest.raises(PlaylistFileError) as caught:
        parse_playlist_text(text, "songs.csv")

    assert str(caught.value) == (
        "no track URI column was found; the columns are: Track Name, Artist Name(s), Album Name"
    )


@pytest.mark.parametrize("filename", ["export.csv", "export.txt", ""])
def test_csv_whose_first_line_is_a_comment_with_a_comma_lost_its_header(filename: str) -> None:
    text = (
        "# exported by Exportify, 2024\r\n\r\n# second, comment\r\n"
        f"Track URI;Track Name\r\n{uri(A)};One\r\nspotify:local:a:b:c:1;Two\r\n{uri(B)};Three\r\n"
    )

    playlist = parse_playlist_text(text, filename)

    assert playlist.track_ids == [A, B]
    assert playlist.skipped == [(6, "spotify:local:a:b:c:1;Two", SKIP_LOCAL)]


def test_csv_malformed_line_number_counts_the_comment_lines() -> None:
    huge_field = '"' + "x" * 200_000 + '"'
    text = f"# exported, 2024\nTrack URI,Name\n{uri(A)},One\n{uri(B)},{huge_field}\n"

    with pytest.raises(PlaylistFileError) as caught:
        parse_playlist_text(text, "x.csv")

    assert str(caught.value) == "the CSV file is malformed near line 4"


def test_csv_row_starting_with_a_hash_after_the_header_is_data() -> None:
    text = f"Track Name,Track URI\n#1 Crush,{uri(A)}\n# not a comment,{uri(B)}\n"

    assert parse_playlist_text(text).track_ids == [A, B]


def test_csv_with_an_unknown_header_finds_the_link_column() -> None:
    text = f"Song,Link,Note\nOne,{uri(A)},x\nTwo,{url(B)},y\nThree,,z\nFour,{C},\n"

    playlist = parse_playlist_text(text, "songs.csv")

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == [(4, "Three,,z", "no Spotify track link was given")]


def test_headerless_csv_whose_first_row_is_a_local_file_was_refused() -> None:
    text = f"spotify:local:Me:Demos:Jam:240,Jam\n{uri(A)},One\n{uri(B)},Two\n"

    playlist = parse_playlist_text(text)

    assert playlist.track_ids == [A, B]
    assert playlist.skipped == [(1, "spotify:local:Me:Demos:Jam:240,Jam", SKIP_LOCAL)]


def test_csv_with_a_few_links_in_a_text_column_finds_no_column() -> None:
    text = f"Title,Comment\nOne,nice\nTwo,see {uri(A)}\nThree,{uri(B)}\nFour,meh\nFive,ok\n"

    with pytest.raises(PlaylistFileError, match="no track URI column was found"):
        parse_playlist_text(text)


def test_csv_with_a_header_only() -> None:
    with pytest.raises(PlaylistFileError, match="the file lists no tracks"):
        parse_playlist_text("Track URI,Track Name\n")


# --- JSON files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        [url(A), uri(B), C],
        [{"uri": uri(A)}, {"track_uri": uri(B)}, {"id": C}],
        {"tracks": [{"uri": uri(A)}, {"uri": uri(B)}, {"uri": uri(C)}]},
        {"items": [{"track": {"uri": uri(A)}}, {"track": {"uri": uri(B)}}, {"item": {"id": C}}]},
        {
            "tracks": {
                "items": [
                    {"added_at": "2024-01-01T00:00:00Z", "track": {"uri": uri(A), "track": True}},
                    {"track": {"uri": uri(B), "type": "track", "episode": False}},
                    {"track": {"id": C}},
                ],
                "next": None,
            }
        },
        {
            "items": {
                "items": [{"item": {"uri": uri(A)}}, {"item": {"uri": uri(B)}}, {"item": {"id": C}}]
            }
        },
        [{"uri": uri(A), "track": True, "episode": False}, url(B), {"id": C, "type": "track"}],
    ],
)
def test_json_variants(data: object) -> None:
    playlist = parse_playlist_text(json.dumps(data), "playlist.json")

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == []


def test_json_web_api_playlist_keeps_name_and_skips_what_is_not_a_track() -> None:
    data = {
        "name": "Friday Night",
        "tracks": {
            "items": [
                {"track": {"uri": uri(A), "type": "track", "is_local": False}},
                {"track": {"uri": "spotify:local:::Voice+Memo:30", "is_local": True}},
                {"track": {"uri": f"spotify:episode:{EPISODE}", "type": "episode"}},
                {"track": None},
                {"track": {"uri": uri(B), "type": "track"}},
                42,
            ]
        },
    }

    playlist = parse_playlist_text(json.dumps(data))

    assert playlist.name == "Friday Night"
    assert playlist.track_ids == [A, B]
    assert [number for number, _, _ in playlist.skipped] == [2, 3, 4, 6]
    assert reasons(playlist) == Counter(
        {
            SKIP_LOCAL: 1,
            SKIP_EPISODE: 1,
            "that entry has no track; it may have been removed from Spotify": 1,
            "that entry is not a Spotify track link": 1,
        }
    )
    assert playlist.skipped[3][1] == "42"


def test_json_id_of_an_episode_object_is_not_taken_for_a_track() -> None:
    playlist = parse_playlist_text(json.dumps([{"id": EPISODE, "type": "episode"}, uri(A)]))

    assert playlist.track_ids == [A]
    assert reasons(playlist) == Counter({SKIP_EPISODE: 1})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["spotify:track:', "the file looks like JSON but is not valid JSON"),
        ("[" * 100_000, "the file looks like JSON but is not valid JSON"),
        ('{"name": "x", "description": "no tracks"}', "the JSON file has no list of tracks"),
        ("[]", "the file lists no tracks"),
        (
            json.dumps([f"spotify:episode:{EPISODE}", "spotify:local:a:b:c:1"]),
            f"none of the 2 entries in the file is a Spotify track "
            f"(the first was skipped as: {SKIP_EPISODE})",
        ),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(PlaylistFileError) as caught:
        parse_playlist_text(text)

    assert str(caught.value) == message


# --- files that cannot be used --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\n\t\n", "the file is empty"),
        (b"\xef\xbb\xbf", "the file is empty"),
        (bytes(range(256)) * 4, "the file is not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is not UTF-8 text"),
        (b"spotify:track:\x00\x00\x00", "the file is not a text file"),
        (
            b"# only a comment\nhello\nworld\n",
            "none of the 2 entries in the file is a Spotify track (the first was skipped as: "
            "that is not a valid Spotify track id: ids are 22 letters and digits)",
        ),
    ],
)
def test_unusable_files(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "upload.txt"
    path.write_bytes(data)

    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(path)

    assert str(caught.value) == message


def test_utf16_with_bom_is_read() -> None:
    text = f"Track URI\tTrack Name\n{uri(A)}\tÉté\n"

    assert parse_playlist_text(text.encode("utf-16"), "export.txt").track_ids == [A]


def test_too_many_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(f"{uri(A)}\n" * 100, encoding="utf-8")

    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(path, max_bytes=1000)

    assert str(caught.value) == "the file is larger than 1,000 bytes"


def test_default_byte_cap_is_5_mb() -> None:
    with pytest.raises(PlaylistFileError) as caught:
        parse_playlist_text(b" " * (5 * 1024 * 1024 + 1))

    assert str(caught.value) == "the file is larger than 5 MB"


def test_too_many_entries() -> None:
    text = f"{uri(A)}\n" * 10_001

    with pytest.raises(PlaylistFileError) as caught:
        parse_playlist_text(text)

    assert str(caught.value) == "the file has more than 10,000 entries"
    assert parse_playlist_text(f"{uri(A)}\n" * 10_000).track_ids == [A]


def test_missing_file_says_why_it_could_not_be_read(tmp_path: Path) -> None:
    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(tmp_path / "nope.csv")

    assert str(caught.value) == "the file nope.csv could not be read: no such file or directory"


def test_directory_given_as_playlist_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "music").mkdir()

    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(tmp_path / "music")

    assert str(caught.value) == "the file music could not be read: is a directory"


def test_unreadable_playlist_file_says_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, which chmod cannot lock out.
    def deny(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    path = tmp_path / "locked.txt"
    path.write_text(uri(A), encoding="utf-8")
    monkeypatch.setattr(Path, "open", deny)

    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(path)

    assert str(caught.value) == "the file locked.txt could not be read: permission denied"


def test_empty_playlist_path_was_read_as_the_current_directory() -> None:
    with pytest.raises(PlaylistFileError) as caught:
        read_playlist_file(EMPTY_PATH)

    assert str(caught.value) == "no playlist file was given"


def test_malformed_csv_is_a_playlist_file_error() -> None:
    huge_field = '"' + "x" * 200_000 + '"'

    with pytest.raises(PlaylistFileError, match="the CSV file is malformed"):
        parse_playlist_text(f"Track URI,Name\n{uri(A)},{huge_field}\n")


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
        write_submission(target, [(1, [uri(A)])])

    # Root passes the early check (os.access says yes), so the message comes from the write.
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


def test_check_writable_refuses_a_read_only_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the permission answer is faked rather than chmod-ed.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    target = tmp_path / "submission.csv"

    with pytest.raises(PlaylistFileError) as caught:
        write_submission(target, [(1, [uri(A)])])

    assert str(caught.value) == f"cannot write {target}: the directory {tmp_path} is not writable"
    assert list(tmp_path.iterdir()) == []
