"""`harmonya evaluate` end to end on the small MPD-format world, and `--score` on bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import World, write_world

from recommender.benchmark import only
from recommender.cli import cli
from recommender.metrics import Truth
from recommender.unified import ID_DROPOUT


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def evaluation(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluation")
    result = run(
        "evaluate",
        "--data",
        world.directory,
        "--out",
        out,
        "--per-scenario",
        4,
        "--validation",
        2,
        "--scenario",
        "title only",
        "--scenario",
        "first 5",
        "--epochs",
        2,
        "--baseline",
        "most popular",
        "--baseline",
        "item-kNN",
    )
    assert result.exit_code == 0, result.output
    return out


def test_every_method_is_scored_from_its_own_submission(evaluation: Path) -> None:
    results = json.loads((evaluation / "results.json").read_text())
    methods = results["methods"]
    assert set(methods) == {
        "HarmonYa hybrid",
        "HarmonYa collaborative",
        "HarmonYa content",
        "most popular",
        "item-kNN",
    }
    for name, figures in methods.items():
        assert figures["overall"]["playlists"] == 8, name
        assert 0.0 <= figures["overall"]["ndcg"] <= 1.0
        assert set(figures["scenarios"]) == {"title only", "first 5"}
    # Block-structured playlists: five seeds name the block, which collaborative filtering
    # finds and a popularity list cannot.
    first5 = {name: m["scenarios"]["first 5"]["ndcg"] for name, m in methods.items()}
    assert first5["HarmonYa hybrid"] > first5["most popular"] + 0.1
    assert first5["item-kNN"] > first5["most popular"] + 0.1
    submissions = sorted(p.name for p in (evaluation / "submissions").iterdir())
    assert submissions == [
        "harmonya-collaborative.csv",
        "harmonya-content.csv",
        "harmonya-hybrid.csv",
        "item-knn.csv",
        "most-popular.csv",
    ]
    report = (evaluation / "report.md").read_text()
    assert (
        "| HarmonYa hybrid |" in report and "Submission problems found while scoring: 0" in report
    )
    for plot in ("ndcg_per_scenario.png", "hits_by_length.png"):
        assert (evaluation / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scoring_a_submission_again_gives_the_runs_own_figures(evaluation: Path) -> None:
    # R-precision credits any recommended track by its artist, so truth.json must name them.
    submission = evaluation / "submissions" / "harmonya-hybrid.csv"
    result = run("evaluate", "--score", submission, "--truth", evaluation / "truth.json")
    overall = json.loads((evaluation / "results.json").read_text())["methods"]["HarmonYa hybrid"]
    figures = overall["overall"]
    assert result.exit_code == 0, result.output
    assert f"R-precision {figures['r_precision']:.4f}, NDCG {figures['ndcg']:.4f}" in result.output


def test_score_reports_a_broken_submission_line_by_line(evaluation: Path, tmp_path: Path) -> None:
    good = (evaluation / "submissions" / "item-knn.csv").read_text().splitlines()
    truth = json.loads((evaluation / "truth.json").read_text())
    seed = "spotify:track:" + next(p for p in truth["playlists"] if p["seeds"])["seeds"][0]
    first_pid = good[1].split(",")[0]
    seeded_pid = str(next(p for p in truth["playlists"] if p["seeds"])["pid"])
    rows = {line.split(",")[0]: line for line in good[1:]}
    broken = [good[0]]
    for pid, line in rows.items():
        fields = line.split(",")
        if pid == first_pid:
            fields = fields[:-1]  # 499 tracks
        if pid == seeded_pid:
            fields[1] = seed
        broken.append(",".join(fields))
    broken.append("999999," + ",".join(good[1].split(",")[1:]))  # a pid nobody asked for
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(broken) + "\n")
    result = run("evaluate", "--score", path, "--truth", evaluation / "truth.json")
    assert result.exit_code == 1
    assert "line 2:" in result.stderr and "499" in result.stderr
    assert "seed" in result.stderr
    assert f"line {len(broken)}:" in result.stderr and "999999" in result.stderr
    assert "8 playlists: R-precision" in result.stdout

    clean = run(
        "evaluate",
        "--score",
        evaluation / "submissions" / "item-knn.csv",
        "--truth",
        evaluation / "truth.json",
    )
    assert clean.exit_code == 0, clean.output
    assert clean.stderr == ""


def test_score_needs_both_files_and_a_readable_truth(tmp_path: Path) -> None:
    assert run("evaluate", "--score", tmp_path / "x.csv").exit_code == 2
    (tmp_path / "truth.json").write_text("not json")
    (tmp_path / "x.csv").write_text("team_info,a,b\n")
    result = run("evaluate", "--score", tmp_path / "x.csv", "--truth", tmp_path / "truth.json")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot use the truth file: truth.json is not JSON")
    missing = tmp_path / "runs" / "truth.json"
    result = run("evaluate", "--score", tmp_path / "x.csv", "--truth", missing)
    assert result.exit_code == 1
    assert f"{missing} does not exist" in result.stderr  # which truth.json was looked for


GOOD_ENTRY = {
    "pid": 1,
    "scenario": "first 1",
    "name": "a",
    "seeds": ["0UaMYEvWZi0ZqiDOoHU3YI"],
    "hidden": ["6I9VzXrHxO9rA9A5euc8Ak"],
    "length": 2,
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"playlists": [], "artists": {}}, "holds no playlists"),
        ({"artists": {}}, "no 'playlists' list"),
        ([1, 2], "no 'playlists' list"),
        ({"playlists": [{**GOOD_ENTRY, "hidden": []}]}, "hides no tracks"),
        ({"playlists": [{**GOOD_ENTRY, "pid": [1]}]}, "pid must be a number"),
        ({"playlists": [{**GOOD_ENTRY, "pid": "1"}]}, "pid must be a number"),
        ({"playlists": [{**GOOD_ENTRY, "pid": True}]}, "pid must be a number"),
        ({"playlists": [{**GOOD_ENTRY, "seeds": 5}]}, "seeds must be a list"),
        ({"playlists": [{**GOOD_ENTRY, "hidden": [1, 2]}]}, "22-character track ids"),
        ({"playlists": [GOOD_ENTRY, GOOD_ENTRY]}, "pid 1 appears twice"),
        ({"playlists": [{"pid": 1, "name": "a", "tracks": []}]}, "is this the challenge set"),
        ({"playlists": [GOOD_ENTRY], "artists": {"x": 3}}, "'artists' must map"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ('{"playlists": [{"pid": ' + "1" * 5000 + "}]}", "not a truth file"),
        ({"playlists": [{**GOOD_ENTRY, "pid": 2**63}]}, "pid must be from 0"),
        ({"playlists": [{**GOOD_ENTRY, "pid": -1}]}, "pid must be from 0"),
        (
            {"playlists": [{**GOOD_ENTRY, "hidden": ["spotify:track:6I9VzXrHxO9rA9A5euc8Ak"]}]},
            "22-character track ids",
        ),
        ({"playlists": [{**GOOD_ENTRY, "hidden": [" "]}]}, "22-character track ids"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_a_malformed_truth_file_is_one_error_line(
    tmp_path: Path, content: object, message: str
) -> None:
    truth = tmp_path / "truth.json"
    if isinstance(content, bytes):
        truth.write_bytes(content)
    else:
        truth.write_text(content if isinstance(content, str) else json.dumps(content))
    (tmp_path / "x.csv").write_text("team_info,a,b\n")

    result = run("evaluate", "--score", tmp_path / "x.csv", "--truth", truth)

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert result.stderr.startswith("error: cannot use the truth file: truth.json")
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_submission_that_is_not_a_text_file_is_refused_without_reading_it_whole(
    evaluation: Path, tmp_path: Path
) -> None:
    endless = tmp_path / "one-line.csv"
    endless.write_bytes(b"0" * (3 * 2**20))  # no line break: it would be read whole
    truth = evaluation / "truth.json"

    long_line = run("evaluate", "--score", endless, "--truth", truth)
    folder = run("evaluate", "--score", tmp_path, "--truth", truth)

    assert (
        long_line.exit_code == 1
        and "line 1 of one-line.csv is longer than 1 MiB" in long_line.stderr
    )
    assert folder.exit_code == 2  # click refuses a folder where a file goes


PAIRED = Path(__file__).resolve().parents[1] / "bench" / "paired.py"


def paired(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PAIRED), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_paired_bootstrap_compares_two_submissions_of_one_run(
    evaluation: Path, tmp_path: Path
) -> None:
    submissions = evaluation / "submissions"
    a, b = submissions / "most-popular.csv", submissions / "item-knn.csv"

    done = paired(evaluation / "truth.json", a, b, "--resamples", 200)
    same = paired(evaluation / "truth.json", a, submissions / ".." / "submissions" / a.name)
    hardlink = tmp_path / "copy.csv"
    os.link(a, hardlink)
    linked = paired(evaluation / "truth.json", a, hardlink)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "item-knn.csv minus most-popular.csv, 8 playlists:"
    assert [line.split(":")[0].strip() for line in done.stdout.splitlines()[1:]] == [
        "ndcg",
        "r_precision",
        "clicks",
    ]
    assert same.returncode == 2 and "are the same file" in same.stderr
    assert linked.returncode == 2 and "are the same file" in linked.stderr


def test_paired_refuses_a_submission_from_another_run_and_bad_input(
    evaluation: Path, tmp_path: Path
) -> None:
    truth = evaluation / "truth.json"
    good = evaluation / "submissions" / "most-popular.csv"
    other_run = tmp_path / "other.csv"
    lines = good.read_text().splitlines()
    other_run.write_text("\n".join(lines[:-1]) + "\n")  # one playlist missing
    garbage_truth = tmp_path / "truth.json"
    garbage_truth.write_text("")

    missing = paired(truth, good, other_run)
    empty = paired(truth, good, tmp_path / "empty.csv")
    bad_truth = paired(garbage_truth, good, good)
    no_resamples = paired(truth, good, good, "--resamples", 0)
    no_data = paired(truth, good, good, "--warm-data", tmp_path / "absent")

    assert missing.returncode == 1 and missing.stdout == ""
    assert "other.csv has 1 problem(s)" in missing.stderr and "has no usable row" in missing.stderr
    assert empty.returncode == 1 and "empty.csv does not exist" in empty.stderr
    assert bad_truth.returncode == 1 and "truth.json is not JSON" in bad_truth.stderr
    assert no_resamples.returncode == 2 and "--resamples" in no_resamples.stderr
    assert no_data.returncode == 2 and "--warm-data" in no_data.stderr
    for done in (missing, empty, bad_truth, no_resamples, no_data):
        assert "Traceback" not in done.stderr


def test_an_output_folder_that_cannot_be_made_fails_before_any_work(
    world: World, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run("evaluate", "--data", world.directory, "--out", blocker / "report")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write the report to")
    assert "split:" not in result.stderr  # refused before the data was read


@pytest.mark.parametrize(
    "link", ["out inside data", "submissions into data", "data to out", "data file in out"]
)
def test_a_report_that_overlaps_the_data_folder_is_refused(tmp_path: Path, link: str) -> None:
    data = write_world(tmp_path / "data").directory
    out = tmp_path / "run"
    if link == "out inside data":
        out = data / "run"
    elif link == "submissions into data":  # an earlier run's clean-up would delete data files
        out.mkdir()
        (out / "submissions").symlink_to(data)
    elif link == "data to out":  # the data walk follows the link into the report folder
        out.mkdir()
        (data / "runs").symlink_to(out)
    else:  # the feature table the data folder links to lies where the clean-up deletes
        (out / "submissions").mkdir(parents=True)
        (data / "audio_features.csv").rename(out / "submissions" / "features.csv")
        (data / "audio_features.csv").symlink_to(out / "submissions" / "features.csv")
    before = sorted(p.name for p in data.iterdir())

    result = run("evaluate", "--data", data, "--out", out, "--no-baselines")

    assert result.exit_code == 1
    assert "overlaps the data folder" in result.stderr and "split:" not in result.stderr
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written or removed


def test_a_cache_inside_the_data_folder_is_refused(world: World, tmp_path: Path) -> None:
    cache = world.directory / "cache"

    result = run("evaluate", "--data", world.directory, "--out", tmp_path, "--cache", cache)

    assert result.exit_code == 1 and "--cache" in result.stderr
    assert not cache.exists()


@pytest.mark.parametrize(
    "where",
    ["report.md", "truth.json", "submissions/harmonya-hybrid.csv", "cache"],
)
def test_a_file_of_the_run_that_cannot_be_written_is_refused_before_training(
    world: World, tmp_path: Path, where: str
) -> None:
    out = tmp_path / "run"
    cache = tmp_path / "blocker" / "models"
    if where == "cache":
        (tmp_path / "blocker").write_text("a file, not a folder")
    else:
        (out / where).mkdir(parents=True)

    result = run(
        "evaluate", "--data", world.directory, "--out", out, "--cache", cache, "--no-baselines"
    )

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "split:" not in result.stderr
    assert (str(cache) if where == "cache" else str(out / where)) in result.stderr


def test_both_models_are_compared_on_one_split_warm_and_cold_apart(
    world: World, tmp_path: Path
) -> None:
    result = run(
        "evaluate",
        "--data",
        world.directory,
        "--out",
        tmp_path,
        "--per-scenario",
        3,
        "--validation",
        0,
        "--scenario",
        "first 5",
        "--epochs",
        1,
        "--no-baselines",
        "--model",
        "two-tower",
        "--model",
        "unified",
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    methods = results["methods"]
    described = f"unified, 1 epochs, id dropout {ID_DROPOUT:g}"
    assert methods["HarmonYa hybrid (unified)"]["settings"] == described
    assert methods["HarmonYa hybrid (two-tower)"]["settings"] == "two-tower, 1 epochs"
    assert {"HarmonYa collaborative (unified)", "HarmonYa content (two-tower)"} <= set(methods)
    assert "most popular" not in methods
    truth = json.loads((tmp_path / "truth.json").read_text())
    hidden = sum(len(p["hidden"]) for p in truth["playlists"])
    assert results["warm"] + results["cold"] <= hidden == results["hidden"]
    for figures in methods.values():
        warm = figures["warm"]
        assert 0 < warm["playlists"] <= figures["overall"]["playlists"]
        assert 0.0 <= warm["ndcg"] <= 1.0
    submissions = {p.name for p in (tmp_path / "submissions").iterdir()}
    assert "harmonya-hybrid-unified.csv" in submissions
    report = (tmp_path / "report.md").read_text()
    assert "## Warm and cold hidden tracks" in report
    # Every track of this world is on several training playlists, so none hidden is cold: the
    # cold columns say so rather than show scores of nothing.
    assert results["cold"] == 0
    assert all(figures["cold"] is None for figures in methods.values())
    assert "| n/a | n/a | n/a | n/a |" in report


def test_scoring_against_a_part_of_the_hidden_tracks_drops_the_rest() -> None:
    expected = {
        1: Truth(1, frozenset(), ("spotify:track:a", "spotify:track:b", "spotify:track:c")),
        2: Truth(2, frozenset(), ("spotify:track:b",)),
    }
    cut = only(expected, {"a", "c"})
    assert list(cut) == [1]
    assert cut[1].hidden == ("spotify:track:a", "spotify:track:c")


def test_the_unified_model_is_evaluated_on_request(world: World, tmp_path: Path) -> None:
    result = run(
        "evaluate",
        "--data",
        world.directory,
        "--out",
        tmp_path,
        "--per-scenario",
        3,
        "--validation",
        0,
        "--scenario",
        "first 5",
        "--epochs",
        1,
        "--no-baselines",
        "--model",
        "unified",
    )
    assert result.exit_code == 0, result.output
    methods = json.loads((tmp_path / "results.json").read_text())["methods"]
    assert methods["HarmonYa hybrid"]["settings"] == f"unified, 1 epochs, id dropout {ID_DROPOUT:g}"
    assert "most popular" not in methods


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "unified", "--id-dropout", "nan"), "not nan"),
        (
            ("--model", "two-tower", "--id-dropout", "0.2"),
            "--id-dropout applies to --model unified",
        ),
        (("--seed", "-1"), "--seed"),
        (("--seed", str(2**31)), "--seed"),
    ],
)
def test_a_bad_id_dropout_is_refused_before_any_file_is_written(
    world: World, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "report"
    result = run("evaluate", "--data", world.directory, "--out", out, "--no-baselines", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_a_new_run_in_an_old_folder_leaves_none_of_the_old_runs_files(
    world: World, tmp_path: Path
) -> None:
    stale = tmp_path / "submissions" / "method-of-an-earlier-run.csv"
    stale.parent.mkdir()
    stale.write_text("team_info,old,old\n")
    (tmp_path / "report.md").write_text("# an earlier report\n")
    notes = tmp_path / "my-notes.txt"  # not evaluate's: kept
    notes.write_text("keep me")

    failed = run("evaluate", "--data", tmp_path / "absent", "--out", tmp_path, "--no-baselines")
    assert failed.exit_code != 0 and stale.exists()  # a run that fails early loses nothing

    result = run(
        "evaluate",
        "--data",
        world.directory,
        "--out",
        tmp_path,
        "--per-scenario",
        3,
        "--validation",
        0,
        "--scenario",
        "first 5",
        "--epochs",
        1,
        "--no-baselines",
    )

    assert result.exit_code == 0, result.output
    assert "removed 2 file(s) of an earlier run" in result.stderr
    assert not stale.exists() and notes.read_text() == "keep me"
    assert "an earlier report" not in (tmp_path / "report.md").read_text()
    written = sorted(p.name for p in (tmp_path / "submissions").iterdir())
    assert written and all(name.startswith("harmonya-") for name in written), written
