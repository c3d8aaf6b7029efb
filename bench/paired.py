"""Paired bootstrap between two submissions of one `harmonya evaluate` run.

    python bench/paired.py runs/evaluation/truth.json A.csv B.csv [--resamples 2000]
        [--warm-data ../shared/data/raw]

Scores both files playlist by playlist with the challenge's metrics and prints, for NDCG,
R-precision and clicks, the mean of B minus A with a 95% bootstrap interval (resampling the
playlists), so a difference can be told from the noise of an 800-playlist test set. Both files
must answer every playlist of the truth file cleanly (as `harmonya evaluate --score` checks),
so that two runs' files are never compared by accident. With ``--warm-data`` the split is
rebuilt from that data (``--split-seed``, 100 test and 50 validation playlists per scenario,
as ``harmonya evaluate`` defaults) and the lists are scored against the warm hidden tracks only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from recommender import metrics
from recommender.benchmark import only, truths, warm_tracks
from recommender.data import TRACK_URI_PREFIX, DataError, read_interactions
from recommender.playlist_io import PlaylistFileError
from recommender.split import challenge_split, read_truth

SHOWN_PROBLEMS = 5
CHUNK = 500  # resamples drawn at a time, so memory stays flat however many are asked for


class Refused(click.ClickException):
    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _checked(path: Path, given: dict[int, metrics.Truth]) -> metrics.SubmissionCheck:
    check = metrics.read_submission(path, given)
    if check.problems:
        for problem in check.problems[:SHOWN_PROBLEMS]:
            where = f"line {problem.line}" if problem.line else "file"
            click.echo(f"{path.name}:{where}: {problem.message}", err=True)
        more = len(check.problems) - SHOWN_PROBLEMS
        raise Refused(
            f"{path.name} has {len(check.problems)} problem(s)"
            + (f" ({more} not shown)" if more > 0 else "")
            + "; both files must answer every playlist of the truth file (is it from the same run?)"
        )
    return check


def _interval(difference: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, CHUNK):
        picks = rng.integers(
            0, len(difference), size=(min(CHUNK, resamples - start), len(difference))
        )
        means.append(difference[picks].mean(axis=1))
    low, high = np.percentile(np.concatenate(means), [2.5, 97.5])
    return float(low), float(high)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, help=__doc__)
@click.argument("truth", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resamples", type=click.IntRange(100, 100_000), default=2000, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option(
    "--warm-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The data the run read: score against warm hidden tracks only.",
)
@click.option("--split-seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
def main(
    truth: Path,
    a: Path,
    b: Path,
    resamples: int,
    seed: int,
    warm_data: Path | None,
    split_seed: int,
) -> None:
    try:
        playlists, artists = read_truth(truth)
        if a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b)):
            raise click.UsageError(f"{a} and {b} are the same file: give two submissions")
        expected = given = truths(playlists)
        if warm_data is not None:
            try:
                split = challenge_split(
                    read_interactions(warm_data),
                    per_scenario=100,
                    validation_per_scenario=50,
                    seed=split_seed,
                )
            except ValueError as error:
                raise Refused(f"cannot rebuild the split from {warm_data}: {error}") from error
            if [p.pid for p in split.test] != [p.pid for p in playlists]:
                raise Refused(
                    "the split rebuilt from --warm-data is not the one the truth file holds"
                )
            expected = only(given, warm_tracks(split))
            if not expected:
                raise Refused("no held-out playlist of this split hides a warm track")
        checks = [_checked(path, given) for path in (a, b)]
    except (DataError, PlaylistFileError) as error:
        raise Refused(str(error)) from error
    credit = {TRACK_URI_PREFIX + t: artist for t, artist in artists.items()}
    scored = [metrics.score_submission(check, expected, credit) for check in checks]
    kind = "warm hidden tracks, " if warm_data is not None else ""
    first_name, second_name = (a.name, b.name) if a.name != b.name else (str(a), str(b))
    click.echo(f"{second_name} minus {first_name}, {kind}{len(expected)} playlists:")
    for metric in ("ndcg", "r_precision", "clicks"):
        first, second = (np.asarray([getattr(s, metric) for s in side]) for side in scored)
        difference = second - first
        low, high = _interval(difference, resamples, seed)
        click.echo(f"  {metric}: {difference.mean():+.4f} (95% interval {low:+.4f} to {high:+.4f})")


if __name__ == "__main__":
    try:
        main(standalone_mode=False)
    except click.UsageError as error:
        click.echo(
            f"error: {error.format_message()} (see: python bench/paired.py --help)", err=True
        )
        sys.exit(2)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
