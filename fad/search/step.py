"""One search iteration (alpha step, then the weight step of training) and what is tracked after it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from fad.engine.loop import Step
from fad.engine.step import (
    WeightStep,
    check_finite,
    check_finite_params,
    check_grad_norm,
    prepare_batch,
)
from fad.search.convergence import snapshot_convergence, summary
from fad.search.history import AlphaHistory
from fad.search.methods import SearchMethod
from fad.search.streams import ALPHA_SEED_OFFSET
from fad.search_space.towers import named_alphas

log = logging.getLogger("fad")
LOG_PERIOD = 20  # progress line, TensorBoard and alpha history every this many iterations


def make_search_step(
    net: nn.Module,
    method: SearchMethod,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    *,
    clip_grad: float,
    flip_prob: float,
    seed: int,
    warmup_iters: int = 0,
    after_iteration: Callable[[int, Tensor | None], None] | None = None,
) -> Step:
    """One search iteration on a (weight batch, alpha batch) pair; returns the weight losses.

    Each iteration first lets ``method`` prepare the towers (`begin_iteration`: e.g. a
    temperature, a sampling seed), then takes its alpha step, then the weight step, then
    `after_weight_step` (a one-level method steps the alphas there, on the weight batch's
    gradient).
    The first ``warmup_iters`` iterations skip the alpha step (SOLVER.SEARCH.WARMUP_ITERS): the
    weights learn before the alphas judge them (their alpha batches are drawn all the same, so
    the streams do not depend on the warm-up).

    ``net`` is the model (or its DDP wrapper) for the weight step (training's `WeightStep`, its
    clipping leaving out alphas that SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP put in the optimizer,
    as the released code); non-finite losses or gradient norms stop the run before the
    corresponding optimizer step, and alphas or weights made non-finite by a step stop it before
    anything saves them. Both steps share the architect's precision (SOLVER.AMP): under fp16 a
    non-finite gradient norm makes the loss scaler skip that step (`fad.engine.step`).
    """
    alpha_ids = {id(a) for a in method.arch_params()}
    params = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in alpha_ids]
    precision = method.architect.precision
    weight_step = WeightStep(
        net, optimizer, scheduler, device, clip_grad=clip_grad, clipped=params, precision=precision
    )
    named = named_alphas(method.model)

    def check_alpha(iteration: int) -> Callable[[Tensor, Tensor], None]:
        def check(loss: Tensor, norm: Tensor) -> None:
            check_finite(iteration, {"loss_alpha": loss}, device, what="alpha loss")
            norms = {"alpha_grad_norm": norm}
            check_grad_norm(iteration, norms, device, precision, "alpha gradient norm")

        return check

    def step(iteration: int, batch) -> dict[str, Tensor]:
        weight_raw, alpha_raw = batch
        prepare = {"iteration": iteration, "flip_prob": flip_prob, "device": device}
        weight_batch = prepare_batch(weight_raw, seed=seed, **prepare)
        alpha_batch = None
        if method.uses_alpha_batch:
            alpha_batch = prepare_batch(alpha_raw, seed=seed + ALPHA_SEED_OFFSET, **prepare)
        alpha_loss = None
        method.begin_iteration(iteration)
        searching = iteration >= warmup_iters
        if searching:
            alpha_loss = method.alpha_step(alpha_batch, weight_batch, check_alpha(iteration))
            check_finite_params(iteration, named, device, "alphas", "alpha step")
        losses = weight_step(iteration, weight_batch)
        if searching:
            joint = method.after_weight_step(losses, check_alpha(iteration))
            if joint is not None:
                alpha_loss = joint
                check_finite_params(iteration, named, device, "alphas", "alpha step")
        if after_iteration is not None:
            after_iteration(iteration, alpha_loss)
        return losses

    return step


class AlphaMonitor:
    """After each iteration: record the alpha history (every LOG_PERIOD iterations and at
    checkpoints), log the alpha loss, the convergence figures (`fad.search.convergence`: entropy
    against uniform, the weakest kept op), the method's values (e.g. a temperature) and genotype
    stability, write them to TensorBoard.

    Stability: the share of the current genotypes' edges unchanged over the last
    `stability_window(max_iter)` iterations (see `AlphaHistory.stability`).
    """

    def __init__(
        self,
        model: nn.Module,
        history: AlphaHistory,
        *,
        checkpoint_period: int,
        max_iter: int,
        writer: Any = None,
        method: SearchMethod | None = None,
    ) -> None:
        self.method = method
        self.model = model
        self.history = history
        self.checkpoint_period = checkpoint_period
        self.max_iter = max_iter
        self.writer = writer
        self.window: list[float] = []

    def __call__(self, iteration: int, alpha_loss: Tensor | None) -> None:
        done = iteration + 1
        if alpha_loss is not None:
            self.window.append(float(alpha_loss))
        checkpoint = done % self.checkpoint_period == 0 or done == self.max_iter
        if not (checkpoint or done % LOG_PERIOD == 0):
            return
        snapshot = self.history.record(self.model, done, checkpoint=checkpoint)
        figures = snapshot_convergence(snapshot, self.history.towers)
        stable = self.history.stability(stability_window(self.max_iter))
        mean_loss = sum(self.window) / len(self.window) if self.window else None
        self.window = []
        values = self.method.values(iteration) if self.method is not None else {}
        log.info(
            "iter %d/%d  alpha loss %s  %s%s  edges unchanged since iter %d: %.0f%%",
            done,
            self.max_iter,
            "(warm-up)" if mean_loss is None else f"{mean_loss:.4f}",
            summary(figures),
            "".join(f"  {k} {v:.3g}" for k, v in values.items()),
            stable["since"],
            100 * stable["share_unchanged"],
        )
        if self.writer is not None:
            if mean_loss is not None:
                self.writer.add_scalar("alpha/loss", mean_loss, done)
            self.writer.add_scalar("alpha/genotype_stability", stable["share_unchanged"], done)
            for role, f in figures.items():
                self.writer.add_scalar(f"alpha/entropy_{role}", f["mean_entropy"], done)
                self.writer.add_scalar(f"alpha/entropy_uniform_{role}", f["uniform_entropy"], done)
                self.writer.add_scalar(
                    f"alpha/weakest_kept_op_{role}", f["min_top_over_uniform"], done
                )
            for key, value in values.items():
                self.writer.add_scalar(f"alpha/{key}", value, done)


def stability_window(max_iter: int) -> int:
    """The iterations over which genotype stability is measured: the last quarter of the search
    (at least one log period)."""
    return max(LOG_PERIOD, max_iter // 4)
