"""The cells as first implemented (plain modules, NCHW): the reference the fast kernels must match.

Each function runs a cell built by ``fad.search_space.cells`` with that cell's own parameters,
calling its submodules as plain ``nn`` modules and mixing the ops with an explicit weighted sum,
as ``RepShareMixedOp`` / ``SearchCell`` / ``FixedCell`` did before ``fad.search_space.kernels``.
Used by ``bench/supernet.py`` (timings) and the tests (equality); not by the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fad.search_space.cells import FixedCell, SearchCell, SearchEdge
from fad.search_space.genotype import INPUT_NODES
from fad.search_space.repshare import NaiveMixedOp, RepShareMixedOp, RepShareStack


def _weighted_sum(outputs: Sequence[Tensor], weights: Tensor, columns: Sequence[int]) -> Tensor:
    total = weights[columns[0]] * outputs[0]
    for column, out in zip(columns[1:], outputs[1:], strict=True):
        total = total + weights[column] * out
    return total


def stack_results(stack: RepShareStack, x: Tensor) -> list[Tensor]:
    """A RepShare stack's decoupled results: [N, C, H, W] -> one [N, C, H, W] per spec."""
    raw = []
    for conv in stack.convs:
        x = conv(x)
        raw.append(x)
    shared = [suffix(raw[s.depth - 1]) for suffix, s in zip(stack.suffixes, stack.specs)]
    return [dec(r) for dec, r in zip(stack.decouple, shared, strict=True)]


def mixed_op(mixed: nn.Module, x: Tensor, weights: Tensor) -> Tensor:
    """A RepShare or naive mixed edge: [N, C, H, W], weights [n_ops] -> [N, C, H, W]."""
    if isinstance(mixed, RepShareMixedOp):
        outputs = [out for stack in mixed.stacks for out in stack_results(stack, x)]
    elif isinstance(mixed, NaiveMixedOp):
        outputs = [op(x) for op in mixed.ops]
    else:
        raise TypeError(f"not a mixed op: {type(mixed).__name__}")
    return _weighted_sum(outputs, weights, mixed.columns)


def search_edge(edge: SearchEdge, x: Tensor, weights: Tensor) -> Tensor:
    return edge.widen(mixed_op(edge.mixed, edge.narrow(x), weights))


def search_cell(cell: SearchCell, s0: Tensor, s1: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """``SearchCell.forward`` as first implemented."""
    states = [pre(s) for pre, s in zip(cell.preprocess, (s0, s1), strict=True)]
    for edges, node_weights in zip(cell.nodes, weights, strict=True):
        node = [search_edge(e, s, w) for e, s, w in zip(edges, states, node_weights, strict=True)]
        states.append(sum(node))
    return torch.cat(states[INPUT_NODES:], dim=1)


def fixed_cell(cell: FixedCell, s0: Tensor, s1: Tensor) -> Tensor:
    """``FixedCell.forward`` as first implemented."""
    states = [pre(s) for pre, s in zip(cell.preprocess, (s0, s1), strict=True)]
    for edges, inputs in zip(cell.nodes, cell.inputs, strict=True):
        states.append(sum(edge(states[i]) for edge, i in zip(edges, inputs, strict=True)))
    return torch.cat([states[i] for i in cell.concat], dim=1)
