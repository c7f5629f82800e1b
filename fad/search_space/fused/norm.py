"""GroupNorm (+ ReLU) on a canvas: statistics per image, per group and per level.

``canvas_group_norm`` runs torch's own GroupNorm kernel on each level of the canvas (the same
numbers as the GroupNorm module on that level alone) and writes the results into a canvas with
zero borders, ready for the next spatial conv. It is one autograd node for all levels: no
per-level autograd bookkeeping, and the levels' copies are made once, not by every consumer.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from fad.search_space.fused.canvas import Canvas

aten = torch.ops.aten


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
        n, c = x.shape[:2]
        with torch.autocast(x.device.type, enabled=False):  # float32, as autocast's GroupNorm
            x = x.to(canvas.dtype)
            y = torch.zeros_like(x, memory_format=torch.contiguous_format)
            saved = []
            for level, out in zip(canvas.unpack(x), canvas.unpack(y), strict=True):
                level = level.contiguous()
                h, w = level.shape[2:]
                yl, mean, rstd = aten.native_group_norm(
                    level, weight, bias, n, c, h * w, groups, eps
                )
                if relu:
                    yl = yl.relu_()
                out.copy_(yl)
                saved += [level, mean, rstd, yl]
        ctx.groups, ctx.canvas, ctx.relu = groups, canvas, relu
        ctx.save_for_backward(weight, *saved)
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        weight, *saved = ctx.saved_tensors
        canvas: Canvas = ctx.canvas
        needs = ctx.needs_input_grad
        with torch.autocast(grad.device.type, enabled=False):
            grad = grad.to(canvas.dtype)
            grad_x = torch.zeros_like(grad, memory_format=torch.contiguous_format)
            grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(weight)
            levels = zip(canvas.unpack(grad), canvas.unpack(grad_x), strict=True)
            for index, (gl, out) in enumerate(levels):
                level, mean, rstd, yl = saved[4 * index : 4 * index + 4]
                gl = aten.threshold_backward(gl, yl, 0) if ctx.relu else gl.contiguous()
                n, c, h, w = level.shape
                dx, dw, db = aten.native_group_norm_backward(
                    gl, level, mean, rstd, weight, n, c, h * w, ctx.groups, [needs[0], True, True]
                )
                if dx is not None:
                    out.copy_(dx)
                grad_weight += dw
                grad_bias += db
        return (
            grad_x if needs[0] else None,
            grad_weight if needs[1] else None,
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
    return _CanvasGroupNorm.apply(x, weight, bias, groups, eps, canvas, relu)
