"""One search iteration: the method's alpha step, then the weight step of training."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from fad.engine.loop import Step
from fad.engine.weight_step import (
    WeightStep,
    check_finite,
    check_finite_params,
    check_grad_norm,
    prepare_batch,
)
from fad.search.methods import SearchMethod
from fad.search.streams import ALPHA_SEED_OFFSET
from fad.search_space.towers import named_alphas


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

    Each iteration first lets ``method`` prepare the towers (`prepare`: e.g. a
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
    non-finite gradient norm makes the loss scaler skip that step (`fad.engine.weight_step`).
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
        method.prepare(iteration)
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
