"""The random control as a picture: the AP of every head trained, the searched ones marked, the
random genotypes' mean and ± one standard deviation drawn in as the reference; with several
training seeds per genotype, each random genotype's seeds as small rings joined to its mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fad.viz.figure_files import write_figure


def study_figure(comparison: dict[str, Any], title: str) -> Figure:
    """Columns: random genotypes, searched heads, standard head, the paper's genotype."""
    figure = Figure(figsize=(7.6, 4.0))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    mean, std = comparison["random_mean"], comparison["random_std"]
    ax.axhspan(mean - std, mean + std, color="0.85", label="random: mean ± 1 std")
    ax.axhline(mean, color="0.4", linestyle="--", linewidth=1)
    columns = [
        ("random genotypes", comparison["random_ap"], "o", "0.3"),
        ("searched (per seed)", comparison["searched_ap"], "*", "tab:red"),
        ("standard head", comparison["standard_ap"], "s", "tab:blue"),
    ]
    if comparison.get("paper_ap") is not None:
        columns.append(("paper genotype", [comparison["paper_ap"]], "D", "tab:green"))
    for x, (_, values, marker, color) in enumerate(columns):
        offsets = [x + 0.08 * (i - (len(values) - 1) / 2) for i in range(len(values))]
        ax.scatter(offsets, values, marker=marker, color=color, s=90 if marker == "*" else 40)
        if x == 0 and comparison.get("random_ap_per_seed"):
            per_seed = comparison["random_ap_per_seed"]
            for i, (offset, seeds) in enumerate(zip(offsets, per_seed, strict=True)):
                ax.vlines(offset, min(seeds), max(seeds), color="0.6", linewidth=1)
                label = "a random genotype's training seeds" if i == 0 else None
                ax.scatter(
                    [offset] * len(seeds), seeds, s=14, facecolors="none", edgecolors="0.5",
                    label=label,
                )  # fmt: skip
    ax.set_xticks(range(len(columns)), [c[0] for c in columns], fontsize=8)
    ax.set_ylabel("COCO AP")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # off the points
    ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def plot_study(comparison: dict[str, Any], path_stem: str | Path, title: str) -> list[Path]:
    """Write the picture as ``<stem>.png`` and ``<stem>.svg``."""
    return write_figure(study_figure(comparison, title), path_stem)
