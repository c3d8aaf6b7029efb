"""The model bundle: one directory with every part of a trained recommender and a manifest.

Layout of a bundle root given to ``--out``/``--model``::

    ROOT/current -> versions/20261203T140501Z     (a symlink, swapped atomically)
    ROOT/versions/20261203T140501Z/manifest.json  (written last; lists each file's sha256)
    ROOT/versions/20261203T140501Z/{catalog.csv, popularity.npy, scaler.json,
                                     content.ann, content.npz, collab.ann, collab.npz,
                                     collab.keras}

A new version is written in a temporary directory, renamed into ``versions/`` and only then
made ``current``, so a crash while saving leaves the old bundle serving, and files a running
process has memory-mapped are never written over. Loading checks the manifest and every file's
size and checksum and refuses anything else with :class:`BundleError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from recommender.catalog import TrackCatalog
from recommender.collab import COLLAB_METRIC, CollabModel
from recommender.content import (
    CONTENT_DIM,
    CONTENT_METRIC,
    FEATURE_ORDER,
    ContentTower,
    FeatureScaler,
)
from recommender.hybrid import FusionSettings, HybridRecommender
from recommender.rerank import Reranker
from recommender.titles import TitleIndex

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: content prior; 3: sealed manifest
MANIFEST = "manifest.json"
CURRENT = "current"
VERSIONS = "versions"
KEEP_VERSIONS = 2
_LIBRARIES = ("numpy", "pandas", "annoy", "tensorflow-cpu", "keras")
_VERSION_NAME = re.compile(r"\d{8}T\d{12}Z")
SEAL = "manifest_sha256"
LOCK = "save.lock"  # held while a version is written, so saves take turns


class BundleError(Exception):
    """A bundle that is missing, damaged or from an incompatible version."""


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_bundle(
    recommender: HybridRecommender,
    scaler: FeatureScaler,
    root: Path,
    *,
    training: dict[str, Any],
) -> Path:
    """Write ``recommender`` as a new version under ``root`` and make it current.

    ``training`` goes into the manifest as is (data fingerprint, settings, metrics, sizes).
    Returns the version directory.
    """
    versions = prepare_root(root)
    with _locked(root):  # two trainings saving to one root take turns
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        staging = Path(tempfile.mkdtemp(prefix=f".{stamp}-", dir=versions))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; the bot may run as another user
            manifest = seal_manifest(_write_parts(recommender, scaler, staging, training))
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            _fsync_tree(staging)
            final = versions / stamp
            staging.rename(final)
            _point_current(root, final)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            reason = error.strerror or error
            raise BundleError(f"cannot write a model to {root}: {reason}") from error
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _prune(root, versions)
    log.info("saved bundle %s", final)
    return final


@contextlib.contextmanager
def _locked(root: Path) -> Any:
    with (root / LOCK).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def seal_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with a sha256 of its own canonical JSON, so any edit is detected."""
    body = {key: value for key, value in manifest.items() if key != SEAL}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, SEAL: hashlib.sha256(canonical.encode()).hexdigest()}


def prepare_root(root: Path, *, keep: bool = True) -> Path:
    """Create ``root/versions`` and prove it writable; returns it.

    With ``keep=False`` (a check before training) folders this call created are removed
    again, so a run that fails later leaves nothing behind.
    """
    versions = root / VERSIONS
    if root.exists() and not root.is_dir():
        raise BundleError(f"cannot write a model to {root}: it is a file, not a folder")
    if (root / MANIFEST).exists():
        raise BundleError(f"{root} is one version of a model; give the model folder above it")
    current = root / CURRENT
    if current.exists() and not current.is_symlink():
        raise BundleError(
            f"{current} is a folder, not a link (a copy that followed links?); move it away "
            "or train into another folder"
        )
    created = [p for p in (versions, *versions.parents) if not p.exists()]
    try:
        versions.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=".probe-", dir=versions)).rmdir()
    except OSError as error:
        reason = error.strerror or str(error)
        raise BundleError(f"cannot write a model to {root}: {reason}") from error
    finally:
        if not keep:
            for folder in created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return versions


def _write_parts(
    recommender: HybridRecommender, scaler: FeatureScaler, directory: Path, training: dict[str, Any]
) -> dict[str, Any]:
    recommender.catalog.save(directory / "catalog.csv")
    np.save(directory / "popularity.npy", recommender.popular_rows)
    (directory / "scaler.json").write_text(json.dumps(scaler.to_dict(), indent=2) + "\n")
    content = recommender.content.save(directory) if recommender.content else None
    collab = recommender.collab.save(directory) if recommender.collab else None
    titles = recommender.titles.save(directory) if recommender.titles else None
    rerank = recommender.reranker.save(directory) if recommender.reranker else None
    files = {
        path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(directory.iterdir())
        if path.is_file()
    }
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "libraries": _library_versions(),
        "catalog": {"file": "catalog.csv", "tracks": len(recommender.catalog)},
        "popularity": {"file": "popularity.npy", "tracks": len(recommender.popular_rows)},
        "features": {
            "order": list(FEATURE_ORDER),
            "scaler": "scaler.json",
            "dimension": CONTENT_DIM,
        },
        "content": content,
        "collaborative": collab,
        "titles": titles,
        "rerank": rerank,
        "fusion": asdict(recommender.fusion),
        "training": training,
        "files": files,
    }


def _point_current(root: Path, version: Path) -> None:
    link = root / CURRENT
    temporary = root / f".{CURRENT}.{os.getpid()}.{time.monotonic_ns()}"
    temporary.symlink_to(Path(VERSIONS) / version.name)
    try:
        temporary.replace(link)  # rename(2) over the old link: atomic
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _prune(root: Path, versions: Path) -> None:
    """Delete all but the newest KEEP_VERSIONS versions, and staging left by a crash.

    Only folders this code names (timestamps holding a manifest) are touched, never the one
    ``current`` points to; anything else in ``versions/`` is the owner's business.
    """
    current = (root / CURRENT).resolve()
    done = sorted(
        (
            p
            for p in versions.iterdir()
            if _VERSION_NAME.fullmatch(p.name) and (p / MANIFEST).exists()
        ),
        reverse=True,
    )
    for old in done[KEEP_VERSIONS:]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in versions.glob(".*"):
        with contextlib.suppress(FileNotFoundError):  # another process's staging, just renamed
            if time.time() - stale.lstat().st_mtime > 24 * 3600 and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


def resolve_bundle(path: Path) -> Path:
    """The version directory that ``path`` names: a version itself or a root with ``current``."""
    if (path / MANIFEST).is_file():
        return path
    current = path / CURRENT
    if current.exists() and (current / MANIFEST).is_file():
        return current.resolve()
    if current.is_symlink():
        raise BundleError(
            f"{current} points to {current.readlink()}, which holds no model; "
            f"retrain with harmonya train --out {path}"
        )
    if not path.exists():
        refuse_kind_as_folder(path)
        raise BundleError(f"no model at {path}; train one with: harmonya train --out {path}")
    raise BundleError(f"{path} is not a HarmonYa model (no {MANIFEST}, no '{CURRENT}' link)")


def refuse_kind_as_folder(path: Path) -> None:
    """A model kind given where a bundle folder goes (``--model unified``) is explained."""
    if not path.exists() and str(path) in ("unified", "two-tower"):
        raise BundleError(
            f"'{path}' is a model kind, but a bundle folder is wanted here and there is no "
            f"folder of that name; to build the {path} model: harmonya train --model {path} "
            f"--out models/{path}, then give models/{path} as the model folder"
        )


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad JSON or UTF-8
        raise BundleError(f"the manifest of {directory} is unreadable: {error}") from error
    if not isinstance(manifest, dict):
        raise BundleError(f"the manifest of {directory} is not a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{directory} has bundle format {version!r}; this HarmonYa reads format "
            f"{FORMAT_VERSION}: retrain with harmonya train"
        )
    if seal_manifest(manifest).get(SEAL) != manifest.get(SEAL):
        raise BundleError(f"{directory} is damaged: its manifest was changed after saving")
    for section in ("catalog", "popularity", "features", "files", "training"):
        if not isinstance(manifest.get(section), dict):
            raise BundleError(f"the manifest of {directory} has no valid '{section}' section")
    for section in ("content", "collaborative", "fusion"):
        if manifest.get(section) is not None and not isinstance(manifest[section], dict):
            raise BundleError(f"the manifest of {directory} has an invalid '{section}' section")
    return manifest


def _referenced_files(manifest: dict[str, Any]) -> set[str]:
    names = {manifest["catalog"].get("file"), manifest["popularity"].get("file")}
    names.add(manifest["features"].get("scaler"))
    for section in ("content", "collaborative", "titles", "rerank"):
        entry = manifest.get(section)
        if entry:
            names.update((entry.get("index"), entry.get("arrays")))
    return {str(name) for name in names if name}


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Refuse a bundle whose files are missing, truncated or altered, or whose manifest does
    not list (with size and checksum) every file it refers to. Files it does not refer to,
    such as the Keras model kept for inspection, are checked when listed."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"the manifest of {directory} lists no files")
    unlisted = _referenced_files(manifest) - set(files)
    if unlisted:
        raise BundleError(
            f"{directory} is damaged: the manifest has no checksum for {sorted(unlisted)}"
        )
    listed_towers = {"content.npz": "content", "collab.npz": "collaborative"}
    for name, section in listed_towers.items():
        if name in files and not manifest.get(section):
            raise BundleError(f"{directory} is damaged: {name} is listed but '{section}' is empty")
    for name, expected in files.items():
        if not isinstance(expected, dict):
            raise BundleError(f"{directory} is damaged: the manifest entry of {name} is invalid")
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{directory} is damaged: {name} is missing")
        if path.stat().st_size != expected.get("bytes"):
            raise BundleError(f"{directory} is damaged: {name} has the wrong size (truncated?)")
        if _sha256(path) != expected.get("sha256"):
            raise BundleError(f"{directory} is damaged: {name} does not match its checksum")


def _check_shape(manifest: dict[str, Any]) -> None:
    features = manifest.get("features", {})
    if features.get("order") != list(FEATURE_ORDER) or features.get("dimension") != CONTENT_DIM:
        raise BundleError("the bundle was built for another audio-feature layout; retrain it")
    content, collab = manifest.get("content"), manifest.get("collaborative")
    if content and content.get("metric") != CONTENT_METRIC:
        raise BundleError(
            f"the content index metric {content.get('metric')!r} is not {CONTENT_METRIC!r}"
        )
    if content and content.get("dimension") != CONTENT_DIM:
        raise BundleError("the content index dimension does not match the feature layout")
    if collab and collab.get("metric") != COLLAB_METRIC:
        raise BundleError(
            f"the collaborative metric {collab.get('metric')!r} is not {COLLAB_METRIC!r}"
        )


def load_bundle(path: Path, *, verify: bool = True) -> tuple[HybridRecommender, dict[str, Any]]:
    """Load a bundle for serving (numpy and Annoy only; TensorFlow is not imported).

    >>> recommender, manifest = load_bundle(Path("models/default"))
    >>> recommender.recommend(track_ids, top_k=10)
    """
    started = time.perf_counter()
    directory = resolve_bundle(Path(path))
    manifest = read_manifest(directory)
    try:
        if verify:
            verify_files(directory, manifest)
        _check_shape(manifest)
        catalog = TrackCatalog.load(directory / manifest["catalog"]["file"])
        if len(catalog) != manifest["catalog"]["tracks"]:
            raise BundleError("the catalogue size differs from the manifest")
        popular = np.load(directory / manifest["popularity"]["file"]).astype(np.int64)
        if len(popular) and (popular.min() < 0 or popular.max() >= len(catalog)):
            raise BundleError("popularity rows fall outside the catalogue")
        entry = manifest.get("content")
        content = ContentTower.load(directory, entry, len(catalog)) if entry else None
        entry = manifest.get("collaborative")
        collab = CollabModel.load(directory, entry, len(catalog)) if entry else None
        entry = manifest.get("titles")  # absent from bundles made before titles were used
        titles = TitleIndex.load(directory, entry, len(catalog)) if entry else None
        entry = manifest.get("rerank")
        reranker = Reranker.load(directory, entry, len(catalog)) if entry else None
        fusion = FusionSettings(**manifest.get("fusion", {}))
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OSError, zipfile.BadZipFile) as error:
        raise BundleError(f"{directory} is damaged or inconsistent: {error}") from error
    log.info(
        "loaded bundle %s: %d tracks in %.2f s",
        directory.name,
        len(catalog),
        time.perf_counter() - started,
    )
    recommender = HybridRecommender(catalog, collab, content, popular, fusion, titles, reranker)
    return recommender, manifest


def load_scaler(path: Path) -> FeatureScaler:
    directory = resolve_bundle(path)
    manifest = read_manifest(directory)
    return FeatureScaler.from_dict(
        json.loads((directory / manifest["features"]["scaler"]).read_text())
    )
