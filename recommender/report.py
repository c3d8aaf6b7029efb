"""The evaluation report: a Markdown table per scenario and overall, JSON, and PNG plots.

Plots need matplotlib (an evaluation dependency); without it the report says so and the
tables are still written.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.benchmark import Evaluation, MethodResult
from recommender.metrics import PlaylistScore
from recommender.split import SCENARIO_NAMES
from recommender.text import write_text_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    r_precision: float
    ndcg: float
    clicks: float
    playlists: int


def summarise(result: MethodResult, pids: set[int] | None = None) -> Summary:
    return mean_of([s for s in result.scores if pids is None or s.pid in pids])


def mean_of(scores: Sequence[PlaylistScore]) -> Summary:
    if not scores:
        return Summary(0.0, 0.0, 51.0, 0)
    return Summary(
        float(np.mean([s.r_precision for s in scores])),
        float(np.mean([s.ndcg for s in scores])),
        float(np.mean([s.clicks for s in scores])),
        len(scores),
    )


def by_scenario(evaluation: Evaluation) -> dict[str, set[int]]:
    groups: dict[str, set[int]] = defaultdict(set)
    for playlist in evaluation.split.test:
        groups[playlist.scenario].add(playlist.pid)
    return {name: groups[name] for name in SCENARIO_NAMES if name in groups}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown(evaluation: Evaluation, command: str = "") -> str:
    split = evaluation.split
    results = evaluation.results
    scenarios = by_scenario(evaluation)
    lines = [
        "# HarmonYa evaluation",
        "",
        f"Machine: {machine()}." + (f" Command: `{command}`." if command else ""),
        f"Split seed {split.seed}: {split.train.n_playlists:,} training playlists, "
        f"{len(split.test):,} test and {len(split.validation):,} validation playlists held out "
        f"({split.dropped_copies} exact copies of held-out playlists also kept out of training).",
        f"Hidden test tracks: {evaluation.hidden:,}; of them {evaluation.warm:,} are warm (on a "
        f"training playlist) and {evaluation.cold:,} cold (on none, with audio features); "
        "the rest are on no training playlist and have no audio features, so no method can "
        "find them.",
        "",
        "## Overall (mean over test playlists)",
        "",
        "| method | R-precision | NDCG | clicks | cold hits | hits@500 | settings |",
        "|---|---|---|---|---|---|---|",
    ]
    seeded_pids = {p.pid for p in split.test if p.seeds}
    for result in results:
        s = summarise(result)
        lines.append(
            f"| {result.name} | {s.r_precision:.4f} | {s.ndcg:.4f} | {s.clicks:.2f} | "
            f"{result.cold_hits} | {result.hits_at.get(500, 0)} | {result.settings} |"
        )
    lines += [
        "",
        "Without the title-only scenario (every method there gets the same popular tracks "
        "unless it reads titles):",
        "",
        "| method | R-precision | NDCG | clicks |",
        "|---|---|---|---|",
    ]
    for result in results:
        s = summarise(result, seeded_pids)
        lines.append(f"| {result.name} | {s.r_precision:.4f} | {s.ndcg:.4f} | {s.clicks:.2f} |")
    lines += warm_and_cold(evaluation)
    for metric in ("ndcg", "r_precision", "clicks"):
        label = {"ndcg": "NDCG", "r_precision": "R-precision", "clicks": "clicks"}[metric]
        lines += ["", f"## {label} per scenario", ""]
        lines.append("| method | " + " | ".join(scenarios) + " |")
        lines.append("|---|" + "---|" * len(scenarios))
        for result in results:
            cells = [getattr(summarise(result, pids), metric) for pids in scenarios.values()]
            digits = 2 if metric == "clicks" else 4
            lines.append(
                f"| {result.name} | " + " | ".join(f"{c:.{digits}f}" for c in cells) + " |"
            )
    lines += [
        "",
        "## Cost",
        "",
        "| method | training s | training peak MiB | latency median ms | latency p99 ms |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        latency = np.asarray(result.latencies_ms)
        note = f" ({result.cost.note})" if result.cost.note else ""
        lines.append(
            f"| {result.name} | {result.cost.seconds:.1f}{note} | {result.cost.peak_mib:.0f} | "
            f"{np.median(latency):.2f} | {np.percentile(latency, 99):.2f} |"
        )
    problems = sum(len(r.problems) for r in results)
    lines += ["", f"Submission problems found while scoring: {problems}.", ""]
    return "\n".join(lines)


def warm_and_cold(evaluation: Evaluation) -> list[str]:
    """The same lists scored against only the warm, then only the cold hidden tracks."""
    results = evaluation.results
    warm_lists = max((len(r.warm) for r in results), default=0)
    cold_lists = max((len(r.cold) for r in results), default=0)
    lines = [
        "",
        "## Warm and cold hidden tracks",
        "",
        f"Each method's same 500-track lists, scored against only the warm hidden tracks "
        f"({evaluation.warm:,}, in {warm_lists} playlists) and against only the cold ones "
        f"({evaluation.cold:,}, in {cold_lists} playlists); a playlist that hides none of a "
        "kind is left out of that kind's means. Cold recall is the share of the cold hidden "
        "tracks found in the 500.",
        "",
        "| method | warm R-precision | warm NDCG | warm clicks | cold R-precision | cold NDCG "
        "| cold clicks | cold recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        w, c = mean_of(result.warm), mean_of(result.cold)
        recall = f"{result.cold_hits / evaluation.cold:.4f}" if evaluation.cold else "n/a"
        lines.append(f"| {result.name} | {_cells(w)} | {_cells(c)} | {recall} |")
    return lines


def _cells(summary: Summary) -> str:
    """R-precision, NDCG and clicks, or n/a when no playlist hides a track of that kind."""
    if not summary.playlists:
        return "n/a | n/a | n/a"
    return f"{summary.r_precision:.4f} | {summary.ndcg:.4f} | {summary.clicks:.2f}"


def results_json(evaluation: Evaluation) -> dict[str, Any]:
    scenarios = by_scenario(evaluation)
    data: dict[str, Any] = {
        "machine": machine(),
        "hidden": evaluation.hidden,
        "warm": evaluation.warm,
        "cold": evaluation.cold,
        "methods": {},
    }
    for result in evaluation.results:
        latency = np.asarray(result.latencies_ms)
        data["methods"][result.name] = {
            "overall": summarise(result).__dict__,
            "scenarios": {
                name: summarise(result, pids).__dict__ for name, pids in scenarios.items()
            },
            "warm": mean_of(result.warm).__dict__ if result.warm else None,
            "cold": mean_of(result.cold).__dict__ if result.cold else None,
            "cold_hits": result.cold_hits,
            "hits_at": result.hits_at,
            "training_seconds": round(result.cost.seconds, 2),
            "training_peak_mib": round(result.cost.peak_mib, 1),
            "latency_median_ms": float(np.median(latency)),
            "latency_p99_ms": float(np.percentile(latency, 99)),
            "settings": result.settings,
        }
    return data


def plots(evaluation: Evaluation, folder: Path) -> list[Path]:
    """NDCG per scenario for each method, and hidden tracks found against list length."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning('no plots: matplotlib is not installed (pip install -e ".[eval]")')
        return []
    scenarios = by_scenario(evaluation)
    results = evaluation.results
    written: list[Path] = []

    figure, axes = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(results)
    positions = np.arange(len(scenarios))
    for number, result in enumerate(results):
        values = [summarise(result, pids).ndcg for pids in scenarios.values()]
        axes.bar(positions + number * width, values, width, label=result.name)
    axes.set_xticks(positions + width * (len(results) - 1) / 2, list(scenarios), rotation=20)
    axes.set_ylabel("NDCG (500 recommendations)")
    axes.set_title("NDCG per scenario")
    axes.legend(fontsize="small", ncols=2)
    figure.tight_layout()
    written.append(_save(figure, folder / "ndcg_per_scenario.png"))
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 5))
    for result in results:
        lengths = sorted(result.hits_at)
        axes.plot(lengths, [result.hits_at[n] for n in lengths], marker="o", label=result.name)
    axes.set_xlabel("list length")
    axes.set_ylabel("hidden tracks found")
    axes.set_title("Hits against list length")
    axes.legend(fontsize="small")
    figure.tight_layout()
    written.append(_save(figure, folder / "hits_by_length.png"))
    plt.close(figure)
    return written


def _save(figure: Any, path: Path) -> Path:
    temp = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temp, dpi=110)
    temp.replace(path)
    return path


def write_report(evaluation: Evaluation, folder: Path, command: str = "") -> Sequence[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "report.md", folder / "results.json"]
    text = markdown(evaluation, command)
    for path, content in (
        (written[0], text),
        (written[1], json.dumps(results_json(evaluation), indent=2)),
    ):
        write_text_atomically(path, content + "\n")
    return written + plots(evaluation, folder)
