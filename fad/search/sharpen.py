"""Discretization pressure: an entropy penalty on the op weights, ramped in over the alpha steps.

A DARTS search mixes every op of an edge by softmax(alpha), but the head it hands over keeps one:
the further the op weights are from one-hot when the genotype is read off, the less the supernet
that was trained resembles the head that will be (the discretization gap; SNAS and GDAS close it
by annealing a temperature, DA2S by an entropy constraint). SOLVER.SEARCH.ENTROPY_WEIGHT adds

    ENTROPY_WEIGHT * ramp(iteration) * sum over towers of the mean entropy of their edges' op weights

to the alpha loss, with ramp 0 at the first alpha step rising linearly to 1 at the last. Uniform
weights are a stationary point of the entropy, so the penalty creates no preference: it widens
the differences the data has made (its gradient is -p_i (log p_i + H), proportional to how far op
i already stands from the mean), late in the search, when those differences have formed. Whether
they were the data's or noise is what the seeds' agreement tells (docs/search.md, E16: on the
embedded default, noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fad.search_space.towers import SearchTower


def mean_entropy(tower: SearchTower) -> Tensor:
    """The mean over a tower's edges of the entropy (nats) of softmax(alpha) (differentiable)."""
    rows = torch.cat(list(tower.alphas), dim=0)
    log_p = torch.log_softmax(rows, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1).mean()


@dataclass(frozen=True)
class EntropyPressure:
    """SOLVER.SEARCH.ENTROPY_WEIGHT over the alpha steps from `first` to `last` (iterations)."""

    weight: float
    first: int
    last: int

    def ramp(self, iteration: int) -> float:
        """0 at the first alpha step, 1 at the last, linear between."""
        progress = (iteration - self.first) / max(self.last - self.first, 1)
        return min(max(progress, 0.0), 1.0)

    def penalty(self, towers: list[SearchTower], iteration: int) -> Tensor:
        """weight * ramp(iteration) * sum of the towers' mean edge entropies."""
        scale = self.weight * self.ramp(iteration)
        return scale * torch.stack([mean_entropy(t) for t in towers]).sum()
