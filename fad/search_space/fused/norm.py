"""GroupNorm (+ ReLU) on a canvas: statistics per image, per group and per level.

``canvas_group_norm`` runs torch's own GroupNorm kernel on each level of the canvas (the same
numbers as the GroupNorm module on that level alone) and writes the results into a canvas with
zero borders, ready for the next spatial conv. It is one autograd node for all levels: no
per-level autograd bookkeeping, and the levels' copies are made once, not by every consumer.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from fad.search_space.fused.canvas import Canvas

aten = torch.ops.aten


def _float32(x: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``x``'s device (a device without autocast, e.g. "meta": nothing to do)."""
    if torch.amp.is_autocast_available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def _single_value(level: Tensor, groups: int) -> bool:
    """One value per group: normalised to 0, as `fad.search_space.ops.GroupNorm` (output =
    bias, no gradient to the input or the weight)."""
    return level.shape[1] == groups and level.shape[2:].numel() == 1


def _level_forward(
    level: Tensor, out: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float, relu: bool
) -> list[Tensor]:
    """Normalise one level into its view ``out`` of the output canvas; returns what its
    backward needs (its contiguous copy, mean, rstd)."""
    n, c, h, w = level.shape
    if _single_value(level, groups):
        y, saved = bias.view(1, c, 1, 1).expand_as(out), []
    else:
        level = level.contiguous()
        y, mean, rstd = aten.native_group_norm(level, weight, bias, n, c, h * w, groups, eps)
        saved = [level, mean, rstd]
    if relu and not torch.compiler.is_compiling():
        torch.clamp_min(y, 0, out=out)
    else:  # torch.compile cannot trace an ``out=`` view: a copy into it, one graph for the head
        out.copy_(y.clamp_min(0) if relu else y)
    return saved


def _normalise_levels(
    x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float, canvas: Canvas, relu: bool
) -> tuple[Tensor, list[list[Tensor]]]:
    """The output canvas and, per level, what its backward needs (in float32 under autocast)."""
    with _float32(x):  # float32, as autocast's GroupNorm
        x = x.to(canvas.dtype)
        y = torch.zeros_like(x, memory_format=torch.contiguous_format)
        saved = [
            _level_forward(level, out, weight, bias, groups, eps, relu)
            for level, out in zip(canvas.unpack(x), canvas.unpack(y), strict=True)
        ]
    return y, saved


class _CanvasGroupNorm(torch.autograd.Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per (image, group, level), optionally
    relu'd; zero on the borders. x: [N, C, H, W] (borders ignored)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        groups: int,
        eps: float,
        canvas: Canvas,
        relu: bool,
    ) -> Tensor:
        y, saved = _normalise_levels(x, weight, bias, groups, eps, canvas, relu)
        ctx.groups, ctx.canvas, ctx.relu = groups, canvas, relu
        ctx.counts = [len(s) for s in saved]
        ctx.save_for_backward(weight, y, *(t for s in saved for t in s))
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        weight, y, *flat = ctx.saved_tensors
        canvas: Canvas = ctx.canvas
        needs = ctx.needs_input_grad
        with _float32(grad):
            grad = grad.to(canvas.dtype)
            grad_x = torch.zeros_like(grad, memory_format=torch.contiguous_format)
            grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(weight)
            levels = zip(canvas.unpack(grad), canvas.unpack(y), canvas.unpack(grad_x), strict=True)
            for (gl, yl, out), count in zip(levels, ctx.counts, strict=True):
                saved, flat = flat[:count], flat[count:]
                gl = aten.threshold_backward(gl, yl, 0) if ctx.relu else gl
                if not saved:  # one value per group: only the bias gets a gradient
                    grad_bias += gl.sum((0, 2, 3))
                    continue
                level, mean, rstd = saved
                n, c, h, w = level.shape
                dx, dw, db = aten.native_group_norm_backward(
                    gl.contiguous(), level, mean, rstd, weight, n, c, h * w, ctx.groups,
                    [needs[0], True, True],
                )  # fmt: skip
                if dx is not None:
                    out.copy_(dx)
                grad_weight += dw
                grad_bias += db
        used = any(ctx.counts)  # the weight multiplies a value on some level
        return (
            grad_x if needs[0] else None,
            grad_weight if needs[1] and used else None,
            grad_bias if needs[2] else None,
            None,
            None,
            None,
            None,
        )


def canvas_group_norm(
    x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float, canvas: Canvas, relu: bool
) -> Tensor:
    """GroupNorm(groups, eps) with affine ``weight``, ``bias`` [C] (then ReLU if ``relu``) of
    each level of the canvas ``x`` [N, C, H, W] -> [N, C, H, W], zero on the borders."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad):
        return _CanvasGroupNorm.apply(x, weight, bias, groups, eps, canvas, relu)
    return _normalise_levels(x, weight, bias, groups, eps, canvas, relu)[0]  # no autograd node
