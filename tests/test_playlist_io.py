from __future__ import annotations

import errno
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from recommender.playlist_io import (
    MAX_FILE_BYTES,
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
D = "3n3Ppam7vgaVa1iaRUc9Lp"
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


def test_a_line_of_several_links_gives_each_and_a_titled_line_is_skipped() -> None:
    text = f"{url(A)}?si=x  {uri(B)}\nMy list {url(C)}\n{C}\n"

    playlist = parse_playlist_text(text)

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == [(2, f"My list {url(C)}", "that is not a Spotify link")]


@pytest.mark.parametrize("between", ["\t", ", ", ",", ";", "\u200b", "\u00a0"])
@pytest.mark.parametrize("lines", [1, 2])
def test_links_apart_on_a_line_are_each_read_however_they_are_separated(
    between: str, lines: int
) -> None:
    text = f"{url(A)}?si=x{between}{uri(B)}\n" + (f"{C}\n" if lines == 2 else "")

    playlist = parse_playlist_text(text, "mix.txt")

    assert playlist.track_ids == [A, B, C][: lines + 1]
    assert playlist.skipped == []


@pytest.mark.parametrize("between", [",", " ", "; ", "\t"])
def test_a_titled_text_file_of_lines_of_several_links_reads_every_link(between: str) -> None:
    text = f"My mix, vol 2\n{uri(A)}{between}{url(B)}\n{url(C)}{between}{uri(D)}\n"

    playlist = parse_playlist_text(text, "titled.txt")

    assert playlist.track_ids == [A, B, C, D]
    assert playlist.skipped == [(1, "My mix, vol 2", "that is not a Spotify link")]


def test_bare_ids_apart_by_spaces_on_a_line_are_each_read() -> None:
    playlist = parse_playlist_text(f"{A} {B}\n{C}\n", "ids.txt")

    assert playlist.track_ids == [A, B, C]


def test_a_headerless_csv_of_bare_track_and_artist_ids_takes_the_first_column() -> None:
    text = f"{A},{D}\n{B},{D}\n{C},{D}\n"

    playlist = parse_playlist_text(text, "export_ids.txt")

    assert playlist.track_ids == [A, B, C]


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
        (
            f'[\n  "{uri(A)}",\n  "{uri(B)}",\n]\n',
            "the file looks like JSON but is not valid JSON",
        ),
        ('{"name": "Summer mix",\n"tracks": [\n', "the file looks like JSON but is not valid JSON"),
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


@pytest.mark.parametrize(
    "title", ["[2024] Road trip", "{Summer mix}", "[2024] Road trip, part 2", "  [live] {b-sides}"]
)
def test_text_playlist_with_a_bracketed_title_was_refused_as_broken_json(
    tmp_path: Path, title: str
) -> None:
    path = tmp_path / "mix.txt"
    path.write_text(f"{title}\n{uri(A)}\n\n{url(B)}\n{C}\n", encoding="utf-8")

    playlist = read_playlist_file(path)

    assert playlist.track_ids == [A, B, C]
    assert playlist.skipped == [(1, title.strip(), "that is not a Spotify link")]


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


def test_csv_header_longer_than_the_field_limit_is_a_playlist_file_error() -> None:
    wide_header = "id;" * 50_000

    with pytest.raises(PlaylistFileError, match="the CSV file is malformed"):
        parse_playlist_text(f"{wide_header}\n{A}\n".encode(), "wide.csv")


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("ints.json", b"[" + b"1," * (MAX_FILE_BYTES // 2 - 2) + b"1]"),
        ("dicts.json", b"[" + b'{"a":1},' * (MAX_FILE_BYTES // 8 - 2) + b'{"a":1}]'),
        ("rows.csv", b"uri\n" + b"a\n" * (MAX_FILE_BYTES // 2 - 4)),
        ("lines.txt", f"{A}\n".encode() + b"a\n" * (MAX_FILE_BYTES // 2 - 16)),
    ],
)
def test_a_5_mb_file_of_tiny_entries_is_refused_in_well_under_a_second(
    filename: str, data: bytes
) -> None:
    started = time.perf_counter()
    with pytest.raises(PlaylistFileError, match="more than 10,000 entries"):
        parse_playlist_text(data, filename)

    # Each entry used to be built (and a JSON one dumped) before counting: 2 to 12 s.
    assert time.perf_counter() - started < 1.0


def test_a_latin_1_csv_is_read_for_its_ascii_links() -> None:
    text = f"Track URI,Name\n{uri(A)},Été à Noël\n{uri(B)},Café\n"

    playlist = parse_playlist_text(text.encode("cp1252"), "export.csv")

    assert playlist.track_ids == [A, B]
