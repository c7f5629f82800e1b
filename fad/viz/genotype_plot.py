"""Draw a genotype's cell as a DARTS-style graph with graphviz.

Inputs c_{k-2}, c_{k-1}, intermediate nodes 0..n-1, output c_{k}; each edge is labelled with its op.
The ``.gv`` source is always written; ``.png`` and ``.svg`` need graphviz's ``dot`` program.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import graphviz

from fad.search_space.genotype import INPUT_NODES, Genotype

INSTALL_HINT = (
    "graphviz's `dot` program is missing: only .gv sources were written "
    "(install it with `apt-get install graphviz` or `conda install graphviz`)"
)
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


def plot_genotype(genotype: Genotype, path_stem: str | Path, caption: str) -> list[Path]:
    """Write ``<stem>.gv`` and, when ``dot`` exists, ``<stem>.png`` and ``<stem>.svg``."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    graph = cell_graph(genotype, caption)
    source = stem.with_name(stem.name + ".gv")
    source.write_text(graph.source, encoding="utf-8")
    written = [source]
    if dot_available():
        for fmt in PICTURE_FORMATS:
            picture = stem.with_name(f"{stem.name}.{fmt}")
            picture.write_bytes(graph.pipe(format=fmt))
            written.append(picture)
    return written
