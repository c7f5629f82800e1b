"""`fad demo --seeds 0,1,2`: the demo repeated over seeds, and whether the searched head wins.

Each seed runs the whole demo (search, both trainings, evaluation) into ``OUT/seed_<s>``; a seed
whose ``demo_report.json`` is already there is read back, not rerun, so a killed study goes on
where it stopped. The summary gives, per head, the mean and the spread (sample standard deviation,
min and max) of each AP over the seeds, and the paired difference FAD - FCOS seed by seed: the
seed fixes the initialisation, the data order and the search, so pairing removes what both heads
of one seed share.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fad.demo import AP_KEYS, FAD_ROW, FCOS_ROW, REPORT_JSON, run_demo
from fad.errors import FadError
from fad.runtime.atomic import atomic_write_text

log = logging.getLogger("fad")
STUDY_JSON = "seed_study.json"
STUDY_MD = "seed_study.md"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; a bad or repeated seed is a FadError naming it."""
    seeds = []
    for part in text.split(","):
        try:
            seeds.append(int(part))
        except ValueError:
            raise FadError(f"--seeds {text!r}: {part!r} is not an integer seed") from None
    if len(set(seeds)) != len(seeds):
        raise FadError(f"--seeds {text!r}: a seed is repeated")
    return seeds


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarize(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread per head and metric, and the paired FAD - FCOS differences."""
    seeds = sorted(reports)
    metrics = (*AP_KEYS, "train_seconds")
    heads = {
        row: {k: _spread([reports[s]["rows"][row][k] for s in seeds]) for k in metrics}
        for row in (FCOS_ROW, FAD_ROW)
    }
    diffs = {
        k: [reports[s]["rows"][FAD_ROW][k] - reports[s]["rows"][FCOS_ROW][k] for s in seeds]
        for k in AP_KEYS
    }
    return {
        "seeds": seeds,
        "heads": heads,
        "fad_minus_fcos": {k: {**_spread(v), "per_seed": v} for k, v in diffs.items()},
        "fad_wins_ap": sum(d > 0 for d in diffs["AP"]),
        "search_seconds": _spread([reports[s]["search_seconds"] for s in seeds]),
        "total_seconds": _spread([reports[s]["total_seconds"] for s in seeds]),
        "per_seed": {
            str(s): {row: {k: reports[s]["rows"][row][k] for k in AP_KEYS} for row in heads}
            for s in seeds
        },
        "genotypes": {str(s): reports[s]["genotypes"] for s in seeds},
        "distinct_genotypes": len({json.dumps(reports[s]["genotypes"]) for s in seeds}),
    }


def _pm(spread: dict[str, float], signed: bool = False) -> str:
    mean = f"{spread['mean']:+.3f}" if signed else f"{spread['mean']:.3f}"
    return f"{mean} ± {spread['std']:.3f}"


def render_study_markdown(summary: dict[str, Any]) -> str:
    """Mean ± std per head, the paired difference, and every seed's numbers and genotype."""
    seeds = summary["seeds"]
    n = len(seeds)
    header = "| | " + " | ".join(AP_KEYS) + " | train time |"
    lines = [
        f"# fad demo over {n} seeds ({', '.join(map(str, seeds))}): searched vs standard head",
        "",
        "Mean ± sample standard deviation over the seeds; COCO AP on shapes_val.",
        "",
        header,
        "|---|" + "---:|" * (len(AP_KEYS) + 1),
    ]
    for row, stats in summary["heads"].items():
        cells = [_pm(stats[k]) for k in AP_KEYS]
        minutes = stats["train_seconds"]
        cells.append(f"{minutes['mean'] / 60:.1f} ± {minutes['std'] / 60:.1f} min")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    diff = summary["fad_minus_fcos"]
    lines.append(
        "| FAD - FCOS, paired | " + " | ".join(_pm(diff[k], True) for k in AP_KEYS) + " | |"
    )
    search = summary["search_seconds"]
    total = summary["total_seconds"]
    lines += [
        "",
        f"The searched head has the higher AP in {summary['fad_wins_ap']} of {n} seeds "
        f"(paired AP difference from {diff['AP']['min']:+.3f} to {diff['AP']['max']:+.3f}). "
        f"Search {search['mean'] / 60:.1f} min, whole demo {total['mean'] / 60:.1f} min "
        f"(max {total['max'] / 60:.1f}) per seed; {summary['distinct_genotypes']} distinct "
        f"genotype pair(s) over {n} searches.",
        "",
        "| seed | FCOS AP | FAD AP | FAD - FCOS | FCOS AP50 | FAD AP50 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, rows in summary["per_seed"].items():
        fcos, fad = rows[FCOS_ROW], rows[FAD_ROW]
        lines.append(
            f"| {seed} | {fcos['AP']:.3f} | {fad['AP']:.3f} | {fad['AP'] - fcos['AP']:+.3f} "
            f"| {fcos['AP50']:.3f} | {fad['AP50']:.3f} |"
        )
    lines += ["", "## Searched genotypes (box, cls)", ""]
    for seed, genotypes in summary["genotypes"].items():
        lines += [f"seed {seed}:", "```", genotypes.get("box", ""), genotypes.get("cls", ""), "```"]
    return "\n".join(lines) + "\n"


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_seed_study(out_dir: str | Path, opts: Sequence[str], seeds: Sequence[int]) -> dict:
    """The demo once per seed into ``out_dir/seed_<s>`` (finished seeds reused), then the summary
    written as ``seed_study.json`` and ``seed_study.md`` and printed."""
    out = Path(out_dir)
    reports = {}
    for seed in seeds:
        seed_dir = out / f"seed_{seed}"
        report = _read_report(seed_dir / REPORT_JSON)
        if report is not None and report.get("opts") != list(opts):
            raise FadError(
                f"{seed_dir / REPORT_JSON} was made with the overrides {report.get('opts')}, "
                f"not {list(opts)}; pick another --out for this study"
            )
        if report is None:
            log.info("seed study: seed %d -> %s", seed, seed_dir)
            report = run_demo(seed_dir, opts, seed=seed)
        else:
            log.info("seed study: seed %d already done, reading %s", seed, seed_dir / REPORT_JSON)
        reports[seed] = report
    summary = summarize(reports)
    atomic_write_text(out / STUDY_JSON, json.dumps(summary, indent=1) + "\n")
    text = render_study_markdown(summary)
    atomic_write_text(out / STUDY_MD, text)
    print("\n" + text)
    return summary
