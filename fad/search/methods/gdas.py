"""GDAS (Dong & Yang, CVPR 2019): one op per edge per forward, sampled by Gumbel-max.

Each forward draws, per edge, op argmax(alpha + g) (Gumbel noise g); the edge computes that op
alone, weighted by the one-hot whose gradient is that of softmax((alpha + g) / tau)
(`fad.search_space.relaxation.GumbelSample`), so a step costs about one op per edge instead of
all of them. The weight step trains the sampled ops, the alpha step (first order) moves the alphas
on another sample. The temperature tau falls linearly from SOLVER.SEARCH.TAU[0] at the first alpha
step to TAU[1] at the last. The noise comes from a generator seeded by (SEED, iteration): the same
draws on every process and after a resume.
"""

from __future__ import annotations

import torch

from fad.runtime.seeding import derive_seed
from fad.search.methods.base import SearchMethod
from fad.search_space.relaxation import GumbelSample, softmax_relaxation

GUMBEL_STREAM = 0x6DA5  # separates the noise's seeds from the data streams'


class GDAS(SearchMethod):
    """Gumbel-max sampled edges, straight-through gradients, annealed temperature."""

    name = "gdas"
    samples = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator()
        self.sampler = GumbelSample(self.options.tau[0], self.generator)
        for tower in self.towers:
            tower.relaxation = self.sampler

    def tau(self, iteration: int) -> float:
        """The temperature at `iteration`: linear from TAU[0] (first alpha step) to TAU[1]."""
        start, end = self.options.tau
        first, last = self.options.warmup_iters, self.options.max_iter - 1
        progress = min(max((iteration - first) / max(last - first, 1), 0.0), 1.0)
        return start + (end - start) * progress

    def begin_iteration(self, iteration: int) -> None:
        self.generator.manual_seed(derive_seed(self.options.seed + GUMBEL_STREAM, iteration))
        self.sampler.tau = self.tau(iteration)

    def values(self, iteration: int) -> dict[str, float]:
        return {**super().values(iteration), "tau": self.tau(iteration)}

    def release(self) -> None:
        """Give the towers back DARTS's softmax (e.g. to evaluate the supernet)."""
        for tower in self.towers:
            tower.relaxation = softmax_relaxation
