"""``harmonya evaluate``: the challenge-style comparison, or the scoring of one submission."""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from pathlib import Path

import click

from recommender import metrics
from recommender.benchmark import (
    BASELINE_GRIDS,
    Cost,
    Trained,
    artist_map,
    evaluate_methods,
    measure,
    truths,
)
from recommender.bundle import BundleError, load_bundle, save_bundle
from recommender.cli import DEFAULT_DATA, PathParam, UserError, friendly, id_dropout_value
from recommender.collab import CollabSettings
from recommender.data import DataError, data_folders, fingerprint_files, read_interactions
from recommender.features import find_feature_files, read_feature_tables
from recommender.hybrid import HybridRecommender
from recommender.playlist_io import os_reason
from recommender.report import write_report
from recommender.split import (
    SCENARIO_NAMES,
    SCENARIOS,
    ChallengeSplit,
    Scenario,
    challenge_split,
    read_truth,
    write_challenge_set,
    write_truth,
)
from recommender.train import DEFAULT_KIND, MODELS, TrainSettings, train_model
from recommender.unified import ID_DROPOUT


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.option(
    "--data",
    type=PathParam(path_type=Path, file_okay=False),
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder of MPD slices and audio-feature tables.",
)
@click.option(
    "--out",
    type=PathParam(path_type=Path, file_okay=False),
    default=Path("runs/evaluation"),
    show_default=True,
    help="Folder for the split, the submissions, report.md, results.json and the plots.",
)
@click.option(
    "--per-scenario",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Test playlists held out per scenario.",
)
@click.option(
    "--validation",
    default=50,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Validation playlists per scenario (baselines' tuning).",
)
@click.option(
    "--scenario",
    "scenario_names",
    multiple=True,
    type=click.Choice(SCENARIO_NAMES),
    help="Scenarios to hold out playlists for (repeat the option); default: all.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**31 - 1),
    help="Seed of the split and the models.",
)
@click.option(
    "--epochs",
    default=CollabSettings.epochs,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Epochs of the collaborative tower.",
)
@click.option(
    "--baseline",
    "baseline_names",
    multiple=True,
    type=click.Choice(list(BASELINE_GRIDS)),
    help="Baselines to run (repeat the option); default: all.",
)
@click.option(
    "--model",
    "model_kinds",
    multiple=True,
    type=click.Choice(list(MODELS)),
    help="HarmonYa model to train and score (repeat the option to compare both on one "
    f"split); default: {DEFAULT_KIND}.",
)
@click.option(
    "--id-dropout",
    type=click.FloatRange(0, 1, max_open=True),
    callback=lambda _ctx, _param, value: id_dropout_value(value),
    help=f"The unified model's id-dropout share (see harmonya train)  [default: {ID_DROPOUT}]",
)
@click.option("--no-baselines", is_flag=True, help="Score HarmonYa only.")
@click.option("--no-tune", is_flag=True, help="Each baseline with its first settings only.")
@click.option(
    "--cache",
    type=PathParam(path_type=Path, file_okay=False),
    help="Keep HarmonYa's model for this split here and reuse it on the next run.",
)
@click.option(
    "--score",
    "submission",
    type=PathParam(path_type=Path, dir_okay=False),
    help="Only score this submission CSV against --truth, line by line.",
)
@click.option(
    "--truth",
    type=PathParam(path_type=Path, dir_okay=False),
    help="The truth.json an earlier run wrote (with --score).",
)
@friendly
def evaluate(
    data: Path,
    out: Path,
    per_scenario: int,
    validation: int,
    scenario_names: tuple[str, ...],
    seed: int,
    epochs: int,
    model_kinds: tuple[str, ...],
    id_dropout: float | None,
    baseline_names: tuple[str, ...],
    no_baselines: bool,
    no_tune: bool,
    cache: Path | None,
    submission: Path | None,
    truth: Path | None,
) -> None:
    """Compare HarmonYa with the baselines on a RecSys Challenge 2018 style split.

    Writes OUT/challenge_set.json (what each method is given), OUT/truth.json (what it should
    find), OUT/submissions/*.csv, OUT/report.md, OUT/results.json and PNG plots. With
    --score FILE --truth OUT/truth.json, scores one submission instead.
    """
    if submission is not None or truth is not None:
        if submission is None or truth is None:
            raise click.UsageError("--score and --truth go together")
        _score_only(submission, truth)
        return
    kinds = list(dict.fromkeys(model_kinds or (DEFAULT_KIND,)))
    if id_dropout is not None and "unified" not in kinds:
        raise click.UsageError("--id-dropout applies to --model unified only")
    if not data.is_dir():
        raise UserError(f"--data must be a folder of playlist slices and feature tables: {data}")
    _prepare(out, data, cache)  # fail now, not after minutes of training
    scenarios = [s for s in SCENARIOS if not scenario_names or s.name in scenario_names]
    split, artists = _split(data, per_scenario, validation, scenarios, seed)
    models = []
    for kind in kinds:
        settings = TrainSettings(
            collab=CollabSettings(epochs=epochs, seed=seed),
            seed=seed,
            model=kind,
            id_dropout=id_dropout if kind == "unified" else None,
        )
        recommender, cost = _harmonya(data, split, settings, cache)
        label = kind if len(kinds) > 1 else ""
        described = f"{kind}, {epochs} epochs"
        if settings.id_dropout is not None:
            described += f", id dropout {settings.id_dropout:g}"
        models.append(Trained(recommender, cost, described, label))
    # Written once every model has trained, so a failed run leaves an earlier report's
    # challenge set and truth beside it. From here on the folder is this run's: an earlier
    # run's submissions and report go, so no file is ever scored against the wrong truth.
    _clear_earlier_run(out)
    write_challenge_set(out / "challenge_set.json", split.test)
    write_truth(out / "truth.json", split.test, artists)
    names = () if no_baselines else (baseline_names or tuple(BASELINE_GRIDS))
    evaluation = evaluate_methods(
        split,
        models,
        out,
        artists_of=artists,
        baseline_names=names,
        tune_baselines=not no_tune,
        progress=_say,
    )
    command = "harmonya evaluate " + shlex.join(sys.argv[2:]) if len(sys.argv) > 1 else ""
    written = write_report(evaluation, out, command)
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    _say("wrote " + ", ".join(str(p) for p in written))


def _prepare(out: Path, data: Path, cache: Path | None) -> None:
    """Check, before the split and training, that every file of the run can be written.

    ``out``, its submissions and ``cache`` must lie apart from every folder the data is read
    from (symlinks followed): a challenge set or a cached manifest there would be read as
    training playlists, and the clean-up of an earlier run would delete data files.
    """
    read_from = data_folders(data)
    written = [("--out", out), ("--out", out / "submissions")]
    if cache is not None:
        written.append(("--cache", cache))
    for option, folder in written:
        real = folder.resolve()
        if any(real.is_relative_to(f) or f.is_relative_to(real) for f in read_from):
            raise UserError(
                f"{option} {folder} overlaps the data folder {data} (symlinks followed): what "
                "is written there would be read as training data; choose a folder outside it"
            )
    paths = [out / name for name in (*RUN_FILES, *EARLIER_RUN)]
    paths += sorted((out / "submissions").glob("*.csv"))
    for path in paths:
        if path.exists() and not path.is_file():
            raise UserError(f"cannot write the report: {path} is not a file")
    _probe(out / "submissions", f"cannot write the report to {out}")
    if cache is not None:
        _probe(cache, f"cannot keep models in --cache {cache}")


def _probe(folder: Path, failure: str) -> None:
    """Create ``folder`` and check a file can be written there, or raise UserError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(f"{failure}: {os_reason(error)}") from error


RUN_FILES = ("challenge_set.json", "truth.json")
EARLIER_RUN = ("report.md", "results.json", "ndcg_per_scenario.png", "hits_by_length.png")


def _clear_earlier_run(out: Path) -> None:
    """Remove what an earlier run wrote to ``out``: its submissions, report and plots."""
    stale = [out / name for name in EARLIER_RUN if (out / name).is_file()]
    stale += sorted((out / "submissions").glob("*.csv"))
    for path in stale:
        path.unlink()
    if stale:
        _say(f"removed {len(stale)} file(s) of an earlier run in {out}")


def _split(
    data: Path, per_scenario: int, validation: int, scenarios: list[Scenario], seed: int
) -> tuple[ChallengeSplit, dict[str, str]]:
    interactions = read_interactions(data)
    try:
        split = challenge_split(
            interactions,
            per_scenario=per_scenario,
            validation_per_scenario=validation,
            scenarios=scenarios,
            seed=seed,
        )
    except ValueError as error:
        raise UserError(f"{error}; try a smaller --per-scenario or --validation") from error
    _say(
        f"split: {split.train.n_playlists:,} training playlists, {len(split.test):,} test, "
        f"{len(split.validation):,} validation"
    )
    return split, artist_map(interactions)


def _harmonya(
    data: Path, split: ChallengeSplit, settings: TrainSettings, cache: Path | None
) -> tuple[HybridRecommender, Cost]:
    """Train (or reuse from ``cache``) one HarmonYa model on the split's training part."""
    features = read_feature_tables(data)
    files = [Path(f) for f in split.train.files] + find_feature_files(data)
    # The key names everything the model depends on: settings, data, and which playlists
    # were held out (a model trained on another split's test playlists must not be reused).
    held = sorted(p.pid for p in [*split.test, *split.validation])
    digest = hashlib.sha256(f"{settings!r} {held}".encode()).hexdigest()[:8]
    fingerprint = fingerprint_files(files, root=data)[:12]
    key = f"s{settings.seed}-p{split.train.n_playlists}-{digest}-{fingerprint}"
    if cache is not None and (cache / key).exists():
        try:
            recommender, manifest = load_bundle(cache / key)
            stored = manifest.get("training", {}).get("evaluation_cost", {})
            _say(f"HarmonYa: reusing the model in {cache / key}")
            return recommender, Cost(stored.get("seconds", 0.0), stored.get("peak_mib", 0.0))
        except BundleError as error:
            _say(f"cached model unusable ({error}); training again")
    import tensorflow  # noqa: F401  (loaded before timing: its start-up is no model's cost)

    cost = Cost()
    _say(f"HarmonYa ({settings.model}): training on the training part")
    try:
        with measure(cost):
            trained = train_model(split.train, features, settings, progress=_say)
    except DataError as error:
        raise DataError(f"the {settings.model} model cannot be trained: {error}") from error
    _say(f"HarmonYa: trained in {cost.seconds:.0f} s, peak +{cost.peak_mib:.0f} MiB")
    if cache is not None:
        trained.training["evaluation_cost"] = {"seconds": cost.seconds, "peak_mib": cost.peak_mib}
        save_bundle(trained.recommender, trained.scaler, cache / key, training=trained.training)
    return trained.recommender, cost


def _score_only(submission: Path, truth: Path) -> None:
    started = time.perf_counter()
    try:
        playlists, artists = read_truth(truth)
    except DataError as error:
        raise UserError(f"cannot use the truth file: {error}") from error
    expected = truths(playlists)
    check = metrics.read_submission(submission, expected)
    for problem in check.problems:
        where = f"line {problem.line}" if problem.line else "file"
        click.echo(f"{submission.name}:{where}: {problem.message}", err=True)
    uris = {"spotify:track:" + t: a for t, a in artists.items()}
    scores = metrics.score_submission(check, expected, uris)
    mean = metrics.mean_scores(scores)
    click.echo(
        f"{len(scores)} playlists: R-precision {mean.r_precision:.4f}, NDCG {mean.ndcg:.4f}, "
        f"clicks {mean.clicks:.2f} ({len(check.problems)} problems, "
        f"{time.perf_counter() - started:.1f} s)"
    )
    if check.problems:
        sys.exit(1)
