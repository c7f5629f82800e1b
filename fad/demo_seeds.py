"""`fad demo --seeds 0,1,2`: the demo repeated over seeds, and whether the searched head wins.

Each seed runs the demo (search, both trainings, evaluation) into ``OUT/seed_<s>`` on one
pretrained backbone (``OUT/backbone``, trained once); a seed whose ``demo_report.json`` is already
there is read back, not rerun, so a killed study goes on where it stopped. So is the seed of a
plain ``fad demo`` run into ``OUT`` with the same overrides: ``fad demo`` then
``fad demo --seeds 0,1,2`` runs seeds 1 and 2 only. The summary gives, per
head, the mean and the spread (sample standard deviation, min and max) of each AP over the seeds,
the paired difference FAD - FCOS seed by seed with its 95 % t interval and the verdict that
follows from it (the seed fixes the initialisation, the data order and the search, so pairing
removes what both heads of one seed share), the heads' parameters, FLOPs and latency, and how
much the seeds' genotypes agree.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fad.demo import (
    AP_KEYS,
    COST_KEYS,
    FAD_ROW,
    FCOS_ROW,
    REPORT_JSON,
    read_json,
    run_demo,
    stage_config,
)
from fad.errors import FadError
from fad.evaluation.genotype_effect import effect_sentence
from fad.evaluation.stats import paired_interval
from fad.runtime.atomic import atomic_write_text
from fad.search.history import genotype_edges
from fad.study_random import compare, run_random_control
from fad.viz.study_plot import plot_study

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


def genotype_agreement(genotypes: Sequence[dict[str, str]]) -> dict[str, float | None]:
    """How much the seeds' genotypes agree, edge by edge (tower, node, op, input): the mean over
    pairs of seeds of the share of edges they share, and the share every seed has."""
    edges = [genotype_edges(g) for g in genotypes]
    if len(edges) < 2:
        return {"pairwise": None, "all_seeds": None}
    pairs = [(a, b) for i, a in enumerate(edges) for b in edges[i + 1 :]]
    return {
        "pairwise": statistics.fmean(len(a & b) / max(len(a), 1) for a, b in pairs),
        "all_seeds": len(set.intersection(*edges)) / max(len(edges[0]), 1),
    }


def summarize(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread per head and metric, the paired FAD - FCOS differences with their 95 %
    interval and verdict, and the genotypes' agreement."""
    seeds = sorted(reports)
    metrics = (*AP_KEYS, "train_seconds", *COST_KEYS)
    heads = {
        row: {
            k: _spread([reports[s]["rows"][row][k] for s in seeds])
            for k in metrics
            if all(k in reports[s]["rows"][row] for s in seeds)
        }
        for row in (FCOS_ROW, FAD_ROW)
    }
    diffs = {
        k: [reports[s]["rows"][FAD_ROW][k] - reports[s]["rows"][FCOS_ROW][k] for s in seeds]
        for k in AP_KEYS
    }
    interval = paired_interval(
        [reports[s]["rows"][FAD_ROW]["AP"] for s in seeds],
        [reports[s]["rows"][FCOS_ROW]["AP"] for s in seeds],
    )
    return {
        "seeds": seeds,
        "heads": heads,
        "fad_minus_fcos": {k: {**_spread(v), "per_seed": v} for k, v in diffs.items()},
        "ap_interval": {
            "mean": interval.mean,
            "low": interval.low,
            "high": interval.high,
            "confidence": interval.confidence,
        },
        "verdict": interval.verdict("FAD", "FCOS"),
        "genotype_agreement": genotype_agreement([reports[s]["genotypes"] for s in seeds]),
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
    agreement = summary.get("genotype_agreement") or {}
    agree = (
        f" The seeds' genotypes share {agreement['pairwise']:.0%} of their edges pairwise "
        f"({agreement['all_seeds']:.0%} common to all seeds)."
        if agreement.get("pairwise") is not None
        else ""
    )
    lines += ["", f"**{summary['verdict']}**" if "verdict" in summary else ""]
    lines += [
        "",
        f"The searched head has the higher AP in {summary['fad_wins_ap']} of {n} seeds "
        f"(paired AP difference from {diff['AP']['min']:+.3f} to {diff['AP']['max']:+.3f}). "
        f"Search {search['mean'] / 60:.1f} min, whole demo {total['mean'] / 60:.1f} min "
        f"(max {total['max'] / 60:.1f}) per seed; {summary['distinct_genotypes']} distinct "
        f"genotype pair(s) over {n} searches.{agree}",
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
    costs = [k for k in COST_KEYS if all(k in stats for stats in summary["heads"].values())]
    if costs:
        lines += ["", "| head | head params | head GFLOPs | head latency |", "|---|---:|---:|---:|"]
        for row, stats in summary["heads"].items():
            lines.append(
                f"| {row} | {stats['head_params']['mean'] / 1e6:.3f} M "
                f"| {stats['head_gflops']['mean']:.3f} | {stats['head_latency_ms']['mean']:.1f} ms |"
            )
    if "random_control" in summary:
        lines += random_control_lines(summary["random_control"])
    lines += ["", "## Searched genotypes (box, cls)", ""]
    for seed, genotypes in summary["genotypes"].items():
        lines += [f"seed {seed}:", "```", genotypes.get("box", ""), genotypes.get("cls", ""), "```"]
    return "\n".join(lines) + "\n"


def add_random_control(
    out: Path,
    opts: Sequence[str],
    reports: dict[int, dict[str, Any]],
    num: int,
    every_seed: bool = False,
) -> dict[str, Any]:
    """`num` random genotypes (and the paper's) trained as the seeds' FAD heads, with the first
    seed (`every_seed`: with each seed, into ``<genotype>/seed_<s>``, counted by their mean AP,
    with the genotype-vs-seed analysis) into ``out/random``; the comparison with the searched and
    standard heads, and its picture ``random_control.png``."""
    seeds = sorted(reports)
    backbone = str(out / "backbone" / "model_final.pth")

    def config(folder: Path, seed: int | None = None):
        return stage_config("fad", opts, backbone, seeds[0] if seed is None else seed, folder)

    cfg = config(out / "random")
    size = (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    budget = stage_config("search", opts, backbone, seeds[0], out).SOLVER.SEARCH.COST_BUDGET
    records = run_random_control(
        out / "random",
        config,
        num=num,
        size=size,
        max_gflops=budget,
        seeds=seeds if every_seed else None,
    )
    comparison = compare(
        records,
        [reports[s]["rows"][FAD_ROW]["AP"] for s in seeds],
        [reports[s]["rows"][FCOS_ROW]["AP"] for s in seeds],
    )
    title = f"AP of {num} random genotypes vs the searched heads ({len(seeds)} seeds)"
    plot_study(comparison, out / "random_control", title)
    return {
        "comparison": comparison,
        "records": records,
        "training_seed": seeds[0],
        "training_seeds": seeds if every_seed else [seeds[0]],
        "max_gflops": budget or None,
    }


def random_control_lines(control: dict[str, Any]) -> list[str]:
    """The random control's section of a study's markdown."""
    c = control["comparison"]
    seeds = control.get("training_seeds") or [control["training_seed"]]
    lines = [
        "",
        f"## Random control: {len(c['random_ap'])} genotypes drawn uniformly from the space"
        + (
            f" within the search's budget ({control['max_gflops']:.3f} head GFLOPs)"
            if control.get("max_gflops")
            else ""
        ),
        "",
        "Trained exactly as the searched heads (same config, budget, backbone), with seed"
        + (f" {seeds[0]}" if len(seeds) == 1 else "s " + ", ".join(map(str, seeds)) + " (mean)")
        + f". Random genotypes: AP {c['random_mean']:.3f} ± {c['random_std']:.3f}."
        + (f" The paper's genotype: {c['paper_ap']:.3f}." if c["paper_ap"] is not None else "")
        + (
            " Standard head: " + ", ".join(f"{ap:.3f}" for ap in c["standard_ap"]) + "."
            if c["standard_ap"]
            else ""
        ),
    ]
    if c.get("genotype_effect"):
        lines += ["", effect_sentence(c["genotype_effect"])]
    if c["searched_ap"]:
        verdict = "beats" if c["beats_random_by_one_std"] else "does not beat"
        in_std = c["improvement_in_std"]
        lines += [
            "",
            f"**The searched head ({c['searched_mean']:.3f}; "
            + ", ".join(f"{ap:.3f}" for ap in c["searched_ap"])
            + f"; ranks among the random ones: {c['ranks']}) {verdict} the random mean by more "
            f"than one standard deviation: {c['improvement']:+.3f} AP"
            + (f" ({in_std:+.1f} std)." if in_std is not None else ".")
            + "**",
        ]
    lines += [
        "",
        "![random control](random_control.png)",
        "",
        "| genotype | AP | AP50 | head GFLOPs |",
        "|---|---:|---:|---:|",
    ]
    for name, record in control["records"].items():
        ap = f"{record['AP']:.3f}"
        if "AP_per_seed" in record:
            ap += (
                f" ± {record['AP_std']:.3f} ("
                + ", ".join(f"{v:.3f}" for v in record["AP_per_seed"])
                + ")"
            )
        lines.append(f"| {name} | {ap} | {record['AP50']:.3f} | {record['head_gflops']:.3f} |")
    return lines


def run_seed_study(
    out_dir: str | Path,
    opts: Sequence[str],
    seeds: Sequence[int],
    random: int = 0,
    random_every_seed: bool = False,
    stage0_opts: Sequence[str] = (),
) -> dict:
    """The demo once per seed into ``out_dir/seed_<s>`` (finished seeds reused), with `random`
    random genotypes as the control (`add_random_control`), then the summary written as
    ``seed_study.json`` and ``seed_study.md`` and printed. `stage0_opts`: the backbone's own
    overrides (`fad.demo.pretrain_backbone`)."""
    out = Path(out_dir)
    reports = {}
    single = read_json(out / REPORT_JSON)  # a plain `fad demo` run into the same folder
    for seed in seeds:
        seed_dir = out / f"seed_{seed}"
        source = seed_dir / REPORT_JSON
        report = read_json(source)
        if report is None and single is not None and single.get("seed") == seed:
            if single.get("opts") == list(opts):
                source, report = out / REPORT_JSON, single
        if report is not None and report.get("opts") != list(opts):
            raise FadError(
                f"{source} was made with the overrides {report.get('opts')}, "
                f"not {list(opts)}; pick another --out for this study"
            )
        if report is None:
            log.info("seed study: seed %d -> %s", seed, seed_dir)
            report = run_demo(seed_dir, opts, seed=seed, backbone_root=out, stage0_opts=stage0_opts)
        else:
            log.info("seed study: seed %d already done, reading %s", seed, source)
        reports[seed] = report
    summary = summarize(reports)
    if random > 0:
        summary["random_control"] = add_random_control(
            out, opts, reports, random, every_seed=random_every_seed
        )
    atomic_write_text(out / STUDY_JSON, json.dumps(summary, indent=1) + "\n")
    text = render_study_markdown(summary)
    atomic_write_text(out / STUDY_MD, text)
    print("\n" + text)
    return summary
