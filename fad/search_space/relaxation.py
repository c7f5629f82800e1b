"""Relaxations: how a search tower's architecture parameters become the weights its cells mix by.

A search cell takes, per node, a `NodeWeights`: the op weights of each of its edges, optionally
the ops each edge computes (a sampled subset; the others count as 0 and are not computed), and
optionally a weight per edge in the node's sum (PC-DARTS's edge normalisation). A relaxation maps
a tower's alphas ([2 + k, n_ops] per node k) and betas ([2 + k] per node, or None) to one
`NodeWeights` per node:

- `softmax_relaxation`: DARTS's continuous relaxation, softmax(alpha) over every op of every edge
  (and softmax(beta) over the edges of a node when the tower has betas);
- `GumbelSample`: GDAS's sampled relaxation, one op per edge per forward: the hard one-hot of
  softmax((alpha + g) / tau) with Gumbel noise g, whose gradient is that of the soft weights
  (straight-through), so only the sampled op is computed.

A search method (``fad.search.methods``) chooses the relaxation and sets it on the towers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class NodeWeights:
    """What one node of a search cell mixes by.

    ops: [num_edges, n_ops] op weights of each edge.
    active: per edge, the op columns it computes (``None``: all); an op left out adds 0.
    edges: [num_edges] weights of the edges in the node's sum (``None``: 1 each).
    """

    ops: Tensor
    active: tuple[tuple[int, ...], ...] | None = None
    edges: Tensor | None = None


class Relaxation(Protocol):
    def __call__(
        self, alphas: Sequence[Tensor], betas: Sequence[Tensor] | None
    ) -> list[NodeWeights]: ...


def _edge_weights(betas: Sequence[Tensor] | None, node: int) -> Tensor | None:
    return None if betas is None else F.softmax(betas[node], dim=-1)


def softmax_relaxation(
    alphas: Sequence[Tensor], betas: Sequence[Tensor] | None = None
) -> list[NodeWeights]:
    """DARTS: every op of every edge, weighted by softmax(alpha) (edges by softmax(beta))."""
    return [
        NodeWeights(F.softmax(alpha, dim=-1), None, _edge_weights(betas, k))
        for k, alpha in enumerate(alphas)
    ]


def gumbel_noise(shape: torch.Size, generator: torch.Generator) -> Tensor:
    """-log(-log(U)), U ~ uniform(0, 1) drawn from ``generator`` (never 0 or 1)."""
    uniform = torch.rand(shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(uniform))


class GumbelSample:
    """GDAS: per edge the op argmax (alpha + g) sampled with Gumbel noise g, as a one-hot whose
    gradient is that of softmax((alpha + g) / tau) (straight-through).

    Noise comes from ``generator`` (a CPU generator the search method seeds per iteration, so
    that samples do not depend on the global RNG and a resumed run draws the same ones).
    """

    def __init__(self, tau: float, generator: torch.Generator) -> None:
        self.tau = tau
        self.generator = generator

    def __call__(
        self, alphas: Sequence[Tensor], betas: Sequence[Tensor] | None = None
    ) -> list[NodeWeights]:
        nodes = []
        for k, alpha in enumerate(alphas):
            noise = gumbel_noise(alpha.shape, self.generator).to(alpha.device, alpha.dtype)
            soft = F.softmax((alpha + noise) / self.tau, dim=-1)
            index = soft.detach().argmax(dim=-1)
            hard = F.one_hot(index, alpha.shape[-1]).to(soft.dtype)
            ops = hard - soft.detach() + soft  # value: one-hot; gradient: the soft weights'
            active = tuple((int(i),) for i in index.tolist())
            nodes.append(NodeWeights(ops, active, _edge_weights(betas, k)))
        return nodes
