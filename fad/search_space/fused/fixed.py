"""A genotype's cell (`FixedCell`) on a canvas, its edges batched.

The cell's edges run in waves: every edge whose input state is ready runs in the current wave,
whatever node it feeds. Within a wave the edges' narrowing 1x1 convs run as one batched matrix
product, then their stacked ops unit by unit: at each depth, the units of one kind (same body
convs, same width) run as one `batched_unit` (a conv of E groups, GroupNorm with E times the
groups), and the widening 1x1s as one product. A node is the sum of its edges once all have run.
This is ``FixedCell.forward`` exactly (every edge's own parameters, in float64 to rounding), in
a few calls per wave instead of a few per edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fad.errors import FadError
from fad.search_space.cells import FixedCell
from fad.search_space.fused.batch import batched_unit
from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow, grouped_pointwise, run_chain
from fad.search_space.ops import ConvUnit, StackedOp, body_convs


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


@dataclass
class _Edge:
    """One edge of the cell: the node it feeds, its input state, its parts, its current flow."""

    node: int
    position: int
    source: int
    narrow: nn.Module
    units: list[ConvUnit]
    widen: nn.Module
    flow: Flow | None = field(default=None)


def _is_pointwise(module: nn.Module) -> bool:
    """An identity or a 1x1 conv of one group (what `_pointwise_batch` runs)."""
    if isinstance(module, nn.Identity):
        return True
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1


def _edge(node: int, position: int, source: int, module: nn.Module) -> _Edge | None:
    """The parts of a `build_fixed_edge` chain (None: not of that shape, run as a chain)."""
    parts = list(module.children()) if isinstance(module, nn.Sequential) else []
    if len(parts) != 3 or not isinstance(parts[1], StackedOp):
        return None
    if not all(_is_pointwise(p) for p in (parts[0], parts[2])):
        return None
    return _Edge(node, position, source, parts[0], list(parts[1].children()), parts[2])


def _pointwise_batch(convs: Sequence[nn.Module], flows: list[Flow], canvas: Canvas) -> list[Flow]:
    """Each edge's 1x1 conv (or identity) on its flow: the convs of one shape as one product."""
    out = list(flows)
    groups: dict[tuple, list[int]] = {}
    for i, conv in enumerate(convs):
        if isinstance(conv, nn.Conv2d):
            key = (tuple(conv.weight.shape), conv.bias is not None)
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        weight = torch.stack([convs[i].weight.flatten(1) for i in members])  # [E, C', C]
        biases = [convs[i].bias for i in members]
        bias = None if biases[0] is None else torch.cat(biases)  # type: ignore[arg-type]
        batch = concat([flows[i] for i in members])
        x = grouped_pointwise(batch.x, weight, bias, canvas)
        for i, piece in zip(members, x.chunk(len(members), dim=1), strict=True):
            out[i] = Flow(piece, batch.clean)
    return out


def _unit_key(unit: ConvUnit) -> tuple:
    """Units with the same key run as one batched unit."""
    convs = tuple(
        (tuple(c.weight.shape), c.dilation, c.groups, c.bias is not None) for c in body_convs(unit)
    )
    return convs, unit.norm.num_groups, unit.norm.eps


def _run_wave(edges: list[_Edge], states: list[Flow], canvas: Canvas) -> None:
    """Every edge of the wave from its input state to its output (in ``edge.flow``)."""
    flows = _pointwise_batch([e.narrow for e in edges], [states[e.source] for e in edges], canvas)
    for edge, flow in zip(edges, flows, strict=True):
        edge.flow = flow
    for depth in range(max(len(e.units) for e in edges)):
        groups: dict[tuple, list[_Edge]] = {}
        for edge in edges:
            if depth < len(edge.units):
                groups.setdefault(_unit_key(edge.units[depth]), []).append(edge)
        for members in groups.values():
            batch = concat([e.flow for e in members])  # type: ignore[misc]
            out = batched_unit([e.units[depth] for e in members], batch, canvas)
            for edge, piece in zip(members, out.x.chunk(len(members), dim=1), strict=True):
                edge.flow = Flow(piece, out.clean)
    flows = _pointwise_batch([e.widen for e in edges], [e.flow for e in edges], canvas)  # type: ignore[misc]
    for edge, flow in zip(edges, flows, strict=True):
        edge.flow = flow


def fixed_cell(cell: FixedCell, s0: Flow, s1: Flow, canvas: Canvas) -> Flow:
    """``FixedCell.forward`` on the canvas: s0, s1 -> [N, len(concat) * W, H, W']."""
    states: list[Flow] = [
        run_chain(pre, s, canvas) for pre, s in zip(cell.preprocess, (s0, s1), strict=True)
    ]
    pending = [
        (node, position, source, edge)
        for node, (edges, inputs) in enumerate(zip(cell.nodes, cell.inputs, strict=True))
        for position, (edge, source) in enumerate(zip(edges, inputs, strict=True))
    ]
    outputs: dict[int, dict[int, Flow]] = {node: {} for node in range(len(cell.nodes))}
    while len(states) < 2 + len(cell.nodes):
        ready = [p for p in pending if p[2] < len(states)]
        if not ready:
            raise FadError(f"a cell edge reads a state its nodes never make: {cell.genotype}")
        pending = [p for p in pending if p[2] >= len(states)]
        wave = []
        for node, position, source, module in ready:
            parts = _edge(node, position, source, module)
            if parts is None:  # not a narrow -> stacked op -> widen chain: run on its own
                outputs[node][position] = run_chain(module, states[source], canvas)
            else:
                wave.append(parts)
        if wave:
            _run_wave(wave, states, canvas)
            for edge in wave:
                outputs[edge.node][edge.position] = edge.flow  # type: ignore[assignment]
        while len(states) < 2 + len(cell.nodes):
            done = outputs[len(states) - 2]
            if len(done) < len(cell.nodes[len(states) - 2]):
                break
            states.append(add([done[position] for position in sorted(done)]))
    return concat([states[i] for i in cell.concat])
