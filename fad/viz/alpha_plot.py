"""Plot how a search's alphas evolved: one panel per edge, one line per op (softmax weight).

Input is the plain-data history of ``fad.search.history.AlphaHistory.state_dict()``:
``{"towers": {role: {"op_names": [...], "edges": [...]}}, "snapshots": [{"iteration": i,
"weights": {role: [[p_op, ...] per edge]}}, ...]}``. Uses matplotlib's object API (no pyplot
global state), so it is safe in any process and needs no display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fad.search_space.ops import NONE
from fad.viz.figure_files import write_figure

PANEL_SIZE = (3.2, 2.4)  # inches per edge panel


def alpha_figure(history: dict[str, Any], role: str) -> Figure:
    """The figure of tower ``role``: a grid of edge panels, weight vs iteration per op."""
    spec = history["towers"][role]
    edges, op_names = spec["edges"], spec["op_names"]
    snapshots = [s for s in history["snapshots"] if role in s["weights"]]
    iterations = [s["iteration"] for s in snapshots]
    columns = min(len(edges), max(1, math.ceil(math.sqrt(len(edges)))))
    rows = math.ceil(len(edges) / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 1.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    colors = colormaps["tab20"].colors
    marker = "." if len(iterations) < 30 else None
    lines = []
    for e, label in enumerate(edges):
        ax = axes[e // columns][e % columns]
        for o, name in enumerate(op_names):
            values = [s["weights"][role][e][o] for s in snapshots]
            style = {"color": "black", "linestyle": "--"} if name == NONE else {}
            color = style.pop("color", colors[(2 * o) % 20 + (2 * o) // 20])
            (line,) = ax.plot(iterations, values, color=color, marker=marker, **style)
            if e == 0:
                lines.append(line)
        ax.set_title(label, fontsize=9)
        if e // columns == rows - 1 or e + columns >= len(edges):
            ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for extra in range(len(edges), rows * columns):
        axes[extra // columns][extra % columns].set_visible(False)
    figure.supylabel("softmax(alpha)", fontsize=9)
    figure.suptitle(f"{role} tower: op weights per edge", fontsize=11)
    figure.legend(lines, op_names, loc="lower center", ncol=min(4, len(op_names)), fontsize=7)
    figure.tight_layout(rect=(0, 0.12 if rows < 3 else 0.08, 1, 1))
    return figure


def plot_alpha_history(history: dict[str, Any], role: str, path_stem: str | Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` (atomically) for tower ``role``."""
    return write_figure(alpha_figure(history, role), path_stem)
