"""One training step, shared by `fad train` and `fad search`: batch preparation and the weight step.

A search iteration is an architect step (``fad.search.architect``) followed by this same weight
step; training is the weight step alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from fad.data.transforms import random_flip
from fad.errors import FadError
from fad.runtime.distributed import any_across_processes
from fad.runtime.seeding import derive_seed

Batch = tuple[list[Tensor], list[dict[str, Any]]]


class NonFiniteLossError(FadError):
    """A NaN/Inf loss or gradient norm: the run stops before the optimizer step."""


def check_finite(
    iteration: int, values: dict[str, Tensor], device: torch.device, what: str = "loss"
) -> None:
    """Raise NonFiniteLossError on every rank if any rank has a non-finite value."""
    bad = {k: float(v.detach()) for k, v in values.items() if not math.isfinite(float(v.detach()))}
    if any_across_processes(bool(bad), device):
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in values.items())
        where = terms if bad else f"on another process; here {terms}"
        raise NonFiniteLossError(
            f"non-finite {what} at iteration {iteration + 1} ({where}); "
            "stopped before the optimizer step, the last checkpoint is intact"
        )


def prepare_batch(
    batch: Batch, *, seed: int, iteration: int, flip_prob: float, device: torch.device
) -> Batch:
    """Random flips drawn from a generator seeded by (seed, iteration), then moved to `device`."""
    generator = torch.Generator().manual_seed(derive_seed(seed, iteration))
    images, targets = random_flip(*batch, generator, flip_prob)
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [
        {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    return images, targets


class WeightStep:
    """Forward a prepared batch, backward, clip, step the optimizer and the lr schedule.

    Args:
        net: the model (or its DDP wrapper), called as ``net(images, targets) -> loss dict``.
        optimizer, scheduler: stepped once per call.
        device: where the finiteness checks run their collective.
        clipped: the parameters whose gradient norm is clipped (and checked), default all the
            optimizer's.
        clip_grad: the max norm; 0 disables clipping (the norm is still checked).
    Non-finite losses or gradient norms stop the run before the optimizer step.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        device: torch.device,
        *,
        clip_grad: float,
        clipped: Iterable[Tensor] | None = None,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.max_norm = clip_grad if clip_grad > 0 else float("inf")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.clipped = list(params if clipped is None else clipped)

    def __call__(self, iteration: int, batch: Batch) -> dict[str, Tensor]:
        losses = self.net(*batch)
        check_finite(iteration, losses, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        norm = torch.nn.utils.clip_grad_norm_(self.clipped, self.max_norm)
        check_finite(iteration, {"grad_norm": norm}, self.device, what="gradient norm")
        self.optimizer.step()
        self.scheduler.step()
        return losses
