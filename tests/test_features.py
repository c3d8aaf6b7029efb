from __future__ import annotations

import gzip
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from recommender.features import (
    FEATURE_ORDER,
    FeatureTable,
    find_feature_files,
    read_feature_file,
    read_feature_tables,
)

RAW_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw"

ID_A = "a" * 22
ID_B = "b" * 22
ID_C = "c" * 22
ID_D = "d" * 22

# One valid value per feature, in FEATURE_ORDER.
GOOD = {
    "danceability": 0.5,
    "energy": 0.6,
    "key": 5,
    "loudness": -6.0,
    "mode": 1,
    "speechiness": 0.05,
    "acousticness": 0.1,
    "instrumentalness": 0.0,
    "liveness": 0.12,
    "valence": 0.4,
    "tempo": 120.0,
    "duration_ms": 200000,
    "time_signature": 4,
}
HEADER = ["id", *FEATURE_ORDER]


def features(**overrides: object) -> list[object]:
    return [overrides.get(name, GOOD[name]) for name in FEATURE_ORDER]


def write_csv(
    path: Path,
    header: list[str],
    rows: list[list[object]],
    *,
    newline: str = "\n",
    prefix: str = "",
    end: str | None = None,
) -> Path:
    """Write rows as CSV, gzipped when the name ends in .gz; ``end`` replaces the last newline."""
    lines = [",".join(header)] + [",".join(str(value) for value in row) for row in rows]
    text = prefix + newline.join(lines) + (newline if end is None else end)
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def read_value(tmp_path: Path, feature: str, text: str) -> float:
    row = [ID_A, *features(**{feature: text})]
    frame = read_feature_file(write_csv(tmp_path / "one.csv", HEADER, [row]))
    assert frame is not None
    return float(frame.loc[0, feature])


def test_reads_columns_in_any_order_into_feature_order(tmp_path: Path) -> None:
    header = list(reversed(HEADER))
    path = write_csv(tmp_path / "song_features.csv", header, [list(reversed([ID_A, *features()]))])

    frame = read_feature_file(path)

    assert frame is not None
    assert list(frame.columns) == ["id", *FEATURE_ORDER, "name", "artist"]
    assert frame["id"].tolist() == [ID_A]
    assert frame.loc[0, list(FEATURE_ORDER)].tolist() == pytest.approx(features())


def test_spotify_uris_become_bare_ids(tmp_path: Path) -> None:
    header = ["track_uri", *FEATURE_ORDER]
    path = write_csv(tmp_path / "t.csv", header, [[f"spotify:track:{ID_A}", *features()]])

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A]


def test_takes_whichever_id_column_holds_a_valid_id(tmp_path: Path) -> None:
    header = ["track_id", "id", "uri", *FEATURE_ORDER]
    rows = [
        ["", ID_A, f"spotify:track:{ID_C}", *features()],
        ["not-an-id", "", f"spotify:track:{ID_B}", *features()],
        ["", "short", "spotify:track:short", *features()],
    ]

    frame = read_feature_file(write_csv(tmp_path / "t.csv", header, rows))

    assert frame is not None
    assert frame["id"].tolist() == [ID_A, ID_B]


def test_missing_duration_and_time_signature_columns_are_imputed(tmp_path: Path) -> None:
    header = ["track_id", *FEATURE_ORDER[:-2]]
    write_csv(tmp_path / "a.csv", header, [[ID_A, *features()[:-2]]])
    write_csv(tmp_path / "b.csv", HEADER, [[ID_B, *features(duration_ms=1000, time_signature=3)]])

    table = read_feature_tables(tmp_path)

    assert table.ids.tolist() == [ID_A, ID_B]
    assert table.values[0, -2:].tolist() == [1000.0, 3.0]
    assert table.imputed[0].tolist() == [False] * 11 + [True, True]
    assert not table.imputed[1].any()


def test_gzipped_csv_with_utf8_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv.gz", HEADER, [[ID_A, *features()]], prefix="\ufeff")

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A]


@pytest.mark.parametrize("newline", ["\r\n", "\r\r\n", "\n\n"], ids=["crlf", "cr-crlf", "blank"])
def test_line_endings_and_blank_lines_between_rows(tmp_path: Path, newline: str) -> None:
    rows = [[ID_A, *features()], [ID_B, *features(time_signature=3)]]
    path = write_csv(tmp_path / "t.csv", HEADER, rows, newline=newline)

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A, ID_B]
    assert frame["time_signature"].tolist() == [4.0, 3.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4-Apr", 4), ("4-Mar", 3), ("4-May", 5), ("4-Jan", 1), ("3/4", 3), ("0/4", math.nan)],
)
def test_time_signature_mangled_into_dates(tmp_path: Path, text: str, expected: float) -> None:
    assert read_value(tmp_path, "time_signature", text) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("C", 0), ("C#", 1), ("Db", 1), ("D#", 3), ("A#", 10), ("B", 11), ("Cb", 11), ("H", math.nan)],
)
def test_key_as_pitch_name(tmp_path: Path, text: str, expected: float) -> None:
    assert read_value(tmp_path, "key", text) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(("text", "expected"), [("Major", 1), ("Minor", 0), ("minor", 0)])
def test_mode_as_word(tmp_path: Path, text: str, expected: float) -> None:
    assert read_value(tmp_path, "mode", text) == expected


def test_upper_case_scientific_notation(tmp_path: Path) -> None:
    assert read_value(tmp_path, "instrumentalness", "7.25E-06") == pytest.approx(7.25e-6)


@pytest.mark.parametrize(
    ("feature", "text"),
    [
        ("danceability", "1.5"),
        ("energy", "-0.1"),
        ("valence", "nan"),
        ("liveness", "inf"),
        ("acousticness", "abc"),
        ("loudness", "-61"),
        ("loudness", "6"),
        ("tempo", "0"),
        ("tempo", "300"),
        ("key", "-1"),
        ("key", "12"),
        ("key", "2.5"),
        ("mode", "2"),
        ("duration_ms", "0"),
        ("time_signature", "0"),
        ("time_signature", "8"),
    ],
)
def test_invalid_values_become_missing(tmp_path: Path, feature: str, text: str) -> None:
    assert math.isnan(read_value(tmp_path, feature, text))


@pytest.mark.parametrize(
    ("feature", "text"), [("danceability", "1"), ("loudness", "-60"), ("tempo", "299.5")]
)
def test_range_bounds_that_are_valid(tmp_path: Path, feature: str, text: str) -> None:
    assert read_value(tmp_path, feature, text) == float(text)


def test_truncated_last_row_is_dropped(tmp_path: Path) -> None:
    header = ["track_name", "track_id", *FEATURE_ORDER]
    rows = [["Whole", ID_A, *features()], ["Cut", ID_B, *features()[:10], "12"]]
    path = write_csv(tmp_path / "t.csv", header, rows, end="")

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A]


def test_complete_last_row_without_final_newline_is_kept(tmp_path: Path) -> None:
    rows = [[ID_A, *features()], [ID_B, *features()]]
    path = write_csv(tmp_path / "t.csv", HEADER, rows, end="")

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A, ID_B]


def test_unnamed_index_column_with_names_and_artists(tmp_path: Path) -> None:
    header = ["", "artist", "track", "track_id", *FEATURE_ORDER]
    rows = [[0, "Roddy", "The Box", f"spotify:track:{ID_A}", *features()]]

    frame = read_feature_file(write_csv(tmp_path / "t.csv", header, rows))

    assert frame is not None
    assert frame.loc[0, ["id", "name", "artist"]].tolist() == [ID_A, "The Box", "Roddy"]


def test_playlist_rows_repeating_a_track_give_one_track(tmp_path: Path) -> None:
    header = ["track_id", "track_name", "track_artist", "playlist_id", *FEATURE_ORDER]
    rows = [
        [ID_A, "Song", "Band", "p1", *features()],
        [ID_A, "Song", "Band", "p2", *features()],
        [ID_B, "Other", "Band", "p2", *features()],
    ]
    write_csv(tmp_path / "songs.csv", header, rows)

    table = read_feature_tables(tmp_path)

    assert table.ids.tolist() == [ID_A, ID_B]
    assert table.names == ["Song", "Other"]
    assert table.sources == {"songs.csv": 2}


def test_duplicate_rule_across_two_files(tmp_path: Path) -> None:
    header = ["id", *FEATURE_ORDER[:-1]]  # no time_signature: 12 valid features at most
    write_csv(
        tmp_path / "a.csv",
        header,
        [[ID_A, *features(danceability=0.1)[:-1]], [ID_B, *features(danceability=0.1)[:-1]]],
    )
    write_csv(
        tmp_path / "b" / "b.csv",
        HEADER,
        [
            [ID_A, *features(danceability=0.2)],  # 13 valid: beats a.csv's 12
            [ID_B, *features(danceability=0.2, tempo=-1)],  # 12 valid: tie, a.csv is first
            [ID_C, *features(danceability=0.3)],  # same count within a file: first row wins
            [ID_C, *features(danceability=0.4)],
        ],
    )

    table = read_feature_tables(tmp_path)

    assert table.ids.tolist() == [ID_A, ID_B, ID_C]
    assert table.values[:, 0].tolist() == pytest.approx([0.2, 0.1, 0.3])
    assert table.sources == {"a.csv": 1, "b/b.csv": 2}


def test_name_and_artist_are_first_non_empty_in_rule_order(tmp_path: Path) -> None:
    header = ["id", "track_name", "artist_name", *FEATURE_ORDER[:-1]]
    rows = [[ID_A, "A old", "X", *features()[:-1]], [ID_B, "B old", "Y", *features()[:-1]]]
    write_csv(tmp_path / "a.csv", header, rows)
    header = ["id", "track", "artist", *FEATURE_ORDER]
    rows = [[ID_A, "A new", "", *features()], [ID_B, "", "", *features()]]
    write_csv(tmp_path / "b.csv", header, rows)

    table = read_feature_tables(tmp_path)

    assert table.sources == {"a.csv": 0, "b.csv": 2}
    assert table.names == ["A new", "B old"]
    assert table.artists == ["X", "Y"]


def test_imputation_uses_median_or_most_common_and_marks_it(tmp_path: Path) -> None:
    rows = [
        [ID_A, *features(tempo=100, key=5, mode=0)],
        [ID_B, *features(tempo=110, key=5, mode=1)],
        [ID_C, *features(tempo=140, key=7, mode="")],
        [ID_D, *features(tempo="", key="", mode="")],
    ]
    write_csv(tmp_path / "t.csv", HEADER, rows)
    tempo, key, mode = (FEATURE_ORDER.index(name) for name in ("tempo", "key", "mode"))

    table = read_feature_tables(tmp_path)

    assert table.values.dtype == np.float32
    assert table.values[:, tempo].tolist() == [100, 110, 140, 110]
    assert table.values[:, key].tolist() == [5, 5, 7, 5]
    assert table.values[:, mode].tolist() == [0, 1, 0, 0]  # a 0/1 tie goes to the smaller
    expected = np.zeros((4, 13), dtype=bool)
    expected[3, [tempo, key, mode]] = True
    expected[2, mode] = True
    np.testing.assert_array_equal(table.imputed, expected)


def test_row_with_fewer_than_eight_valid_features_is_dropped(tmp_path: Path) -> None:
    five_bad = dict.fromkeys(FEATURE_ORDER[:5], "")
    six_bad = dict.fromkeys(FEATURE_ORDER[:6], "")
    write_csv(
        tmp_path / "t.csv", HEADER, [[ID_A, *features(**five_bad)], [ID_B, *features(**six_bad)]]
    )

    table = read_feature_tables(tmp_path)

    assert table.ids.tolist() == [ID_A]
    assert table.imputed[0].sum() == 5


def test_feature_absent_from_every_table_gets_a_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_csv(tmp_path / "t.csv", HEADER[:-1], [[ID_A, *features()[:-1]]])

    table = read_feature_tables(tmp_path)

    assert table.values[0, -1] == 4.0
    assert table.imputed[0, -1]
    assert "No valid time_signature" in caplog.text


def test_tables_are_found_by_columns_not_by_name(tmp_path: Path) -> None:
    write_csv(tmp_path / "my download.csv", HEADER, [[ID_A, *features()]])
    tab = "\t".join(HEADER) + "\n" + "\t".join(str(v) for v in [ID_B, *features()]) + "\n"
    (tmp_path / "export.tsv").write_text(tab)
    write_csv(tmp_path / "features.csv", ["id", *FEATURE_ORDER[:7]], [[ID_C, *features()[:7]]])
    write_csv(tmp_path / "no_id.csv", ["name", *FEATURE_ORDER], [["x", *features()]])
    write_csv(tmp_path / ".cache" / "copy.csv", HEADER, [[ID_D, *features()]])
    (tmp_path / "notes.txt").write_text(",".join(HEADER))

    found = find_feature_files(tmp_path)

    assert [path.name for path in found] == ["export.tsv", "my download.csv"]
    assert read_feature_file(tmp_path / "features.csv") is None
    assert read_feature_tables(tmp_path).ids.tolist() == [ID_A, ID_B]


def test_json_array_of_audio_features(tmp_path: Path) -> None:
    records = [
        None,
        {**GOOD, "id": ID_B, "uri": f"spotify:track:{ID_B}", "type": "audio_features"},
        {**GOOD, "id": ID_A, "key": -1},
        {**GOOD, "uri": f"spotify:track:{ID_C}"},
    ]
    path = tmp_path / "audio_features.json.gz"
    path.write_bytes(gzip.compress(json.dumps(records).encode()))

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_B, ID_A, ID_C]
    assert math.isnan(frame.loc[1, "key"])


def test_json_object_wrapping_audio_features(tmp_path: Path) -> None:
    path = tmp_path / "response.json"
    path.write_text(json.dumps({"audio_features": [{**GOOD, "id": ID_A}]}))

    frame = read_feature_file(path)

    assert frame is not None
    assert frame["id"].tolist() == [ID_A]


def test_mpd_slice_is_skipped_from_its_first_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The body is not valid JSON: parsing the whole file would fail and log a warning.
    head = '{"info": {"slice": "0-999"}, "playlists": [{"name": "x", "tracks": ['
    body = '{"track_uri": "spotify:track:' + ID_A + '"},' * 50_000
    (tmp_path / "mpd.slice.0-999.json").write_text(head + body)
    (tmp_path / "mpd.slice.1000-1999.json.gz").write_bytes(gzip.compress((head + body).encode()))
    (tmp_path / "playlists.json").write_text(json.dumps([{"name": "x", "tracks": []}]))

    assert find_feature_files(tmp_path) == []
    assert read_feature_file(tmp_path / "mpd.slice.0-999.json") is None
    assert len(read_feature_tables(tmp_path)) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == ["No audio-feature tables found"]


def test_unreadable_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_csv(tmp_path / "good.csv", HEADER, [[ID_A, *features()]])
    (tmp_path / "corrupt.csv.gz").write_bytes(b"this is not gzip data at all")
    (tmp_path / "cut.json").write_text(json.dumps([{**GOOD, "id": ID_B}] * 3)[:-40])
    row = ",".join(str(value) for value in [ID_C, *features()])
    (tmp_path / "quote.csv").write_text(",".join(HEADER) + '\n"' + row + "\n")

    with caplog.at_level(logging.WARNING, logger="recommender.features"):
        table = read_feature_tables(tmp_path)

    assert table.ids.tolist() == [ID_A]
    assert table.sources == {"good.csv": 1}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3
    for name in ("corrupt.csv.gz", "cut.json", "quote.csv"):
        assert sum(name in message for message in warned) == 1


def test_rows_with_too_many_fields_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    header = ["track_name", "id", *FEATURE_ORDER]
    rows = [["Fine", ID_A, *features()], ["Hello, World", ID_B, *features()]]

    frame = read_feature_file(write_csv(tmp_path / "t.csv", header, rows))

    assert frame is not None
    assert frame["id"].tolist() == [ID_A]
    assert "Skipped 1 malformed rows" in caplog.text


def test_empty_directory_gives_an_empty_table(tmp_path: Path) -> None:
    table = read_feature_tables(tmp_path)

    assert len(table) == 0
    assert table.values.shape == (0, 13)
    assert table.sources == {}


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_feature_tables(tmp_path / "nowhere")


def test_progress_bar_is_shown_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_csv(tmp_path / "t.csv", HEADER, [[ID_A, *features()]])

    read_feature_tables(tmp_path, progress=True)

    assert "feature tables" in capsys.readouterr().err


def test_feature_table_rejects_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        FeatureTable(
            ids=np.array([ID_A]),
            values=np.zeros((1, 12), dtype=np.float32),
            imputed=np.zeros((1, 13), dtype=bool),
            names=[""],
            artists=[""],
            sources={},
        )


@pytest.mark.skipif(not RAW_DATA.is_dir(), reason="shared/data/raw is not next to the repo")
def test_real_feature_tables_have_sane_totals() -> None:
    table = read_feature_tables(RAW_DATA)

    assert len(table) > 100_000
    assert not np.isnan(table.values).any()
    assert table.ids.tolist() == sorted(set(table.ids.tolist()))
    assert {len(track_id) for track_id in table.ids.tolist()} == {22}
    assert not any("mpd" in path for path in table.sources)
    assert sum(table.sources.values()) == len(table)
    row = int(np.searchsorted(table.ids, "5ayybTSXNwcarDtxQKqvWX"))
    assert table.ids[row] == "5ayybTSXNwcarDtxQKqvWX"
    assert table.values[row, :2].tolist() == pytest.approx([0.474, 0.338])
