"""The RecSys Challenge 2018 metrics on lists small enough to score by hand, and the file check."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from recommender.metrics import (
    MeanScores,
    PlaylistScore,
    Problem,
    SubmissionCheck,
    Truth,
    clicks,
    mean_scores,
    ndcg,
    r_precision,
    read_submission,
    score_playlist,
    score_submission,
)
from recommender.playlist_io import PlaylistFileError


def uri(n: int) -> str:
    """A well-formed track URI: 22 digits."""
    return f"spotify:track:{n:022d}"


# Hidden tracks are 1..99, misses are 1000 and up, seeds are 900..909.
H1, H2, H3, H4 = uri(1), uri(2), uri(3), uri(4)
MISSES = [uri(1000 + n) for n in range(600)]
SEEDS = frozenset(uri(900 + n) for n in range(10))


def misses(count: int) -> list[str]:
    return MISSES[:count]


# --- metrics ---------------------------------------------------------------------------------


def test_hit_at_rank_one() -> None:
    recommended = [H1, *misses(499)]
    hidden = [H1, H2]

    # R-precision: the first |G| = 2 are {H1, miss}: 1 hit / 2 = 0.5.
    assert r_precision(recommended, hidden) == pytest.approx(0.5)
    # DCG = 1 (rank 1); IDCG over N = |G| = 2 ranks = 1 + 1/log2(3) = 1.63093.
    # NDCG = 1 / 1.63093 = 0.61315.
    assert ndcg(recommended, hidden) == pytest.approx(0.6131471927654584)
    # Rank 1: floor((1 - 1) / 10) = 0.
    assert clicks(recommended, hidden) == 0


def test_no_hit_at_all() -> None:
    recommended = misses(500)
    hidden = [H1, H2, H3]

    assert r_precision(recommended, hidden) == 0.0
    assert ndcg(recommended, hidden) == 0.0
    # No hidden track among the 500: 500 // 10 + 1 = 51.
    assert clicks(recommended, hidden) == 51
    assert score_playlist(7, recommended, hidden) == PlaylistScore(7, 0.0, 0.0, 51, 0)


def test_artist_credit_once_per_artist_and_also_for_the_artist_of_a_hit() -> None:
    a, b, c, d = misses(4)
    x, y = uri(2000), uri(2001)
    artist_of = {H1: "A", H2: "B", H3: "A", H4: "C", a: "A", b: "A", c: "D", d: "B", x: "C"}
    hidden = [H1, H2, H3, H4]  # |G_T| = 4, G_A = {A, B, C}
    # The first 4: H1 hit; a by A (H1's artist, still credited); b by A again (no second
    # credit); c by D (not a hidden artist). d by B and x by C come after rank 4.
    recommended = [H1, a, b, c, d, x, y]

    # (1 + 0.25 * 1) / 4 = 0.3125
    assert r_precision(recommended, hidden, artist_of) == pytest.approx(0.3125)
    # Without the artist lookup only the track hit counts: 1 / 4.
    assert r_precision(recommended, hidden) == pytest.approx(0.25)


def test_artist_credit_for_two_artists_and_none_for_an_unmapped_track() -> None:
    a, b, c = misses(3)
    artist_of = {H1: "A", H2: "B", a: "A", b: "B"}  # c has no artist
    hidden = [H1, H2, H3]
    # First 3: a (A), b (B), c (unknown): (0 + 0.25 * 2) / 3 = 0.16667
    assert r_precision([a, b, c, H1], hidden, artist_of) == pytest.approx(0.5 / 3)


def test_repeated_recommendation_takes_a_place_in_r_precision_but_no_rank_in_ndcg() -> None:
    (miss,) = misses(1)
    recommended = [miss, miss, H1]
    hidden = [H1, H2]

    # R-precision: the first 2 places are {miss}: 0 / 2.
    assert r_precision(recommended, hidden) == 0.0
    # NDCG: cut at k, then repeats dropped -> [miss, H1]; H1 at rank 2.
    # DCG = 1/log2(3) = 0.63093; IDCG = 1 + 1/log2(3) = 1.63093; NDCG = 0.38685.
    assert ndcg(recommended, hidden) == pytest.approx(0.38685280723454163)


def test_repeated_recommendation_counts_as_a_position_for_clicks() -> None:
    nine = misses(9)
    # H1 is 11th as given (10th once the repeat is dropped): floor((11 - 1) / 10) = 1.
    assert clicks([*nine, nine[0], H1], [H1]) == 1
    assert clicks([*nine, H1], [H1]) == 0


def test_fewer_than_500_tracks_scores_what_is_there() -> None:
    (miss,) = misses(1)
    hidden = [H1]

    # R-precision: first |G| = 1 is the miss: 0.
    assert r_precision([miss, H1], hidden) == 0.0
    # DCG = 1/log2(3) = 0.63093; IDCG = 1 (N = 1); NDCG = 0.63093.
    assert ndcg([miss, H1], hidden) == pytest.approx(1 / math.log2(3))
    assert clicks([miss, H1], hidden) == 0
    # A short list with no hit still gets the no-hit value for 500: 51.
    assert clicks([miss], hidden) == 51
    assert clicks([], hidden) == 51
    assert ndcg([], hidden) == 0.0


def test_ndcg_small_case() -> None:
    a, b = misses(2)
    recommended = [H1, a, H2, b, H3]
    hidden = [H1, H2, H3]
    # DCG = 1 + 1/log2(4) + 1/log2(6) = 1 + 0.5 + 0.38685 = 1.88685
    # IDCG = 1 + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5 = 2.13093
    # NDCG = 1.88685 / 2.13093 = 0.88546
    assert ndcg(recommended, hidden) == pytest.approx(0.8854598815714874)


def test_ndcg_ideal_counts_every_hidden_track_not_only_those_found() -> None:
    # With N = |G ∩ R| = 1 this would be a perfect 1.0; with N = |G| = 2 it is
    # 1 / (1 + 1/log2(3)) = 0.61315.
    assert ndcg([H1], [H1, H2]) == pytest.approx(0.6131471927654584)
    # N is capped at k: k = 1 makes IDCG = 1, so a hit at rank 1 is perfect.
    assert ndcg([H1], [H1, H2], k=1) == pytest.approx(1.0)


def test_clicks_first_hit_at_rank_10_and_11() -> None:
    # Rank 10: floor(9 / 10) = 0; rank 11: floor(10 / 10) = 1.
    assert clicks([*misses(9), H1], [H1]) == 0
    assert clicks([*misses(10), H1], [H1]) == 1
    # Rank 500: floor(499 / 10) = 49; rank 501 is beyond k: 51.
    assert clicks([*misses(499), H1], [H1]) == 49
    assert clicks([*misses(500), H1], [H1]) == 51


def test_repeated_hidden_tracks_count_once() -> None:
    # G = {H1, H2}: R-precision over the first 2 = {H1, H2} -> 2 / 2.
    assert r_precision([H1, H2], [H1, H1, H2]) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", [r_precision, ndcg, clicks])
def test_empty_hidden_raises(metric: Callable[[list[str], list[str]], object]) -> None:
    with pytest.raises(ValueError, match="no hidden tracks"):
        metric([H1], [])


def test_score_playlist_counts_hits() -> None:
    recommended = [H1, *misses(10), H2]
    score = score_playlist(3, recommended, [H1, H2, H3])
    assert score.hits == 2
    assert score.clicks == 0
    # First 3 = {H1, miss, miss}: 1 / 3.
    assert score.r_precision == pytest.approx(1 / 3)


# --- submission files ------------------------------------------------------------------------

LENGTH = 3
TRUTHS = {
    1: Truth(1, SEEDS, (H1, H2)),
    2: Truth(2, SEEDS, (H3,)),
    3: Truth(3, SEEDS, (H4,)),
}
GOOD_ROWS = [
    f"1,{H1},{MISSES[0]},{MISSES[1]}",
    f"2, {MISSES[0]}, {H3}, {MISSES[2]}",  # the official sample's ", "
    f"3,{MISSES[3]},{MISSES[4]},{MISSES[5]}",
]


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check(tmp_path: Path, lines: list[str]) -> SubmissionCheck:
    return read_submission(write(tmp_path, lines), TRUTHS, expected_length=LENGTH)


def where(result: SubmissionCheck) -> list[tuple[int, int | None]]:
    return [(problem.line, problem.pid) for problem in result.problems]


def test_good_submission_has_no_problems(tmp_path: Path) -> None:
    result = check(tmp_path, ["team_info, HarmonYa, team@example.invalid", *GOOD_ROWS])

    assert result.ok
    assert (result.team_name, result.contact) == ("HarmonYa", "team@example.invalid")
    assert result.rows[2] == [MISSES[0], H3, MISSES[2]]
    assert sorted(result.rows) == [1, 2, 3]


def test_blank_lines_are_skipped_and_keep_line_numbers(tmp_path: Path) -> None:
    lines = ["team_info,t,c", "", GOOD_ROWS[0], "   ", GOOD_ROWS[1], "2,garbage"]
    result = check(tmp_path, [*lines, GOOD_ROWS[2]])

    # Only the repeated pid 2 on line 6 is wrong; the blank lines 2 and 4 are not.
    assert where(result) == [(6, 2)]
    assert "line 5" in result.problems[0].message


def test_unknown_pid_is_reported_and_left_out(tmp_path: Path) -> None:
    result = check(tmp_path, ["team_info,t,c", *GOOD_ROWS, f"99,{H1},{H2},{H3}"])

    assert where(result) == [(5, 99)]
    assert "not in the challenge set" in result.problems[0].message
    assert 99 not in result.rows


def test_a_pid_of_thousands_of_digits_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    lines = [*GOOD_ROWS[:2], "9" * 5000 + f",{H1}", "0" * 5000 + GOOD_ROWS[2]]
    result = check(tmp_path, ["team_info,t,c", *lines])

    assert where(result) == [(4, None)]  # the zero-padded pid 3 is pid 3
    assert sorted(result.rows) == [1, 2, 3]
    assert "not in the challenge set" in result.problems[0].message
    assert len(result.problems[0].message) < 200


def test_repeated_track_is_reported_and_first_kept(tmp_path: Path) -> None:
    row = f"1,{H1},{MISSES[0]},{H1}"
    result = check(tmp_path, ["team_info,t,c", row, *GOOD_ROWS[1:]])

    assert where(result) == [(2, 1)]
    assert "1 repeated track" in result.problems[0].message
    assert "position 3 (listed first at position 1)" in result.problems[0].message
    assert result.rows[1] == [H1, MISSES[0]]


def test_seed_track_is_reported_and_dropped(tmp_path: Path) -> None:
    seed = sorted(SEEDS)[0]
    row = f"3,{seed},{H4},{MISSES[0]}"
    result = check(tmp_path, ["team_info,t,c", *GOOD_ROWS[:2], row])

    assert where(result) == [(4, 3)]
    assert "1 seed track included" in result.problems[0].message
    assert result.rows[3] == [H4, MISSES[0]]


def test_wrong_number_of_tracks_is_reported_and_row_kept(tmp_path: Path) -> None:
    short = f"1,{H1},{MISSES[0]}"
    long = f"2,{MISSES[0]},{MISSES[1]},{MISSES[2]},{H3}"
    result = check(tmp_path, ["team_info,t,c", short, long, GOOD_ROWS[2]])

    assert where(result) == [(2, 1), (3, 2)]
    assert "2 tracks, expected 3" in result.problems[0].message
    assert "4 tracks, expected 3" in result.problems[1].message
    assert result.rows[1] == [H1, MISSES[0]]
    # Cut at the expected length: H3, the 4th, is not scored.
    assert result.rows[2] == MISSES[:3]


def test_not_500_tracks_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, ["team_info,t,c", f"2,{H3}," + ",".join(misses(498))])
    result = read_submission(path, {2: TRUTHS[2]})

    assert [(p.line, p.pid, p.message) for p in result.problems] == [
        (2, 2, "499 tracks, expected 500")
    ]


def test_repeated_pid_keeps_the_first_row(tmp_path: Path) -> None:
    again = f"1,{MISSES[3]},{MISSES[4]},{MISSES[5]}"
    result = check(tmp_path, ["team_info,t,c", *GOOD_ROWS, again])

    assert where(result) == [(5, 1)]
    assert result.rows[1] == [H1, MISSES[0], MISSES[1]]


@pytest.mark.parametrize(
    "team_line", ["team_info,only a name", "team_info,,contact", "team_info,a,b,c"]
)
def test_garbled_team_line(tmp_path: Path, team_line: str) -> None:
    result = check(tmp_path, [team_line, *GOOD_ROWS])

    assert where(result) == [(1, None)]
    assert "garbled team_info" in result.problems[0].message
    assert sorted(result.rows) == [1, 2, 3]


def test_missing_team_line_still_reads_the_rows(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD_ROWS)

    assert where(result) == [(1, None)]
    assert "first line must be" in result.problems[0].message
    assert sorted(result.rows) == [1, 2, 3]


def test_late_team_line_is_reported(tmp_path: Path) -> None:
    result = check(tmp_path, ["team_info,t,c", GOOD_ROWS[0], "team_info,t,c", *GOOD_ROWS[1:]])
    assert where(result) == [(3, None)]


def test_garbage_lines_are_reported_without_raising(tmp_path: Path) -> None:
    lines = ["team_info,t,c", GOOD_ROWS[0], "hello, world", "-2,x", "\x00\x01", *GOOD_ROWS[1:]]
    result = check(tmp_path, lines)

    assert where(result) == [(3, None), (4, None), (5, None)]
    assert "'hello'" in result.problems[0].message


def test_malformed_uris_are_counted_once_per_line(tmp_path: Path) -> None:
    row = f"1,{H1},spotify:track:short,spotify:episode:{'x' * 22}"
    result = check(tmp_path, ["team_info,t,c", row, *GOOD_ROWS[1:]])

    assert where(result) == [(2, 1)]
    assert "2 malformed track URIs" in result.problems[0].message
    assert "'spotify:track:short', at position 2" in result.problems[0].message
    assert result.rows[1] == [H1]


def test_missing_pid_is_reported_on_line_0(tmp_path: Path) -> None:
    result = check(tmp_path, ["team_info,t,c", GOOD_ROWS[0], GOOD_ROWS[2]])

    assert result.problems == [Problem(0, 2, "pid 2 has no usable row")]
    assert str(result.problems[0]) == "file: pid 2 has no usable row"


def test_empty_file_reports_everything_missing(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = read_submission(path, TRUTHS, expected_length=LENGTH)

    assert where(result) == [(0, None), (0, 1), (0, 2), (0, 3)]


def test_crlf_and_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.csv"
    text = "\r\n".join(["team_info,t,c", *GOOD_ROWS]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = read_submission(path, TRUTHS, expected_length=LENGTH)

    assert result.ok
    assert result.rows[3] == MISSES[3:6]


def test_file_that_is_not_utf8_raises_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"team_info,t,c\n1,caf\xe9\n")

    with pytest.raises(PlaylistFileError, match=r"^line 2 of latin1.csv is not UTF-8 text$"):
        read_submission(path, TRUTHS)


def test_missing_file_raises_playlist_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(PlaylistFileError) as caught:
        read_submission(missing, TRUTHS)

    assert str(caught.value) == f"{missing} does not exist"  # the whole path: which one


# --- scoring a checked submission ------------------------------------------------------------


def test_score_submission_gives_missing_pids_0_0_51(tmp_path: Path) -> None:
    result = check(tmp_path, ["team_info,t,c", GOOD_ROWS[0], GOOD_ROWS[1]])
    scores = score_submission(result, TRUTHS)

    assert [score.pid for score in scores] == [1, 2, 3]
    assert scores[2] == PlaylistScore(3, 0.0, 0.0, 51, 0)
    # pid 1: hidden {H1, H2}, row [H1, m, m]: R-precision 1/2, NDCG 0.61315, clicks 0.
    assert scores[0].r_precision == pytest.approx(0.5)
    assert scores[0].ndcg == pytest.approx(0.6131471927654584)
    # pid 2: hidden {H3} at rank 2: R-precision 0 (first 1 is a miss), NDCG 1/log2(3).
    assert (scores[1].r_precision, scores[1].clicks, scores[1].hits) == (0.0, 0, 1)
    assert scores[1].ndcg == pytest.approx(1 / math.log2(3))


def test_mean_scores() -> None:
    scores = [PlaylistScore(1, 0.5, 0.25, 0, 1), PlaylistScore(2, 0.0, 0.0, 51, 0)]
    # (0.5 + 0) / 2, (0.25 + 0) / 2, (0 + 51) / 2
    assert mean_scores(scores) == MeanScores(2, 0.25, 0.125, 25.5)
    with pytest.raises(ValueError, match="no playlist scores"):
        mean_scores([])
