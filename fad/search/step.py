"""One search iteration (alpha step, then weight step) and what is tracked after it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from fad.engine.loop import Step, check_finite
from fad.engine.train import random_flip
from fad.search.architect import Architect
from fad.search.history import AlphaHistory, mean_entropy
from fad.search.streams import ALPHA_SEED_OFFSET

log = logging.getLogger("fad")
LOG_PERIOD = 20  # progress line, TensorBoard and alpha history every this many iterations


def _prepare(batch, generator_seed: int, flip_prob: float, device: torch.device):
    """Random flips (drawn from a generator seeded per iteration), then move to ``device``."""
    images, targets = random_flip(*batch, torch.Generator().manual_seed(generator_seed), flip_prob)
    images = [img.to(device, non_blocking=True) for img in images]
    targets = [
        {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    return images, targets


def make_search_step(
    net: nn.Module,
    architect: Architect,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    *,
    clip_grad: float,
    flip_prob: float,
    seed: int,
    after_iteration: Callable[[int, Tensor], None] | None = None,
) -> Step:
    """One search iteration on a (weight batch, alpha batch) pair; returns the weight losses.

    ``net`` is the model (or its DDP wrapper) for the weight step; non-finite losses or gradient
    norms stop the run before the corresponding optimizer step.
    """
    alpha_ids = {id(a) for a in architect.alphas}
    weights = [
        p for group in optimizer.param_groups for p in group["params"] if id(p) not in alpha_ids
    ]  # clipped; alphas in the weights' optimizer (ALPHAS_IN_WEIGHT_STEP) are not, as released
    max_norm = clip_grad if clip_grad > 0 else float("inf")

    def check_alpha(iteration: int) -> Callable[[Tensor, Tensor], None]:
        def check(loss: Tensor, norm: Tensor) -> None:
            check_finite(iteration, {"loss_alpha": loss}, device, what="alpha loss")
            check_finite(iteration, {"alpha_grad_norm": norm}, device, what="alpha gradient norm")

        return check

    def step(iteration: int, batch) -> dict[str, Tensor]:
        weight_raw, alpha_raw = batch
        weight_batch = _prepare(weight_raw, seed * 1_000_003 + iteration, flip_prob, device)
        alpha_seed = (seed + ALPHA_SEED_OFFSET) * 1_000_003 + iteration
        alpha_batch = _prepare(alpha_raw, alpha_seed, flip_prob, device)
        alpha_loss = architect.step(alpha_batch, weight_batch, check=check_alpha(iteration))
        losses = net(*weight_batch)
        check_finite(iteration, losses, device)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        norm = torch.nn.utils.clip_grad_norm_(weights, max_norm)
        check_finite(iteration, {"grad_norm": norm}, device, what="gradient norm")
        optimizer.step()
        scheduler.step()
        if after_iteration is not None:
            after_iteration(iteration, alpha_loss)
        return losses

    return step


class AlphaMonitor:
    """After each iteration: record the alpha history (every LOG_PERIOD iterations and at
    checkpoints), log the alpha loss and entropy, write them to TensorBoard."""

    def __init__(
        self,
        model: nn.Module,
        history: AlphaHistory,
        *,
        checkpoint_period: int,
        max_iter: int,
        writer: Any = None,
    ) -> None:
        self.model = model
        self.history = history
        self.checkpoint_period = checkpoint_period
        self.max_iter = max_iter
        self.writer = writer
        self.window: list[float] = []

    def __call__(self, iteration: int, alpha_loss: Tensor) -> None:
        done = iteration + 1
        self.window.append(float(alpha_loss))
        checkpoint = done % self.checkpoint_period == 0 or done == self.max_iter
        if not (checkpoint or done % LOG_PERIOD == 0):
            return
        snapshot = self.history.record(self.model, done, checkpoint=checkpoint)
        entropies = {role: mean_entropy(rows) for role, rows in snapshot["weights"].items()}
        mean_loss = sum(self.window) / len(self.window)
        self.window = []
        log.info(
            "iter %d/%d  alpha loss %.4f  alpha entropy %s",
            done,
            self.max_iter,
            mean_loss,
            "  ".join(f"{role} {value:.4f}" for role, value in entropies.items()),
        )
        if self.writer is not None:
            self.writer.add_scalar("alpha/loss", mean_loss, done)
            for role, value in entropies.items():
                self.writer.add_scalar(f"alpha/entropy_{role}", value, done)
