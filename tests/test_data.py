from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import make_interactions, make_track_id

from recommender.catalog import TrackCatalog
from recommender.data import (
    DataError,
    find_mpd_files,
    fingerprint_files,
    read_interactions,
    track_id_from_uri,
)
from recommender.features import FEATURE_ORDER, FeatureTable
from recommender.train import build_catalog, popularity

A, B, C, D = (make_track_id(label, 0) for label in "abcd")


def uri(track_id: str) -> str:
    return f"spotify:track:{track_id}"


def track(track_id: str, position: int | None = None, name: str = "", artist: str = "") -> dict:
    raw: dict[str, object] = {"track_uri": uri(track_id)}
    if position is not None:
        raw["pos"] = position
    if name:
        raw["track_name"] = name
    if artist:
        raw["artist_name"] = artist
    return raw


def write_slice(path: Path, playlists: list[dict]) -> Path:
    text = json.dumps({"info": {"generated_on": "test"}, "playlists": playlists})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def ids_of(interactions, row: int) -> list[str]:
    return [interactions.track_ids[i] for i in interactions.playlist(row)]


# --- track ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (uri(A), A),
        ("spotify:local:Artist:Album:Song:215", None),
        ("spotify:track:tooshort", None),
        ("spotify:track:" + "a" * 21 + "!", None),
        (A, None),  # a bare id is not a URI
        ("spotify:episode:" + A, None),
    ],
)
def test_track_id_from_uri(text: str, expected: str | None) -> None:
    assert track_id_from_uri(text) == expected


# --- reading slices -------------------------------------------------------------------------


def test_reads_playlists_in_order_with_names_and_metadata(tmp_path: Path) -> None:
    write_slice(
        tmp_path / "mpd.slice.0-999.json",
        [
            {"pid": 0, "name": "road", "tracks": [track(A, 0, "Song A", "X"), track(B, 1)]},
            {"pid": 1, "name": "gym", "tracks": [track(B, 0, "Song B", "Y"), track(C, 1)]},
        ],
    )

    interactions = read_interactions(tmp_path)

    assert interactions.track_ids == [A, B, C]
    assert interactions.pids.tolist() == [0, 1]
    assert interactions.playlist_names == ["road", "gym"]
    assert ids_of(interactions, 0) == [A, B]
    assert ids_of(interactions, 1) == [B, C]
    # Metadata comes from a track's first occurrence; later ones do not overwrite it.
    assert interactions.track_names == ["Song A", "", ""]
    assert interactions.track_artists == ["X", "", ""]


def test_tracks_are_put_in_pos_order(tmp_path: Path) -> None:
    tracks = [track(C, 2), track(A, 0), track(B, 1)]
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 7, "tracks": tracks}])

    interactions = read_interactions(tmp_path)

    assert ids_of(interactions, 0) == [A, B, C]


def test_local_files_and_malformed_uris_are_skipped(tmp_path: Path) -> None:
    tracks = [
        track(A),
        {"track_uri": "spotify:local:Someone:Somewhere:Song:200"},
        {"track_uri": "spotify:track:short"},
        {"track_name": "no uri at all"},
        "not a track object",
        track(B),
    ]
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": tracks}])

    interactions = read_interactions(tmp_path)

    assert ids_of(interactions, 0) == [A, B]
    assert interactions.track_ids == [A, B]


def test_playlists_without_pid_or_tracks_list_are_skipped(tmp_path: Path) -> None:
    write_slice(
        tmp_path / "mpd.slice.0-999.json",
        [
            {"name": "no pid", "tracks": [track(A)]},
            {"pid": "1", "tracks": [track(A)]},
            {"pid": 2, "tracks": "nope"},
            {"pid": 3, "tracks": [track(B)]},
            {"pid": 10**20, "tracks": [track(A)]},  # beyond int64
            {"pid": -4, "tracks": [track(A)]},
            {"pid": True, "tracks": [track(A)]},
        ],
    )

    interactions = read_interactions(tmp_path)

    assert interactions.pids.tolist() == [3]


def test_min_length_drops_short_playlists(tmp_path: Path) -> None:
    write_slice(
        tmp_path / "mpd.slice.0-999.json",
        [{"pid": 0, "tracks": [track(A)]}, {"pid": 1, "tracks": [track(B), track(C)]}],
    )

    interactions = read_interactions(tmp_path, min_length=2)

    assert interactions.pids.tolist() == [1]
    assert interactions.track_ids == [B, C]


def test_exact_repeat_is_read_once_but_a_reused_pid_with_other_tracks_is_kept(
    tmp_path: Path,
) -> None:
    write_slice(tmp_path / "a" / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])
    write_slice(tmp_path / "b" / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])
    write_slice(tmp_path / "c" / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(B)]}])

    interactions = read_interactions(tmp_path)

    assert interactions.n_playlists == 2
    assert [ids_of(interactions, row) for row in range(2)] == [[A], [B]]


def test_gzipped_and_plain_slices_are_both_read_in_path_order(tmp_path: Path) -> None:
    write_slice(tmp_path / "mpd.slice.1000-1999.json.gz", [{"pid": 1000, "tracks": [track(B)]}])
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])

    interactions = read_interactions(tmp_path)

    assert interactions.pids.tolist() == [0, 1000]
    assert interactions.files == [
        str(tmp_path / "mpd.slice.0-999.json"),
        str(tmp_path / "mpd.slice.1000-1999.json.gz"),
    ]


def test_other_json_files_are_not_taken_for_slices(tmp_path: Path) -> None:
    slice_path = write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])
    features = [{"id": B, **dict.fromkeys(FEATURE_ORDER, 0.5)}]
    (tmp_path / "audio_features.json").write_text(json.dumps(features))
    (tmp_path / "notes.txt").write_text('{"playlists": []}')

    assert find_mpd_files(tmp_path) == [slice_path]
    assert find_mpd_files(slice_path) == [slice_path]


def test_a_damaged_slice_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])
    broken = tmp_path / "mpd.slice.1000-1999.json"
    broken.write_text('{"info": {}, "playlists": [{"pid": 1, "tracks": [')

    with caplog.at_level(logging.WARNING, logger="recommender.data"):
        interactions = read_interactions(tmp_path)

    assert interactions.pids.tolist() == [0]
    assert any(broken.name in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "content",
    [
        '{"playlists": [{"pid": ' + "7" * 5000 + ', "tracks": []}]}',
        '{"playlists": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["5000-digit number", "deep nesting"],
)
def test_a_slice_python_cannot_parse_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": [track(A)]}])
    odd = tmp_path / "mpd.slice.1000-1999.json"
    odd.write_text(content)

    with caplog.at_level(logging.WARNING, logger="recommender.data"):
        interactions = read_interactions(tmp_path)

    assert interactions.pids.tolist() == [0]
    assert any(odd.name in record.getMessage() for record in caplog.records)


def test_no_slices_is_a_data_error_naming_the_expected_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")

    with pytest.raises(DataError, match=r"mpd\.slice"):
        read_interactions(tmp_path)


def test_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        read_interactions(tmp_path / "absent")


def test_slices_without_any_track_are_a_data_error(tmp_path: Path) -> None:
    write_slice(tmp_path / "mpd.slice.0-999.json", [{"pid": 0, "tracks": []}])

    with pytest.raises(DataError, match="no playlist with tracks"):
        read_interactions(tmp_path)


# --- Interactions ---------------------------------------------------------------------------


def test_counts_count_each_occurrence() -> None:
    interactions = make_interactions([[A, B, A], [B, C]])

    assert interactions.counts().tolist() == [2, 2, 1]


def test_subset_keeps_each_playlists_tracks_and_pid() -> None:
    interactions = make_interactions([[A, B], [C, D], [B, D, A]])

    subset = interactions.subset(np.asarray([2, 0]))

    assert subset.pids.tolist() == [2, 0]
    assert [ids_of(subset, row) for row in range(2)] == [[B, D, A], [A, B]]
    assert subset.playlist_names == ["playlist 2", "playlist 0"]


def test_fingerprint_follows_bytes_and_names_only(tmp_path: Path) -> None:
    first = tmp_path / "one" / "mpd.slice.0-999.json"
    second = tmp_path / "two" / "mpd.slice.0-999.json"
    write_slice(first, [{"pid": 0, "tracks": [track(A)]}])
    write_slice(second, [{"pid": 0, "tracks": [track(A)]}])

    same = fingerprint_files([first]) == fingerprint_files([second])
    in_either_order = fingerprint_files([first, second]) == fingerprint_files([second, first])
    renamed = fingerprint_files([first], root=tmp_path) != fingerprint_files(
        [second], root=tmp_path
    )
    before = fingerprint_files([first])
    write_slice(first, [{"pid": 0, "tracks": [track(B)]}])

    assert same and in_either_order and renamed
    assert fingerprint_files([first]) != before


def test_a_file_name_that_is_not_utf8_has_a_fingerprint(tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"feat\xff.csv")
    odd.write_text("id,danceability\n")

    assert len(fingerprint_files([odd], root=tmp_path)) == 64


# --- catalogue and popularity ---------------------------------------------------------------


def feature_table(ids: list[str], names: list[str]) -> FeatureTable:
    n = len(ids)
    return FeatureTable(
        ids=np.asarray(ids, dtype="<U22"),
        values=np.full((n, len(FEATURE_ORDER)), 0.5, dtype=np.float32),
        imputed=np.zeros((n, len(FEATURE_ORDER)), dtype=bool),
        names=names,
        artists=[""] * n,
        sources={"features.csv": n},
    )


def test_build_catalog_puts_playlist_tracks_first_then_feature_only_tracks() -> None:
    interactions = make_interactions([[B, A]])
    interactions.track_names[1] = ""  # A has no name in the playlists
    features = feature_table([A, C], ["feature name A", "feature name C"])

    catalog = build_catalog(interactions, features)

    assert catalog.track_ids == [B, A, C]
    # Rows of playlist tracks equal the interaction vocabulary, which the towers rely on.
    assert [catalog.index_of(t) for t in interactions.track_ids] == [0, 1]
    # Playlist metadata wins; features fill in only what is missing.
    assert catalog.names == [interactions.track_names[0], "feature name A", "feature name C"]


def test_catalog_indices_split_known_and_unknown_in_order() -> None:
    catalog = TrackCatalog([A, B, C], ["", "", ""], ["", "", ""])

    rows, unknown = catalog.indices([C, D, A, "x" * 22])

    assert rows.tolist() == [2, 0]
    assert unknown == [D, "x" * 22]
    assert A in catalog and D not in catalog
    assert catalog.index_of(D) is None


def test_catalog_label_falls_back_to_what_is_known() -> None:
    catalog = TrackCatalog([A, B, C], ["Song", "Only name", ""], ["Band", "", ""])

    assert [catalog.label(row) for row in range(3)] == ["Band - Song", "Only name", uri(C)]


def test_names_with_line_breaks_control_characters_or_lone_surrogates_save_and_load(
    tmp_path: Path,
) -> None:
    names = ["Song\r\nRemix", "Line\nbreak\u2028here", "Bad \ud800 half"]
    artists = ["Band\x1b[31m", "\tTabbed ", "Bidi\u202eevil\u200b"]
    catalog = TrackCatalog.merge([([A, B, C], names, artists)])
    path = tmp_path / "catalog.csv"

    catalog.save(path)
    loaded = TrackCatalog.load(path)

    assert loaded.track_ids == [A, B, C]
    assert loaded.names == ["Song Remix", "Line break here", "Bad \ufffd half"]
    assert loaded.artists == ["Band [31m", "Tabbed", "Bidievil"]


def test_catalog_refuses_repeated_ids_and_ragged_columns() -> None:
    with pytest.raises(ValueError, match="unique"):
        TrackCatalog([A, A], ["", ""], ["", ""])
    with pytest.raises(ValueError, match="length"):
        TrackCatalog([A, B], [""], ["", ""])


def test_catalog_merge_keeps_first_row_and_first_non_empty_names() -> None:
    catalog = TrackCatalog.merge(
        [([A, B], ["", "B one"], ["", ""]), ([B, A, C], ["B two", "A two", ""], ["", "X", ""])]
    )

    assert catalog.track_ids == [A, B, C]
    assert catalog.names == ["A two", "B one", ""]
    assert catalog.artists == ["X", "", ""]


def test_catalog_round_trips_awkward_names(tmp_path: Path) -> None:
    names = ['Comma, "quoted"', "NaN", ""]
    artists = ["Beyoncé", "null", "line\nbreak"]
    catalog = TrackCatalog([A, B, C], names, artists)

    catalog.save(tmp_path / "catalog.csv")
    loaded = TrackCatalog.load(tmp_path / "catalog.csv")

    assert (loaded.track_ids, loaded.names, loaded.artists) == ([A, B, C], names, artists)


def test_catalog_load_refuses_other_columns(tmp_path: Path) -> None:
    (tmp_path / "catalog.csv").write_text(f"id,name,artist\n{A},x,y\n")

    with pytest.raises(ValueError, match="catalog columns"):
        TrackCatalog.load(tmp_path / "catalog.csv")


def test_popularity_orders_by_count_then_first_appearance() -> None:
    interactions = make_interactions([[A, B], [C, B], [D, C], [B]])

    assert popularity(interactions).tolist() == [1, 2, 0, 3]  # B x3, C x2, then A and D
    assert popularity(interactions, limit=2).tolist() == [1, 2]
