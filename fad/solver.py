"""SGD with maskrcnn-benchmark's parameter groups and its warmup + multi-step schedule."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import torch
from torch import nn


def build_sgd(
    named_params: Iterable[tuple[str, nn.Parameter]],
    *,
    base_lr: float,
    momentum: float,
    weight_decay: float,
    bias_lr_factor: float = 2.0,
    weight_decay_bias: float = 0.0,
) -> torch.optim.SGD:
    """SGD where biases get `bias_lr_factor` x lr and `weight_decay_bias` (frozen params skipped)."""
    weights, biases = [], []
    for name, param in named_params:
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    groups = [
        {"params": weights, "lr": base_lr, "weight_decay": weight_decay},
        {"params": biases, "lr": base_lr * bias_lr_factor, "weight_decay": weight_decay_bias},
    ]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=base_lr, momentum=momentum)


def warmup_multistep_factor(
    iteration: int,
    *,
    steps: Sequence[int],
    gamma: float,
    warmup_iters: int,
    warmup_factor: float,
    warmup_method: str,
) -> float:
    """The lr multiplier at `iteration`: warmup (constant or linear) then x gamma at each step."""
    factor = gamma ** bisect.bisect_right(list(steps), iteration)
    if iteration < warmup_iters:
        if warmup_method == "constant":
            factor *= warmup_factor
        else:
            alpha = iteration / warmup_iters
            factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, solver_cfg
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following SOLVER.{STEPS, GAMMA, WARMUP_*}; step it once per iteration."""
    options = {
        "steps": tuple(solver_cfg.STEPS),
        "gamma": solver_cfg.GAMMA,
        "warmup_iters": solver_cfg.WARMUP_ITERS,
        "warmup_factor": solver_cfg.WARMUP_FACTOR,
        "warmup_method": solver_cfg.WARMUP_METHOD,
    }
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: warmup_multistep_factor(it, **options)
    )
