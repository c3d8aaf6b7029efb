from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import WORLD_GROUPS, WORLD_PLAYLISTS_PER_GROUP, World, make_track_id

from recommender.bundle import load_bundle, resolve_bundle
from recommender.cli import CHALLENGE_LENGTH, cli

STRANGER = make_track_id("stranger", 0)
URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
LINK = re.compile(r"https://open\.spotify\.com/track/([0-9A-Za-z]{22})")


def uri(track_id: str) -> str:
    return f"spotify:track:{track_id}"


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def in_process(world_bundle: Path, track_ids: list[str], top_k: int) -> dict[str, Any]:
    recommender, _ = load_bundle(world_bundle)
    return json.loads(json.dumps(recommender.recommend(track_ids, top_k).to_dict()))


def assert_one_error_line(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not an unexpected exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


# --- train ----------------------------------------------------------------------------------


def test_train_writes_a_bundle_that_loads(world: World, tmp_path: Path) -> None:
    out = tmp_path / "model"

    result = run("train", "--data", world.directory, "--out", out, "--epochs", 1, "--dimension", 8)

    assert result.exit_code == 0, result.output
    assert f"trained on {WORLD_GROUPS * WORLD_PLAYLISTS_PER_GROUP:,} playlists" in result.stdout
    assert "unified epoch 1/1" in result.stderr  # the default model
    recommender, manifest = load_bundle(out)
    assert manifest["training"]["model"] == "unified"
    assert manifest["collaborative"]["dimension"] == 8
    assert world.groups[0][0] in recommender.catalog and world.cold[0][0] in recommender.catalog


# --- recommend ------------------------------------------------------------------------------


def test_recommend_takes_uris_links_and_bare_ids(world: World, world_bundle: Path) -> None:
    seeds = world.groups[2][:3]
    references = [uri(seeds[0]), f"https://open.spotify.com/track/{seeds[1]}?si=abc", seeds[2]]

    result = run("recommend", "--model", world_bundle, "-k", 7, *references)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    expected = [item["track_id"] for item in in_process(world_bundle, seeds, 7)["items"]]
    assert LINK.findall(result.stdout) == expected
    assert [line.split(".")[0].strip() for line in lines] == [str(n) for n in range(1, 8)]
    assert "seeds: 3" in result.stderr and "unknown: 0" in result.stderr


def test_recommend_takes_discord_option_names_and_comma_lists(
    world: World, world_bundle: Path
) -> None:
    seeds = world.groups[2][:3]
    plain = run("recommend", "--model", world_bundle, "-k", 5, *seeds)
    typed = run(
        "recommend", "--model", world_bundle, "-k", 5, f"tracks:{seeds[0]},{seeds[1]}", seeds[2]
    )

    assert plain.exit_code == 0 and typed.exit_code == 0, typed.output
    assert LINK.findall(typed.stdout) == LINK.findall(plain.stdout)
    assert "seeds: 3" in typed.stderr


@pytest.mark.parametrize(
    "between", [" ", "\t", "\u00a0", "\u3000", "\u200b", "\u2060", "\n", " , ", "> <"]
)
def test_two_links_pasted_into_one_argument_are_both_used(
    world: World, world_bundle: Path, between: str
) -> None:
    seeds = world.groups[2][:2]
    links = [f"https://open.spotify.com/track/{seed}?si=abc" for seed in seeds]
    pasted = "< " + between.join(links) + " >"

    result = run("recommend", "--model", world_bundle, "-k", 5, "--json", pasted)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seeds"] == 2


def test_recommend_json_matches_the_library(world: World, world_bundle: Path) -> None:
    seeds = [world.groups[5][0], world.cold[5][0], STRANGER]

    result = run("recommend", "--model", world_bundle, "--json", "-k", 12, *seeds)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == in_process(world_bundle, seeds, 12)
    assert "1 track(s) not in the model's catalogue" in result.stderr


def write_playlist(directory: Path, kind: str, track_ids: list[str]) -> Path:
    if kind == "txt":
        path = directory / "mix.txt"
        lines = ["# my mix", *(f"https://open.spotify.com/track/{t}" for t in track_ids)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "json":
        path = directory / "mix.json"
        entries: list[object] = [uri(t) for t in track_ids]
        entries.append({"is_local": True, "uri": "spotify:local:a:b:c:1"})
        path.write_text(json.dumps({"name": "mix", "tracks": entries}), encoding="utf-8")
    else:
        path = directory / "mix.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(["Track URI", "Track Name", "Artist Name(s)", "Duration (ms)"])
            for number, track_id in enumerate(track_ids):
                writer.writerow([uri(track_id), f"Song, {number}", "Band", 200000])
    return path


@pytest.mark.parametrize("kind", ["txt", "json", "csv"])
def test_recommend_reads_a_playlist_file(
    world: World, world_bundle: Path, tmp_path: Path, kind: str
) -> None:
    seeds = [world.groups[1][4], world.groups[1][9], world.no_features[1]]
    path = write_playlist(tmp_path, kind, seeds)

    result = run("recommend", "--model", world_bundle, "--json", "--playlist", path)

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer == in_process(world_bundle, seeds, 10)
    assert answer["seeds"] == 3 and not {item["track_id"] for item in answer["items"]} & set(seeds)
    assert ("skipped entry 4" in result.stderr) == (kind == "json")


def write_challenge(path: Path, playlists: list[tuple[int, list[str]]]) -> None:
    raw = [
        {
            "pid": pid,
            "name": f"challenge {pid}",
            "num_samples": len(seeds),
            "tracks": [{"pos": p, "track_uri": uri(t)} for p, t in enumerate(seeds)],
        }
        for pid, seeds in playlists
    ]
    path.write_text(json.dumps({"date": "2018-01-16", "version": "v1", "playlists": raw}))


def test_challenge_writes_500_new_distinct_tracks_per_playlist(
    world: World, world_bundle: Path, tmp_path: Path
) -> None:
    playlists = [
        (1000, []),
        (1001, world.groups[1][:25]),
        (1002, [world.cold[4][0], STRANGER]),
        (7, [world.once_without_features]),
    ]
    write_challenge(tmp_path / "challenge.json", playlists)
    out = tmp_path / "submission.csv"

    result = run(
        "recommend",
        "--model",
        world_bundle,
        "--challenge",
        tmp_path / "challenge.json",
        "--out",
        out,
    )

    assert result.exit_code == 0, result.output
    assert f"wrote {len(playlists)} playlists" in result.stdout
    header, *lines = out.read_text().splitlines()
    assert header.startswith("team_info,")
    assert len(lines) == len(playlists)
    for line, (pid, seeds) in zip(lines, playlists, strict=True):
        first, *uris = line.split(",")
        assert first == str(pid)
        assert len(uris) == CHALLENGE_LENGTH == len(set(uris))
        assert all(URI.fullmatch(u) for u in uris)
        assert not set(uris) & {uri(t) for t in seeds}


# --- similar and demo -----------------------------------------------------------------------


def test_similar_lists_sound_alikes(world: World, world_bundle: Path) -> None:
    track_id = world.groups[6][10]

    result = run("similar", "--model", world_bundle, "--json", "-k", 5, uri(track_id))

    assert result.exit_code == 0, result.output
    recommender, _ = load_bundle(world_bundle)
    expected = json.loads(json.dumps(recommender.similar(track_id, 5).to_dict()))
    assert json.loads(result.stdout) == expected
    assert [world.group_of(item["track_id"]) for item in expected["items"]] == [6] * 5


def test_demo_recommends_for_the_first_long_playlist(world: World, world_bundle: Path) -> None:
    result = run("demo", "--data", world.directory, "--model", world_bundle, "-k", 4)

    assert result.exit_code == 0, result.output
    assert "Playlist 'mix 0', first 10 tracks:" in result.stdout
    after = result.stdout.split("HarmonYa recommends:")[1].strip().splitlines()
    assert [line.split(".")[0].strip() for line in after] == ["1", "2", "3", "4"]


# --- bad input: one line starting "error:", exit status 1 -----------------------------------


def test_similar_of_an_unknown_track_is_one_error_line(world_bundle: Path) -> None:
    result = run("similar", "--model", world_bundle, STRANGER)

    assert_one_error_line(result, f"spotify:track:{STRANGER} is not in the model's catalogue")


def test_similar_of_a_track_without_features_is_one_error_line(
    world: World, world_bundle: Path
) -> None:
    result = run("similar", "--model", world_bundle, world.no_features[0])

    assert_one_error_line(result, "has no audio features")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["https://example.com/track/x"], "not a Spotify link"),
        ([f"https://open.spotify.com/album/{STRANGER}"], "album"),
        ([STRANGER], "none of these tracks is in the model's catalogue"),
    ],
    ids=["not spotify", "album", "unknown track"],
)
def test_recommend_bad_arguments_are_one_error_line(
    world_bundle: Path, arguments: list[str], message: str
) -> None:
    result = run("recommend", "--model", world_bundle, *arguments)

    assert_one_error_line(result, message)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give tracks, or --playlist FILE"),
        (["--challenge", "challenge.json"], "--challenge needs --out"),
        (["--out", "x.csv", "0UaMYEvWZi0ZqiDOoHU3YI"], "--out goes with --challenge"),
        (["-k", "0", "0UaMYEvWZi0ZqiDOoHU3YI"], "Invalid value for '-k'"),
    ],
    ids=["nothing", "challenge without out", "out without challenge", "k zero"],
)
def test_recommend_usage_mistakes_are_one_error_line_with_exit_2(
    world_bundle: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    script = "import sys\nfrom recommender.cli import main\nmain(sys.argv[1:])\n"

    done = python("-c", script, "recommend", "--model", str(world_bundle), *arguments, cwd=tmp_path)

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0] and "--help" in lines[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (f"{uri(STRANGER)}\n{uri(make_track_id('stranger', 1))}\n", "none of these tracks"),
        ("hello\nnot a link\n", "none of the 2 entries in the file is a Spotify track"),
        ('["spotify:track:', "not valid JSON"),
    ],
    ids=["empty", "only unknown tracks", "malformed links", "broken JSON"],
)
def test_recommend_bad_playlist_files_are_one_error_line(
    world_bundle: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "playlist.txt"
    path.write_text(text, encoding="utf-8")

    result = run("recommend", "--model", world_bundle, "--playlist", path)

    assert_one_error_line(result, message)


def test_missing_or_damaged_model_is_one_error_line(
    world: World, world_bundle: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(resolve_bundle(world_bundle), damaged)
    index = damaged / "collab.ann"
    index.write_bytes(index.read_bytes()[:100])

    missing = run("recommend", "--model", tmp_path / "absent", world.groups[0][0])
    broken = run("recommend", "--model", damaged, world.groups[0][0])

    assert_one_error_line(missing, "no model at")
    assert_one_error_line(broken, "collab.ann has the wrong size")


def test_a_model_kind_given_as_the_bundle_folder_is_explained(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("recommend", "--model", "unified", world.groups[0][0])
    assert_one_error_line(result, "is a model kind, but a bundle folder is wanted")
    assert "harmonya train --model unified --out models/unified" in result.stderr


def test_id_dropout_is_refused_where_it_cannot_apply(world: World, tmp_path: Path) -> None:
    out = tmp_path / "m"
    two_tower = run(
        "train",
        "--data",
        world.directory,
        "--out",
        out,
        "--model",
        "two-tower",
        "--id-dropout",
        0.2,
    )
    nan = run("train", "--data", world.directory, "--model", "unified", "--id-dropout", "nan")
    assert two_tower.exit_code == nan.exit_code == 2
    assert "--id-dropout applies to --model unified only" in two_tower.output
    assert "not nan" in nan.output
    assert not out.exists()


def test_train_refuses_two_models_at_once(world: World, tmp_path: Path) -> None:
    out = tmp_path / "m"
    both = ("--model", "two-tower", "--model", "unified")

    result = run("train", "--data", world.directory, "--out", out, *both, "--id-dropout", 0.2)

    assert result.exit_code == 2
    assert "train builds one model: give --model once" in result.output
    assert not out.exists()


def test_train_without_data_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    absent = run("train", "--data", tmp_path / "absent", "--out", tmp_path / "model")
    empty = run("train", "--data", tmp_path / "empty", "--out", tmp_path / "model")

    assert_one_error_line(absent, "no data at")
    assert_one_error_line(empty, "no Million Playlist Dataset slices")
    assert not (tmp_path / "model").exists()


def test_demo_without_bundle_or_data_is_one_error_line(tmp_path: Path) -> None:
    result = run("demo", "--data", tmp_path / "no-data", "--model", tmp_path / "no-model")

    assert_one_error_line(result, "no bundle at")


def test_demo_given_a_model_kind_explains_and_trains_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run("demo", "--data", world.directory, "--model", "two-tower")

    assert_one_error_line(result, "is a model kind, but a bundle folder is wanted")
    assert not (tmp_path / "two-tower").exists()


@pytest.mark.parametrize("kind", ["unified", "two-tower"])
def test_train_out_given_a_model_kind_explains_and_trains_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run("train", "--data", world.directory, "--out", kind)

    assert_one_error_line(result, f"harmonya train --model {kind} --out models/{kind}")
    assert not (tmp_path / kind).exists()


@pytest.mark.parametrize("given", ["", "tracks:", ", ,"])
def test_recommend_with_no_track_in_the_argument_is_a_usage_error(
    world_bundle: Path, given: str
) -> None:
    result = run("recommend", "--model", world_bundle, given)

    assert result.exit_code == 2
    assert "no track was given" in result.stderr


def test_demo_checks_where_it_saves_before_training(world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    for target in (blocker, blocker / "below"):
        result = run("demo", "--data", world.directory, "--model", target)

        assert_one_error_line(result, "cannot write a model to")
        assert "epoch" not in result.output  # refused before any training


@pytest.mark.parametrize("command", ["train", "demo"])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    option = "--out" if command == "train" else "--model"

    result = run(command, "--data", world.directory, option, "")

    assert result.exit_code == 2
    assert "is empty" in result.output
    assert list(tmp_path.iterdir()) == []


def test_empty_path_variables_mean_the_defaults(tmp_path: Path) -> None:
    script = (
        "from recommender.cli import DEFAULT_DATA, DEFAULT_MODEL\n"
        "print(DEFAULT_MODEL, DEFAULT_DATA)"
    )
    env = {**os.environ, "HARMONYA_MODEL_DIR": "", "HARMONYA_DATA_DIR": " "}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split() == ["models/default", "../shared/data/raw"], done.stderr


# --- the real command in a fresh process ----------------------------------------------------


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_module_help_lists_the_commands(tmp_path: Path) -> None:
    done = python("-m", "recommender", "--help", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    for command in ("train", "recommend", "similar", "demo"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), command


def test_unknown_track_in_a_fresh_process_is_one_error_line_without_traceback(
    world_bundle: Path, tmp_path: Path
) -> None:
    done = python(
        "-m", "recommender", "similar", "--model", str(world_bundle), STRANGER, cwd=tmp_path
    )

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: spotify:track:{STRANGER} is not in the model's catalogue"
    ]
    assert "Traceback" not in done.stdout + done.stderr


def test_recommend_json_in_a_fresh_process_matches_and_never_imports_tensorflow(
    world: World, world_bundle: Path, tmp_path: Path
) -> None:
    seeds = [world.groups[7][1], world.groups[7][2], world.cold[7][3], STRANGER]
    arguments = ["recommend", "--model", str(world_bundle), "--json", "-k", "15", *seeds]
    script = (
        "import sys\n"
        "from recommender.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "finally:\n"
        "    print('tensorflow' in sys.modules, file=sys.stderr)\n"
    )

    done = python("-c", script, *arguments, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "False"
    assert json.loads(done.stdout) == in_process(world_bundle, seeds, 15)
