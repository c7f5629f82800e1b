"""A search cell of RepShare edges on a canvas, its edges batched by wave.

Node k of a cell reads states 0 .. k + 1, so every edge out of the two cell inputs can run as
soon as the cell starts, and the edges out of node k as soon as it is summed: a cell of K nodes
runs in K waves. The edges of a wave have the same structure, so each of their ops runs once for
all of them (and all levels): their parameters are concatenated, dense convs become grouped
convs, 1x1 convs batched matrix products, GroupNorm gets E times the groups (`batch`). The
narrow 1x1s that read one state are one product; an edge's decouple 1x1s and the weighted sum of
its ops are one product with sum_o w_o D_o (D_o: the decouple conv or the identity); the widen
1x1s of a node's edges, times the edge weights, are one product.

What the node weights leave out is not computed, as in the modules: an edge computes only its
active ops, a stack runs only as deep as the deepest of them (the edges of a stack are ordered by
that depth, so that each conv runs on a prefix of them), an edge whose active ops are only
'none' computes nothing (with partial channels it still passes its bypass channels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fad.search_space.cells import SearchCell, SearchEdge
from fad.search_space.fused.batch import Batch, batched_unit, take
from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow, pointwise, run_chain
from fad.search_space.fused.fixed import concat
from fad.search_space.genotype import INPUT_NODES
from fad.search_space.relaxation import NodeWeights
from fad.search_space.repshare import RepShareMixedOp

Spec = tuple[int, int]  # (stack, index of the op in the stack)


@dataclass(frozen=True)
class Edge:
    """One edge of a wave: node k reading state j, and what it computes."""

    node: int
    state: int
    module: SearchEdge
    specs: tuple[Spec, ...]  # the active stacked ops, in the mixed op's stack order
    op_weights: Tensor  # [n_ops]
    edge_weight: Tensor | None

    @property
    def mixed(self) -> RepShareMixedOp:
        return self.module.mixed  # type: ignore[return-value]

    @property
    def partial(self) -> bool:
        return self.module.mixed_channels < self.module.channels


def supports(cell: nn.Module) -> bool:
    """Whether the fused path runs this cell: a search cell of RepShare edges."""
    return isinstance(cell, SearchCell) and all(
        isinstance(edge.mixed, RepShareMixedOp) for edges in cell.nodes for edge in edges
    )


def _specs(mixed: RepShareMixedOp, active: Sequence[int] | None) -> tuple[Spec, ...]:
    return tuple(
        (s, i)
        for s, columns in enumerate(mixed.stack_columns)
        for i, column in enumerate(columns)
        if active is None or column in active
    )


def _wave(cell: SearchCell, wave: int, weights: Sequence[NodeWeights]) -> list[Edge]:
    """The edges of ``wave`` that compute something, grouped by the state they read."""
    states = range(INPUT_NODES) if wave == 0 else [wave + 1]
    edges = []
    for j in states:
        for k in range(max(0, j - 1), len(cell.nodes)):
            node = weights[k]
            active = None if node.active is None else node.active[j]
            module = cell.nodes[k][j]
            edge_weight = None if node.edges is None else node.edges[j]
            edge = Edge(k, j, module, _specs(module.mixed, active), node.ops[j], edge_weight)
            if edge.specs or edge.partial:
                edges.append(edge)
    return edges


def _narrow(edges: list[Edge], states: list[Flow], canvas: Canvas) -> tuple[Batch, Batch | None]:
    """The narrowed inputs of the edges: the channels the ops take (all of the wave's edges, in
    order) and, with partial channels, the bypassed ones."""
    parts, rests = [], []
    for j in dict.fromkeys(e.state for e in edges):
        group = [e for e in edges if e.state == j]
        x = states[j].x
        split = group[0].module.mixed_channels
        weights = [_matrix(e.module.narrow, x.shape[1], x) for e in group]
        parts.append(pointwise(x, torch.cat([w[:split] for w in weights]), None, canvas))
        if group[0].partial:
            rests.append(pointwise(x, torch.cat([w[split:] for w in weights]), None, canvas))
    ids = tuple(range(len(edges)))
    part = Batch(_cat(parts), ids)
    return part, (Batch(_cat(rests), ids) if rests else None)


def _matrix(conv: nn.Module, channels: int, like: Tensor) -> Tensor:
    """A bias-free 1x1 conv's [C', C] matrix (for ``nn.Identity``, the identity on ``channels``,
    of ``like``'s dtype and device)."""
    if isinstance(conv, nn.Conv2d):
        return conv.weight.flatten(1)
    return torch.eye(channels, dtype=like.dtype, device=like.device)


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


def _run_stack(stack: int, edges: list[Edge], part: Batch, canvas: Canvas) -> dict[Spec, Batch]:
    """The results of one base's stack for the edges that use it: each conv on the edges whose
    deepest active op of this base is at least that deep (a prefix, edges ordered by depth),
    each suffix on the edges whose op it is."""
    users = [e for e, edge in enumerate(edges) if any(s == stack for s, _ in edge.specs)]
    if not users:
        return {}
    stacks = {e: edges[e].mixed.stacks[stack] for e in users}
    depth = {
        e: max(stacks[e].specs[i].depth for s, i in edges[e].specs if s == stack) for e in users
    }
    order = tuple(sorted(users, key=lambda e: -depth[e]))
    raw, previous = [], Batch(take(part, order), order)
    for level in range(depth[order[0]]):
        ids = tuple(e for e in order if depth[e] > level)
        units = [stacks[e].convs[level] for e in ids]
        previous = Batch(batched_unit(units, Flow(take(previous, ids), True), canvas).x, ids)
        raw.append(previous)
    results = {}
    for i, spec in enumerate(stacks[order[0]].specs):
        ids = tuple(e for e in order if (stack, i) in edges[e].specs)
        if not ids:
            continue
        source = raw[spec.depth - 1]
        if spec.suffix is None:
            results[(stack, i)] = source
            continue
        units = [stacks[e].suffixes[i] for e in ids]
        results[(stack, i)] = Batch(
            batched_unit(units, Flow(take(source, ids), True), canvas).x, ids
        )
    return results


def _op_weight(edges: list[Edge], column: int, like: Tensor) -> Tensor:
    """[1, E, 1, 1]: each edge's weight of op ``column``."""
    return torch.stack([edge.op_weights[column] for edge in edges]).to(like.dtype).view(1, -1, 1, 1)


def _mix_group(edges: list[Edge], specs: tuple[Spec, ...], pieces: list[Tensor]) -> Tensor:
    """sum_o w_o D_o r_o for edges that compute the same ops: ``pieces[o]`` [N, E * C, H, W]
    -> [N, E, C, H * W]; decoupled results through one batched product each (the weights
    w_o D_o), the others added in place, scaled."""
    n, total, h, w = pieces[0].shape
    c = total // len(edges)
    stacks = edges[0].mixed.stacks
    columns = [edges[0].mixed.stack_columns[s][i] for s, i in specs]
    decoupled = [isinstance(stacks[s].decouple[i], nn.Conv2d) for s, i in specs]
    out = None
    for (s, i), column, piece, dec in zip(specs, columns, pieces, decoupled, strict=True):
        if not dec:
            continue
        weight = torch.stack([e.mixed.stacks[s].decouple[i].weight.flatten(1) for e in edges])
        term = torch.matmul(weight * _op_weight(edges, column, piece), piece.view(n, -1, c, h * w))
        out = term if out is None else out + term
    for column, piece, dec in zip(columns, pieces, decoupled, strict=True):
        if dec:
            continue
        scaled = piece.view(n, -1, c, h * w), _op_weight(edges, column, piece)
        out = scaled[0] * scaled[1] if out is None else out.addcmul_(*scaled)
    assert out is not None
    return out


def _mix(edges: list[Edge], results: dict[Spec, Batch]) -> dict[int, Tensor]:
    """Each computing edge's weighted sum of its decoupled op results: [N, C, H, W] per edge,
    batched over the edges that compute the same ops."""
    groups: dict[tuple[Spec, ...], list[int]] = {}
    for e, edge in enumerate(edges):
        if edge.specs:
            groups.setdefault(edge.specs, []).append(e)
    mixed = {}
    for specs, ids in groups.items():
        pieces = [take(results[spec], ids) for spec in specs]
        out = _mix_group([edges[e] for e in ids], specs, pieces)
        n, _, h, w = pieces[0].shape
        mixed.update(zip(ids, out.view(n, len(ids), -1, h, w).unbind(1), strict=True))
    return mixed


EdgeOutput = tuple[Edge, Tensor | None, Tensor | None]  # (edge, mixed channels, bypass channels)


def _run_wave(edges: list[Edge], states: list[Flow], canvas: Canvas) -> list[EdgeOutput]:
    part, rest = _narrow(edges, states, canvas)
    results: dict[Spec, Batch] = {}
    for stack in range(len(edges[0].mixed.stacks)):
        results.update(_run_stack(stack, edges, part, canvas))
    mixed = _mix(edges, results)
    if rest is None:
        return [(edge, mixed.get(e), None) for e, edge in enumerate(edges)]
    n, _, h, w = rest.x.shape
    rests = rest.x.view(n, len(edges), -1, h, w).unbind(1)
    return [(edge, mixed.get(e), r) for e, (edge, r) in enumerate(zip(edges, rests, strict=True))]


def _node(outputs: list[EdgeOutput], like: Flow, canvas: Canvas) -> Flow:
    """A node: the sum of its edges' widen 1x1s (times the edge weights), one product."""
    pieces, blocks = [], []
    for edge, mixed, rest in sorted(outputs, key=lambda o: o[0].state):
        module = edge.module
        weight = _matrix(module.widen, module.channels, like.x)
        if edge.edge_weight is not None:
            weight = weight * edge.edge_weight
        split = module.mixed_channels
        if mixed is not None:
            pieces.append(mixed)
            blocks.append(weight[:, :split])
        if rest is not None:
            pieces.append(rest)
            blocks.append(weight[:, split:])
    if not pieces:
        return Flow(torch.zeros_like(like.x), True)
    return Flow(pointwise(_cat(pieces), torch.cat(blocks, dim=1), None, canvas), True)


def search_cell(
    cell: SearchCell,
    s0: Flow,
    s1: Flow,
    node_weights: Sequence[NodeWeights | Tensor],
    canvas: Canvas,
) -> Flow:
    """``SearchCell.forward`` on the canvas: s0, s1 -> [N, num_nodes * W, H, W']."""
    states = [run_chain(pre, s, canvas) for pre, s in zip(cell.preprocess, (s0, s1), strict=True)]
    weights = [w if isinstance(w, NodeWeights) else NodeWeights(w) for w in node_weights]
    outputs: list[list[EdgeOutput]] = [[] for _ in cell.nodes]
    for wave in range(len(cell.nodes)):
        edges = _wave(cell, wave, weights)
        for output in _run_wave(edges, states, canvas) if edges else []:
            outputs[output[0].node].append(output)
        states.append(_node(outputs[wave], states[0], canvas))
    return concat(states[INPUT_NODES:])
