from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import World, make_track_id

from recommender import bundle
from recommender.bundle import (
    CURRENT,
    FORMAT_VERSION,
    KEEP_VERSIONS,
    MANIFEST,
    BundleError,
    load_bundle,
    load_scaler,
    resolve_bundle,
    save_bundle,
    seal_manifest,
)
from recommender.collab import CollabModel
from recommender.content import CONTENT_DIM
from recommender.data import fingerprint_files
from recommender.features import FEATURE_ORDER, find_feature_files
from recommender.hybrid import HybridRecommender, RecommendationResult
from recommender.train import TrainedModel

STRANGER = make_track_id("stranger", 0)


def requests(world: World) -> list[list[str]]:
    """Playlists that exercise every path: both towers, cold seeds, unknowns, nothing known."""
    return [
        world.groups[0][:5],
        [world.groups[4][7]],
        [world.cold[2][0]],
        [world.groups[6][0], world.cold[6][1], world.no_features[0], STRANGER],
        [world.once_without_features, STRANGER],
        [],
    ]


def expected(result: RecommendationResult) -> dict[str, Any]:
    """``result`` as a dict whose scores and weights compare with pytest.approx."""
    data = result.to_dict()
    for item in data["items"]:
        item["score"] = pytest.approx(item["score"], rel=1e-6)
    data["weights"] = pytest.approx(data["weights"])
    return data


def save(trained: TrainedModel, root: Path) -> Path:
    return save_bundle(trained.recommender, trained.scaler, root, training=trained.training)


def answers(recommender: HybridRecommender, world: World) -> list[dict[str, Any]]:
    return [recommender.recommend(seeds, 20).to_dict() for seeds in requests(world)]


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# --- what a saved bundle holds --------------------------------------------------------------


def test_save_writes_a_version_with_a_complete_manifest_and_points_current_at_it(
    world_bundle: Path, world: World, trained_world: TrainedModel
) -> None:
    current = world_bundle / CURRENT
    version = resolve_bundle(world_bundle)
    manifest = json.loads((version / MANIFEST).read_text())

    assert current.is_symlink() and version.parent.name == "versions"
    assert manifest["format_version"] == FORMAT_VERSION
    assert set(manifest["files"]) == set(listing(version)) - {MANIFEST}
    for name, entry in manifest["files"].items():
        data = (version / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert manifest["features"]["order"] == list(FEATURE_ORDER)
    assert (manifest["content"]["dimension"], manifest["content"]["metric"]) == (
        CONTENT_DIM,
        "euclidean",
    )
    assert (manifest["collaborative"]["dimension"], manifest["collaborative"]["metric"]) == (
        16,
        "angular",
    )
    assert manifest["catalog"]["tracks"] == len(trained_world.recommender.catalog)
    data_files = sorted(world.directory.glob("mpd.slice.*")) + find_feature_files(world.directory)
    expected = fingerprint_files(data_files, root=world.directory)
    assert manifest["training"]["data"]["fingerprint"] == expected
    assert "numpy" in manifest["libraries"] and "python" in manifest["libraries"]


def test_loaded_bundle_answers_like_the_model_that_was_saved(
    world_bundle: Path, world: World, trained_world: TrainedModel
) -> None:
    loaded, _ = load_bundle(world_bundle)
    trained = trained_world.recommender

    for seeds in requests(world):
        assert loaded.recommend(seeds, 20).to_dict() == expected(trained.recommend(seeds, 20))
    similar = world.groups[1][3]
    assert loaded.similar(similar, 10).to_dict() == expected(trained.similar(similar, 10))
    assert load_scaler(world_bundle) == trained_world.scaler


def test_a_version_directory_loads_directly(world_bundle: Path, world: World) -> None:
    by_root, _ = load_bundle(world_bundle)
    by_version, _ = load_bundle(resolve_bundle(world_bundle))

    assert answers(by_version, world) == answers(by_root, world)


def test_a_fresh_process_answers_the_same_without_importing_tensorflow(
    world_bundle: Path, world: World, tmp_path: Path
) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from recommender.bundle import load_bundle\n"
        "recommender, _ = load_bundle(Path(sys.argv[1]))\n"
        "requests, similar = json.loads(sys.argv[2]), sys.argv[3]\n"
        "print(json.dumps({\n"
        "    'answers': [recommender.recommend(s, 20).to_dict() for s in requests],\n"
        "    'similar': recommender.similar(similar, 10).to_dict(),\n"
        "    'tensorflow': 'tensorflow' in sys.modules or 'keras' in sys.modules,\n"
        "}))\n"
    )
    similar = world.groups[1][3]
    command = [
        sys.executable,
        "-c",
        script,
        str(world_bundle),
        json.dumps(requests(world)),
        similar,
    ]

    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)

    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    loaded, _ = load_bundle(world_bundle)
    assert fresh["tensorflow"] is False
    in_process = json.loads(json.dumps(answers(loaded, world)))
    assert [a["items"] for a in fresh["answers"]] == [a["items"] for a in in_process]
    assert fresh["answers"] == in_process
    assert fresh["similar"] == json.loads(json.dumps(loaded.similar(similar, 10).to_dict()))


# --- new versions and crashes ---------------------------------------------------------------


def test_each_save_swaps_current_and_old_versions_are_pruned(
    trained_world: TrainedModel, tmp_path: Path
) -> None:
    root = tmp_path / "model"
    made = [save(trained_world, root) for _ in range(KEEP_VERSIONS + 1)]

    assert resolve_bundle(root) == made[-1]
    assert listing(root / "versions") == sorted(path.name for path in made[-KEEP_VERSIONS:])
    assert not any(name.startswith(".") for name in listing(root))  # no temporary link left


def crash_while_writing_collab(monkeypatch: pytest.MonkeyPatch) -> None:
    def half_written(self: CollabModel, directory: Path) -> dict[str, Any]:
        (directory / "collab.npz").write_bytes(b"PK\x03\x04 half of it")
        raise OSError("No space left on device")

    monkeypatch.setattr(CollabModel, "save", half_written)


def crash_after_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sync(directory: Path) -> None:
        assert (directory / MANIFEST).is_file()
        raise OSError("Input/output error")

    monkeypatch.setattr(bundle, "_fsync_tree", no_sync)


def crash_before_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    def power_cut(root: Path, version: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle, "_point_current", power_cut)


@pytest.mark.parametrize(
    "crash", [crash_while_writing_collab, crash_after_the_manifest, crash_before_the_switch]
)
def test_a_crash_mid_save_leaves_the_previous_bundle_serving(
    crash: Callable[[pytest.MonkeyPatch], None],
    trained_world: TrainedModel,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "model"
    previous = save(trained_world, root)
    before, _ = load_bundle(root)
    expected = answers(before, world)
    crash(monkeypatch)

    # A disk error surfaces as a BundleError with its reason; an interrupt as itself.
    with pytest.raises((BundleError, KeyboardInterrupt)):
        save(trained_world, root)

    assert resolve_bundle(root) == previous
    after, _ = load_bundle(root)
    assert answers(after, world) == expected
    left = [name for name in listing(root / "versions") if name != previous.name]
    assert all((root / "versions" / name / MANIFEST).is_file() for name in left)
    assert not any(name.startswith(".") for name in left)  # no half-written staging


# --- damaged or mismatched bundles ----------------------------------------------------------


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(version: Path) -> None:
        manifest = json.loads((version / MANIFEST).read_text())
        change(manifest)
        # Sealed again, so the checks behind the seal are what is tested.
        (version / MANIFEST).write_text(json.dumps(seal_manifest(manifest)))

    return apply


def truncate(name: str) -> Callable[[Path], None]:
    def apply(version: Path) -> None:
        path = version / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return apply


def flip_a_byte(name: str) -> Callable[[Path], None]:
    def apply(version: Path) -> None:
        data = bytearray((version / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (version / name).write_bytes(bytes(data))

    return apply


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        for key in keys[:-1]:
            manifest = manifest[key]
        manifest[keys[-1]] = value

    return change


DAMAGE = {
    "format version bumped": (
        edit_manifest(_set("format_version", value=FORMAT_VERSION + 1)),
        f"has bundle format {FORMAT_VERSION + 1}.*retrain",
    ),
    "content dimension changed": (
        edit_manifest(_set("content", "dimension", value=CONTENT_DIM + 1)),
        "content index dimension",
    ),
    "collaborative dimension changed": (
        edit_manifest(_set("collaborative", "dimension", value=32)),
        "collaborative arrays do not match the manifest",
    ),
    "collaborative metric changed": (
        edit_manifest(_set("collaborative", "metric", value="euclidean")),
        "collaborative metric 'euclidean'",
    ),
    "feature order changed": (
        edit_manifest(_set("features", "order", value=list(reversed(FEATURE_ORDER)))),
        "another audio-feature layout",
    ),
    "catalogue size changed": (
        edit_manifest(lambda m: m["catalog"].update(tracks=m["catalog"]["tracks"] + 1)),
        "catalogue size differs",
    ),
    "a file's sha256 changed": (
        edit_manifest(lambda m: m["files"]["scaler.json"].update(sha256="0" * 64)),
        "scaler.json does not match its checksum",
    ),
    "no files listed": (edit_manifest(_set("files", value={})), "lists no files"),
    "manifest not JSON": (
        lambda version: (version / MANIFEST).write_text('{"format_version": 1, "fi'),
        "manifest .* is unreadable",
    ),
    "manifest with a number of 5,000 digits": (
        lambda version: (version / MANIFEST).write_text('{"format_version": ' + "9" * 5000 + "}"),
        "manifest .* is unreadable",
    ),
    "manifest nested 100,000 deep": (
        lambda version: (version / MANIFEST).write_text("[" * 100_000 + "]" * 100_000),
        "manifest .* is unreadable",
    ),
    "catalogue bytes changed": (flip_a_byte("catalog.csv"), "catalog.csv does not match"),
    "content index truncated": (truncate("content.ann"), "content.ann has the wrong size"),
    "collaborative index truncated": (truncate("collab.ann"), "collab.ann has the wrong size"),
    "vectors missing": (lambda version: (version / "collab.npz").unlink(), "collab.npz is missing"),
    "manifest edited without resealing": (
        lambda version: (version / MANIFEST).write_text(
            (version / MANIFEST).read_text().replace('"rank_offset": 200.0', '"rank_offset": -1')
        ),
        "manifest was changed after saving",
    ),
    "fusion settings out of range": (
        edit_manifest(_set("fusion", "rank_offset", value=-1)),
        "rank offset must be",
    ),
    "temperature not a number": (
        edit_manifest(_set("collaborative", "settings", "temperature", value="x")),
        "temperature and learning rate",
    ),
    "content bandwidth zero": (
        edit_manifest(_set("content", "bandwidth", value=0)),
        "bandwidth must be",
    ),
}


@pytest.fixture
def bundle_copy(world_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(resolve_bundle(world_bundle), tmp_path / "version"))


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_or_mismatched_bundle_is_refused_with_a_clear_message(
    bundle_copy: Path, damage: str
) -> None:
    change, message = DAMAGE[damage]
    change(bundle_copy)

    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("name", ["content.ann", "collab.ann"])
@pytest.mark.parametrize("keep", [0.5, 0.999], ids=["half", "all but a byte"])
def test_a_truncated_index_is_a_bundle_error_even_unverified(
    bundle_copy: Path, name: str, keep: float
) -> None:
    path = bundle_copy / name
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])

    with pytest.raises(BundleError, match="damaged or inconsistent"):
        load_bundle(bundle_copy, verify=False)


def test_no_bundle_at_all_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="harmonya train --out"):
        load_bundle(tmp_path / "absent")
    with pytest.raises(BundleError, match="not a HarmonYa model"):
        load_bundle(tmp_path)
