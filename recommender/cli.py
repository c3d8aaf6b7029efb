"""The ``harmonya`` command line: train, recommend, similar and the quick-start demo."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from click.exceptions import NoArgsIsHelpError
from tqdm import tqdm

from recommender.baselines import MissingDependencyError
from recommender.bundle import (
    CURRENT,
    MANIFEST,
    BundleError,
    load_bundle,
    prepare_root,
    refuse_kind_as_folder,
    save_bundle,
)
from recommender.challenge import check_writable, read_challenge_set, write_submission
from recommender.collab import CollabSettings
from recommender.data import DataError, find_mpd_files, iter_playlists
from recommender.hybrid import HybridRecommender, RecommendationResult, UnknownTrackError
from recommender.links import LinkError, parse_track_ref, split_links, track_uri
from recommender.playlist_io import PlaylistFileError, read_playlist_file
from recommender.rerank import RerankSettings
from recommender.train import DEFAULT_KIND, MODELS, TrainSettings, train_from_directory
from recommender.unified import ID_DROPOUT

log = logging.getLogger(__name__)

# An empty variable means the default, as it does for the bot (never the current folder).
DEFAULT_MODEL: Path = Path(os.environ.get("HARMONYA_MODEL_DIR", "").strip() or "models/default")
DEFAULT_DATA: Path = Path(os.environ.get("HARMONYA_DATA_DIR", "").strip() or "../shared/data/raw")
CHALLENGE_LENGTH = 500
MPD_HELP = (
    "Get the Million Playlist Dataset from AIcrowd (the 'Spotify Million Playlist Dataset "
    "Challenge' page), unpack it, and pass its data folder: harmonya train --data PATH/data"
)
EXPECTED_ERRORS = (
    MissingDependencyError,
    BundleError,
    DataError,
    LinkError,
    PlaylistFileError,
    UnknownTrackError,
)

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A one-line error for the terminal; exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def friendly(command: F) -> F:
    """Turn expected failures into one line on stderr instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EXPECTED_ERRORS as error:
            raise UserError(str(error)) from error
        except KeyboardInterrupt:
            raise UserError("interrupted") from None

    return wrapper  # type: ignore[return-value]


class PathParam(click.Path):
    """click's Path that refuses an empty value (which would mean the current folder)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty; give a path", param, ctx)
        return super().convert(value, param, ctx)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log details (sizes, timings) to stderr.")
def cli(verbose: bool) -> None:
    """HarmonYa: playlist recommendations from co-occurrence and audio features."""
    _setup_logging(verbose)


def id_dropout_value(value: float | None) -> float | None:
    """``--id-dropout``: click's range lets NaN through; refuse it as a usage mistake."""
    if value is not None and math.isnan(value):
        raise click.BadParameter("must be a number in [0, 1), not nan")
    return value


def _load(model: Path) -> HybridRecommender:
    recommender, _ = load_bundle(model)
    return recommender


def _without_option_name(text: str) -> str:
    """``tracks:ID`` and ``track:ID``, as typed in Discord or the console, mean ``ID``."""
    for name in ("tracks:", "track:"):
        if text[: len(name)].lower() == name:
            return text[len(name) :].strip()
    return text


def _parse_track(reference: str) -> str:
    try:
        return parse_track_ref(reference)
    except LinkError as error:
        shown = reference if len(reference) <= 60 else reference[:57] + "..."
        raise UserError(f"{shown!r}: {error}") from error


def _parse_tracks(references: Sequence[str]) -> list[str]:
    """Track links, ids or URIs; also several in one argument, apart or comma-separated, as
    the console takes them."""
    pieces = (p for r in references for p in split_links(_without_option_name(r)))
    return [_parse_track(piece) for piece in pieces]


def _print_result(
    result: RecommendationResult,
    recommender: HybridRecommender,
    as_json: bool,
    *,
    reasons: bool = True,
) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    for number, item in enumerate(result.items, start=1):
        row = recommender.catalog.index_of(item.track_id)
        label = "(no title in the data)"
        if row is not None and (recommender.catalog.names[row] or recommender.catalog.artists[row]):
            label = recommender.catalog.label(row)
        reason = ", ".join(item.sources)
        if reasons and item.because and item.because != item.track_id:
            because_row = recommender.catalog.index_of(item.because)
            if because_row is not None:
                reason += f"; because you have {recommender.catalog.label(because_row)}"
        click.echo(f"{number:>3}. {label}  {item.url}  ({reason})")
    click.echo(
        f"seeds: {result.seeds}, known to the collaborative tower: {result.collab_known}, "
        f"with audio features: {result.content_known}, unknown: {len(result.unknown)}",
        err=True,
    )


@cli.command()
@click.option(
    "--data",
    "data",
    type=PathParam(path_type=Path),
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder with MPD slices (mpd.slice.*.json[.gz]) and audio-feature tables.",
)
@click.option(
    "--out",
    "out",
    type=PathParam(path_type=Path),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Bundle folder to write; an existing bundle there is replaced atomically.",
)
@click.option(
    "--epochs", type=click.IntRange(1, 100), default=CollabSettings.epochs, show_default=True
)
@click.option(
    "--dimension", type=click.IntRange(8, 512), default=CollabSettings.dimension, show_default=True
)
@click.option(
    "--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="Random seed."
)
@click.option(
    "--rerank/--no-rerank",
    default=True,
    show_default=True,
    help="Also teach the second-stage re-ranker (trains the towers twice).",
)
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(list(MODELS)),
    multiple=True,  # only to tell a repeated --model apart from one (evaluate takes several)
    help="unified: track vectors learn from co-occurrence and sound together, so tracks on no "
    "playlist can be recommended; two-tower: from co-occurrence alone."
    f"  [default: {DEFAULT_KIND}]",
)
@click.option(
    "--id-dropout",
    type=click.FloatRange(0, 1, max_open=True),
    callback=lambda _ctx, _param, value: id_dropout_value(value),
    help="unified only: share of training examples in which a track's id part is dropped, so "
    f"its sound alone must place it  [default: {ID_DROPOUT}]",
)
@friendly
def train(
    data: Path,
    out: Path,
    epochs: int,
    dimension: int,
    seed: int,
    rerank: bool,
    model_kind: tuple[str, ...],
    id_dropout: float | None,
) -> None:
    """Ingest everything under --data, train both towers (and the re-ranker), write the bundle."""
    if len(set(model_kind)) > 1:
        raise click.UsageError(
            "train builds one model: give --model once (harmonya evaluate --model two-tower "
            "--model unified compares both)"
        )
    kind = model_kind[0] if model_kind else DEFAULT_KIND
    if id_dropout is not None and kind != "unified":
        raise click.UsageError("--id-dropout applies to --model unified only")
    if not data.exists():
        raise UserError(f"no data at {data}. {MPD_HELP}")
    refuse_kind_as_folder(out)  # `--out unified` most likely meant --model unified
    prepare_root(out, keep=False)  # fail now, not after minutes of training
    started = time.perf_counter()
    settings = TrainSettings(
        collab=CollabSettings(epochs=epochs, dimension=dimension, seed=seed),
        seed=seed,
        rerank=RerankSettings(seed=seed) if rerank else None,
        model=kind,
        id_dropout=id_dropout,
    )
    trained = train_from_directory(data, settings, progress=lambda m: click.echo(m, err=True))
    version = save_bundle(trained.recommender, trained.scaler, out, training=trained.training)
    info = trained.training
    click.echo(
        f"trained on {info['playlists']:,} playlists, {info['rows']:,} rows; catalogue "
        f"{len(trained.recommender.catalog):,} tracks; final loss {info['collab_losses'][-1]:.4f}; "
        f"{time.perf_counter() - started:.0f} s. Bundle: {version}"
    )


@cli.command()
@click.argument("tracks", nargs=-1)
@click.option("--model", type=PathParam(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("-k", "--top-k", "top_k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--playlist",
    type=PathParam(path_type=Path),
    help="A playlist file: JSON list of links, one link per line, or a CSV export.",
)
@click.option(
    "--challenge",
    type=PathParam(path_type=Path),
    help="A RecSys Challenge 2018 challenge-set JSON; needs --out.",
)
@click.option(
    "--out", type=PathParam(path_type=Path), help="Submission CSV to write (--challenge)."
)
@friendly
def recommend(
    tracks: tuple[str, ...],
    model: Path,
    top_k: int,
    as_json: bool,
    playlist: Path | None,
    challenge: Path | None,
    out: Path | None,
) -> None:
    """Recommend tracks for TRACK links, a --playlist file or a --challenge set."""
    given = sum([bool(tracks), playlist is not None, challenge is not None])
    if given != 1:
        raise click.UsageError(
            "give tracks, or --playlist FILE, or --challenge FILE --out FILE.csv (one of them)"
        )
    if challenge is not None:
        if out is None:
            raise click.UsageError("--challenge needs --out FILE.csv")
        check_writable(out, not_same_as=challenge)
        _run_challenge(_load(model), challenge, out)
        return
    if out is not None:
        raise click.UsageError("--out goes with --challenge; recommendations print to the terminal")
    if playlist is not None:
        given_playlist = read_playlist_file(playlist)
        track_ids = given_playlist.track_ids
        for line, raw, reason in given_playlist.skipped:
            click.echo(f"skipped entry {line} ({raw[:60]!r}): {reason}", err=True)
    else:
        track_ids = _parse_tracks(tracks)
        if not track_ids:
            raise click.UsageError("no track was given: the argument holds no link or id")
    recommender = _load(model)
    known, unknown = recommender.catalog.indices(track_ids)
    if len(known) == 0:
        raise UserError(
            "none of these tracks is in the model's catalogue"
            if track_ids
            else "the playlist has no tracks"
        )
    if unknown:
        click.echo(f"{len(unknown)} track(s) not in the model's catalogue, left out", err=True)
    _print_result(recommender.recommend(track_ids, top_k), recommender, as_json)


def _run_challenge(recommender: HybridRecommender, challenge: Path, out: Path) -> None:
    playlists = read_challenge_set(challenge)
    rows: list[tuple[int, list[str]]] = []
    unknown = seeds = 0
    for playlist in tqdm(playlists, desc="challenge", unit="playlist", file=sys.stderr):
        seed_ids = [uri.rsplit(":", 1)[-1] for uri in playlist.seed_uris]
        result = recommender.recommend(
            seed_ids, CHALLENGE_LENGTH, explain=False, title=playlist.name
        )
        unknown += len(result.unknown)
        seeds += result.seeds
        uris = [item.uri for item in result.items]
        if len(uris) < CHALLENGE_LENGTH:
            raise UserError(
                f"the model's catalogue is too small for {CHALLENGE_LENGTH} answers "
                f"(pid {playlist.pid})"
            )
        rows.append((playlist.pid, uris))
    try:
        written = write_submission(out, rows)
    except ValueError as error:  # a malformed row: the model holds a bad track id
        raise UserError(f"submission not written: {error}") from error
    click.echo(f"wrote {written} playlists to {out}")
    click.echo(f"{unknown} of {seeds} seed tracks are unknown to both towers", err=True)


@cli.command()
@click.argument("track")
@click.option("--model", type=PathParam(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("-k", "--top-k", "top_k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly
def similar(track: str, model: Path, top_k: int, as_json: bool) -> None:
    """Tracks that sound like TRACK (audio features only)."""
    track_id = _parse_track(_without_option_name(track))
    recommender = _load(model)
    row = recommender.catalog.index_of(track_id)
    if row is None:
        raise UserError(f"{track_uri(track_id)} is not in the model's catalogue")
    if recommender.content is None or not recommender.content.knows(row):
        raise UserError(
            f"{track_uri(track_id)} has no audio features, so nothing sounds like it here"
        )
    _print_result(recommender.similar(track_id, top_k), recommender, as_json, reasons=False)


@cli.command()
@click.option("--data", type=PathParam(path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--model", type=PathParam(path_type=Path), default=DEFAULT_MODEL, show_default=True)
@click.option("-k", "--top-k", "top_k", type=click.IntRange(1, 100), default=10, show_default=True)
@friendly
def demo(data: Path, model: Path, top_k: int) -> None:
    """Train the default bundle if there is none, then recommend for a real playlist."""
    if (model / MANIFEST).exists() or (model / CURRENT).is_symlink() or (model / CURRENT).exists():
        recommender = _load(model)  # a damaged bundle is reported, never trained over
        click.echo(f"using the bundle at {model}", err=True)
    else:
        refuse_kind_as_folder(model)
        if not data.is_dir() or not find_mpd_files(data):
            raise UserError(
                f"no bundle at {model} and no playlist data at {data}. {MPD_HELP}"
            ) from None
        prepare_root(model, keep=False)  # fail now, not after minutes of training
        click.echo(
            f"no bundle at {model}: training one on {data} (about 8 minutes on 2 idle cores: "
            "the towers train twice, once to teach the re-ranker)",
            err=True,
        )
        trained = train_from_directory(
            data, TrainSettings(), progress=lambda m: click.echo(m, err=True)
        )
        version = save_bundle(trained.recommender, trained.scaler, model, training=trained.training)
        click.echo(f"saved the bundle to {version}", err=True)
        recommender = _load(model)
    playlist = _demo_playlist(data)
    if playlist is None:
        raise UserError(f"no playlist with 10 or more tracks under {data} to demonstrate with")
    name, seeds = playlist
    click.echo(f"\nPlaylist {name!r}, first {len(seeds)} tracks:")
    for track_id in seeds:
        row = recommender.catalog.index_of(track_id)
        label = recommender.catalog.label(row) if row is not None else track_uri(track_id)
        click.echo(f"   - {label}  ({track_id})")
    click.echo("\nHarmonYa recommends:")
    _print_result(recommender.recommend(seeds, top_k), recommender, as_json=False)


def _demo_playlist(data: Path) -> tuple[str, list[str]] | None:
    """The first playlist of 10+ tracks in the data, its first 10 tracks as seeds."""
    if not data.exists():
        return None
    for playlist in iter_playlists(find_mpd_files(data)):
        if len(playlist.track_ids) >= 10:
            return playlist.name, playlist.track_ids[:10]
    return None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C: no half-written file left


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: every failure is one ``error:`` line; usage errors exit 2, others 1."""
    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), _interrupt)
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="harmonya",
            standalone_mode=False,
        )
    except NoArgsIsHelpError as error:
        click.echo(error.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as error:
        path = error.ctx.command_path if error.ctx else "harmonya"
        click.echo(f"error: {error.format_message()} (see: {path} --help)", err=True)
        sys.exit(2)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing left to say
        sys.exit(0)
    except OSError as error:  # e.g. writing the answer to a full disk
        click.echo(f"error: {error.strerror or error}", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()


# Registered last: the command module reuses this one's helpers.
from recommender.cli_evaluate import evaluate  # noqa: E402

cli.add_command(evaluate)
