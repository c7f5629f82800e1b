"""Draw a genotype's cell as a DARTS-style graph.

Inputs c_{k-2}, c_{k-1}, intermediate nodes 0..n-1, output c_{k}; each edge is labelled with its op.
The graphviz ``.gv`` source is always written. ``.png`` and ``.svg`` come from graphviz's ``dot``
program where it is installed, else from matplotlib (a layered drawing of the same graph), so a
picture exists on any machine.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import BinaryIO

import graphviz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fad.runtime.atomic import atomic_write
from fad.search_space.genotype import INPUT_NODES, Genotype

INSTALL_HINT = (
    "graphviz's `dot` program is missing: the cell pictures were drawn with matplotlib "
    "(install graphviz, e.g. `apt-get install graphviz`, for graphviz's layout)"
)
COLOURS = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}
LABEL_BOX = {"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9}
INPUT_NAMES = ("c_{k-2}", "c_{k-1}")
OUTPUT_NAME = "c_{k}"
PICTURE_FORMATS = ("png", "svg")


def dot_available() -> bool:
    """Whether graphviz's ``dot`` program is on PATH (needed for PNG and SVG)."""
    return shutil.which("dot") is not None


def cell_graph(genotype: Genotype, caption: str) -> graphviz.Digraph:
    """The graph of one cell of ``genotype``."""
    graph = graphviz.Digraph(
        graph_attr={"rankdir": "LR", "label": caption, "fontsize": "20", "fontname": "times"},
        node_attr={
            "style": "filled",
            "shape": "rect",
            "align": "center",
            "fontsize": "20",
            "height": "0.5",
            "width": "0.5",
            "penwidth": "2",
            "fontname": "times",
        },
        edge_attr={"fontsize": "20", "fontname": "times"},
    )
    for name in INPUT_NAMES:
        graph.node(name, fillcolor="darkseagreen2")
    for k in range(genotype.num_nodes):
        graph.node(str(k), fillcolor="lightblue")
    for k, node in enumerate(genotype.normal):
        for op, index in node:
            source = INPUT_NAMES[index] if index < INPUT_NODES else str(index - INPUT_NODES)
            graph.edge(source, str(k), label=op, fillcolor="gray")
    graph.node(OUTPUT_NAME, fillcolor="palegoldenrod")
    for state in genotype.normal_concat:
        graph.edge(str(state - INPUT_NODES), OUTPUT_NAME, fillcolor="gray")
    return graph


def _state_name(index: int) -> str:
    return INPUT_NAMES[index] if index < INPUT_NODES else str(index - INPUT_NODES)


def cell_figure(genotype: Genotype, caption: str) -> Figure:
    """The cell drawn with matplotlib: inputs left, nodes in order, the output right."""
    n = genotype.num_nodes
    position = {INPUT_NAMES[0]: (0.0, 1.0), INPUT_NAMES[1]: (0.0, -1.0), OUTPUT_NAME: (n + 1.0, 0)}
    for k in range(n):
        position[str(k)] = (k + 1.0, 0.6 if k % 2 == 0 else -0.6)
    figure = Figure(figsize=(2.2 * (n + 2.2), 2.2 * 3.2 + 0.6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    edges = [
        (_state_name(i), str(k), op) for k, node in enumerate(genotype.normal) for op, i in node
    ]
    edges += [(_state_name(s), OUTPUT_NAME, "") for s in genotype.normal_concat]
    for number, (source, target, op) in enumerate(edges):
        (x0, y0), (x1, y1) = position[source], position[target]
        bend = 0.25 if number % 2 else -0.25
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.35",
                "shrinkA": 22,
                "shrinkB": 22,
                "connectionstyle": f"arc3,rad={bend}",
            },
        )
        if op:  # on the curve: arc3's quadratic Bezier passes mid + rad / 2 * (dy, -dx)
            label_x = (x0 + x1) / 2 + bend / 2 * (y1 - y0)
            label_y = (y0 + y1) / 2 - bend / 2 * (x1 - x0)
            ax.text(label_x, label_y, op, fontsize=7, ha="center", va="center", bbox=LABEL_BOX)
    for name, (x, y) in position.items():
        kind = "input" if name in INPUT_NAMES else "output" if name == OUTPUT_NAME else "node"
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=11,
            bbox={"boxstyle": "square,pad=0.5", "fc": COLOURS[kind], "ec": "black", "lw": 1.5},
        )
    ax.set_xlim(-0.6, n + 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")  # arc3 bends in display space: keep it the data's
    ax.axis("off")
    ax.set_title(caption, fontsize=12)
    figure.tight_layout()
    return figure


def _save_figure(figure: Figure, fmt: str, handle: BinaryIO) -> None:
    figure.savefig(handle, format=fmt, dpi=100)


def plot_genotype(genotype: Genotype, path_stem: str | Path, caption: str) -> list[Path]:
    """Write ``<stem>.gv``, ``<stem>.png`` and ``<stem>.svg`` (graphviz's layout when ``dot``
    exists, else matplotlib's), each atomically."""
    stem = Path(path_stem)
    graph = cell_graph(genotype, caption)
    source = stem.with_name(stem.name + ".gv")
    atomic_write(source, lambda f: f.write(graph.source.encode("utf-8")))
    written = [source]
    figure = None if dot_available() else cell_figure(genotype, caption)
    for fmt in PICTURE_FORMATS:
        picture = stem.with_name(f"{stem.name}.{fmt}")
        if figure is None:
            data = graph.pipe(format=fmt)
            atomic_write(picture, lambda f, data=data: f.write(data))
        else:
            atomic_write(picture, functools.partial(_save_figure, figure, fmt))
        written.append(picture)
    return written
