"""A genotype's cell (`FixedCell`) on a canvas: each edge's chain once for all levels."""

from __future__ import annotations

import torch

from fad.search_space.cells import FixedCell
from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow, run_chain


def concat(flows: list[Flow]) -> Flow:
    """The channel concatenation of canvas tensors."""
    x = flows[0].x if len(flows) == 1 else torch.cat([f.x for f in flows], dim=1)
    return Flow(x, all(f.clean for f in flows))


def add(flows: list[Flow]) -> Flow:
    """The sum of canvas tensors."""
    total = flows[0].x
    for flow in flows[1:]:
        total = total + flow.x
    return Flow(total, all(f.clean for f in flows))


def fixed_cell(cell: FixedCell, s0: Flow, s1: Flow, canvas: Canvas) -> Flow:
    """``FixedCell.forward`` on the canvas: s0, s1 -> [N, len(concat) * W, H, W']."""
    states = [run_chain(pre, s, canvas) for pre, s in zip(cell.preprocess, (s0, s1), strict=True)]
    for edges, inputs in zip(cell.nodes, cell.inputs, strict=True):
        states.append(
            add([run_chain(e, states[i], canvas) for e, i in zip(edges, inputs, strict=True)])
        )
    return concat([states[i] for i in cell.concat])
