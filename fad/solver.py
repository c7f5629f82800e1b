"""The weights' optimizer (SGD as maskrcnn-benchmark, or AdamW) and the warmup + multi-step schedule.

The optimizers run torch's fused implementation (no per-parameter Python) where the parameters'
device has one, unless SOLVER.FUSED_OPTIMIZER is False: the same update as the per-parameter
loop to float32 rounding, 4x faster on the search supernet's 1,047 small parameters
(docs/performance.md, `bench/optimizer_step.py`). A checkpoint keeps the implementation it was
saved with: a run resumed from a loop-implementation checkpoint goes on with the loop, bit for
bit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from yacs.config import CfgNode as CN

OPTIMIZERS = ("SGD", "AdamW")
FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused SGD and AdamW kernels
WARMUP_METHODS = ("constant", "linear")


def _param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    base_lr: float,
    weight_decay: float,
    bias_lr_factor: float,
    weight_decay_bias: float,
) -> list[dict]:
    """Weights and biases apart: biases get `bias_lr_factor` x lr and `weight_decay_bias`."""
    weights, biases = [], []
    for name, param in named_params:
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    groups = [
        {"params": weights, "lr": base_lr, "weight_decay": weight_decay},
        {"params": biases, "lr": base_lr * bias_lr_factor, "weight_decay": weight_decay_bias},
    ]
    return [g for g in groups if g["params"]]


def has_fused_kernels(groups: list[dict]) -> bool:
    """Whether every parameter of ``groups`` sits on a device with fused optimizer kernels."""
    return all(p.device.type in FUSED_DEVICES for g in groups for p in g["params"])


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
    groups = _param_groups(named_params, base_lr, weight_decay, bias_lr_factor, weight_decay_bias)
    return torch.optim.SGD(groups, lr=base_lr, momentum=momentum, fused=has_fused_kernels(groups))


def build_optimizer(
    named_params: Iterable[tuple[str, nn.Parameter]], solver_cfg: CN
) -> torch.optim.Optimizer:
    """The optimizer SOLVER.OPTIMIZER names, with SOLVER's lr, decay and bias groups.

    ``SGD`` (the original's, with SOLVER.MOMENTUM) or ``AdamW`` (betas (SOLVER.MOMENTUM, 0.999),
    decoupled weight decay): AdamW converges much faster from scratch, as in the CPU demo.
    Fused kernels unless SOLVER.FUSED_OPTIMIZER is False (module doc).
    """
    s = solver_cfg
    groups = _param_groups(
        named_params, s.BASE_LR, s.WEIGHT_DECAY, s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS
    )
    kernels = bool(s.FUSED_OPTIMIZER) and has_fused_kernels(groups)
    if s.OPTIMIZER == "SGD":
        return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM, fused=kernels)
    return torch.optim.AdamW(groups, lr=s.BASE_LR, betas=(s.MOMENTUM, 0.999), fused=kernels)


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
