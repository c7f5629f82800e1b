"""Cells: the search cell (every edge a mixed op) and the fixed cell (the edges of a genotype).

A cell has two input states s0, s1 and ``num_nodes`` intermediate nodes of width W (node width,
the FPN width); node k sums its edges from earlier states, and the cell outputs the channel concat
of the nodes: [N, num_nodes * W, H, W']. An edge works in a narrow width C: 1x1 conv W -> C, the
op, 1x1 conv C -> W (with bias in the fixed cell, without in the search cell, as the original; no
1x1 at all when C == W). A cell input whose width is not W is first mapped to W by
1x1 conv (bias) -> GroupNorm -> ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fad.search_space.genotype import INPUT_NODES, Genotype, validate_genotype
from fad.search_space.ops import ConvUnit, build_op, check_partial_width
from fad.search_space.relaxation import NodeWeights
from fad.search_space.repshare import build_mixed_op


def build_preprocess(in_channels: int, node_channels: int) -> nn.Module:
    """A cell input's preprocess (the cells' ``preprocess[i]``): its map to the node width,
    identity when it already has W channels."""
    if in_channels == node_channels:
        return nn.Identity()
    return ConvUnit(nn.Conv2d(in_channels, node_channels, 1), node_channels)


def _pointwise(in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """The 1x1 conv between node and edge widths (identity when they are equal)."""
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Conv2d(in_channels, out_channels, 1, bias=bias)


def build_fixed_edge(op_name: str, node_channels: int, edge_channels: int) -> nn.Sequential:
    """A fixed edge: [N, W, H, W'] -> 1x1 (bias) -> op on C channels -> 1x1 (bias) -> same."""
    return nn.Sequential(
        _pointwise(node_channels, edge_channels, bias=True),
        build_op(op_name, edge_channels),
        _pointwise(edge_channels, node_channels, bias=True),
    )


class SearchEdge(nn.Module):
    """A search edge: [N, W, H, W'], op weights [n_ops] -> [N, W, H, W'] (plain modules).

    With ``partial`` = K > 1 (PC-DARTS's partial channels) only the first C / K of the edge's C
    channels go through the mixed op, the others pass by unchanged: the widening 1x1 conv then
    mixes all C (a channel shuffle in between would be a permutation that conv absorbs).
    """

    def __init__(
        self,
        op_names: Sequence[str],
        node_channels: int,
        edge_channels: int,
        repshare: bool,
        partial: int = 1,
    ) -> None:
        super().__init__()
        check_partial_width("partial channels", edge_channels, partial)
        self.narrow = _pointwise(node_channels, edge_channels, bias=False)
        self.mixed = build_mixed_op(op_names, edge_channels // partial, repshare)
        self.widen = _pointwise(edge_channels, node_channels, bias=False)
        self.channels = edge_channels
        self.mixed_channels = edge_channels // partial

    def _mixed(self, x: Tensor, op_weights: Tensor, active: Sequence[int] | None) -> Tensor | None:
        if self.mixed_channels == x.shape[1]:
            return self.mixed(x, op_weights, active)
        part, rest = x[:, : self.mixed_channels], x[:, self.mixed_channels :]
        out = self.mixed(part, op_weights, active)
        return torch.cat([torch.zeros_like(part) if out is None else out, rest], dim=1)

    def forward(
        self, x: Tensor, op_weights: Tensor, active: Sequence[int] | None = None
    ) -> Tensor | None:
        """``active``: the op columns computed (default all); None when no op is computed."""
        mixed = self._mixed(self.narrow(x), op_weights, active)
        return None if mixed is None else self.widen(mixed)


class SearchCell(nn.Module):
    """A continuous cell: s0, s1 and per-node `NodeWeights` -> [N, num_nodes * W, H, W']."""

    def __init__(
        self,
        num_nodes: int,
        in_channels: tuple[int, int],
        node_channels: int,
        edge_channels: int,
        op_names: Sequence[str],
        repshare: bool = True,
        partial: int = 1,
    ) -> None:
        super().__init__()
        self.preprocess = nn.ModuleList(build_preprocess(c, node_channels) for c in in_channels)
        self.nodes = nn.ModuleList(
            nn.ModuleList(
                SearchEdge(op_names, node_channels, edge_channels, repshare, partial)
                for _ in range(INPUT_NODES + k)
            )
            for k in range(num_nodes)
        )
        self.out_channels = num_nodes * node_channels

    def forward(
        self, s0: Tensor, s1: Tensor, node_weights: Sequence[NodeWeights | Tensor]
    ) -> Tensor:
        """``node_weights[k]``: what node k mixes by (op weights [2 + k, n_ops], the ops each
        edge computes, edge weights [2 + k]; see ``relaxation``); a tensor is op weights alone."""
        states = [pre(s) for pre, s in zip(self.preprocess, (s0, s1), strict=True)]
        for edges, node in zip(self.nodes, node_weights, strict=True):
            weights = node if isinstance(node, NodeWeights) else NodeWeights(node)
            terms = []
            for e, (edge, state) in enumerate(zip(edges, states)):
                active = None if weights.active is None else weights.active[e]
                out = edge(state, weights.ops[e], active)
                if out is not None:
                    terms.append(out if weights.edges is None else out * weights.edges[e])
            states.append(sum(terms) if terms else torch.zeros_like(states[0]))
        return torch.cat(states[INPUT_NODES:], dim=1)


class FixedCell(nn.Module):
    """The discrete cell of a genotype: s0, s1 -> [N, len(concat) * W, H, W']."""

    def __init__(
        self,
        genotype: Genotype,
        in_channels: tuple[int, int],
        node_channels: int,
        edge_channels: int,
    ) -> None:
        super().__init__()
        validate_genotype(genotype)
        self.genotype = genotype
        self.preprocess = nn.ModuleList(build_preprocess(c, node_channels) for c in in_channels)
        self.nodes = nn.ModuleList(
            nn.ModuleList(build_fixed_edge(op, node_channels, edge_channels) for op, _ in node)
            for node in genotype.normal
        )
        self.inputs = [[index for _, index in node] for node in genotype.normal]
        self.concat = list(genotype.normal_concat)
        self.out_channels = len(self.concat) * node_channels

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [pre(s) for pre, s in zip(self.preprocess, (s0, s1), strict=True)]
        for edges, inputs in zip(self.nodes, self.inputs, strict=True):
            states.append(sum(edge(states[i]) for edge, i in zip(edges, inputs, strict=True)))
        return torch.cat([states[i] for i in self.concat], dim=1)
