"""Fast functional forms of the cells' building blocks: same results as the modules, less time.

The modules (``ConvUnit``, the 1x1 convs, the mixed edge) keep their parameters and state-dict
keys; the functions here read those parameters and compute the same maps another way:

- inside an edge, activations are channels-last (NHWC), where depthwise convs are fast and a 1x1
  conv is one plain matrix product; the edge's first and last 1x1 convs read and write the cell's
  layout (NCHW) through transposed matrix products, so no layout copy is made;
- GroupNorm + ReLU is one autograd function whose backward in NHWC takes a few vectorised passes
  (torch's channels-last GroupNorm backward is slow on CPU);
- a dilated depthwise conv runs as a plain one on the d x d interleaved sub-grids of its input
  (space-to-batch), since torch's dilated depthwise backward is slow on CPU;
- an edge's four decoupling 1x1 convs, its weighted sum and the op weights are one function: the
  1x1s become matrix products with weight ``w_k * D_k`` accumulated into one buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

CHANNELS_LAST = torch.channels_last


def nhwc(x: Tensor) -> Tensor:
    """``x`` [N, C, H, W] in channels-last memory (a no-op when it already is)."""
    return x.contiguous(memory_format=CHANNELS_LAST)


def _rows(x: Tensor) -> Tensor:
    """A channels-last [N, C, H, W] as its [N*H*W, C] matrix (a view)."""
    return nhwc(x).permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_rows(rows: Tensor, like: Tensor) -> Tensor:
    """[N*H*W, C'] rows -> channels-last [N, C', H, W] shaped as ``like`` (a view)."""
    n, _, h, w = like.shape
    return rows.view(n, h, w, -1).permute(0, 3, 1, 2)


def pointwise(x: Tensor, conv: nn.Module, channels_last: bool = True) -> Tensor:
    """A 1x1 conv (or identity) as a matrix product: [N, C, H, W] -> [N, C', H, W].

    ``x`` may be in either layout; the result is channels-last or, with ``channels_last=False``,
    contiguous NCHW, each written directly by the product (no layout copy).
    """
    if not isinstance(conv, nn.Conv2d):
        return nhwc(x) if channels_last else x.contiguous()
    n, _, h, w = x.shape
    weight = conv.weight.flatten(1)  # [C', C]
    if x.is_contiguous(memory_format=CHANNELS_LAST) and x.shape[1] > 1:
        tokens = x.permute(0, 2, 3, 1).reshape(n, h * w, -1)  # [N, HW, C]
    else:
        tokens = x.contiguous().flatten(2).transpose(1, 2)  # [N, HW, C], strided
    if channels_last:
        out = torch.matmul(tokens, weight.t())  # [N, HW, C']
        if conv.bias is not None:
            out = out + conv.bias
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)
    out = torch.matmul(weight, tokens.transpose(1, 2))  # [N, C', HW]
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1)
    return out.view(n, -1, h, w)


def depthwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A depthwise 3x3 conv of any dilation d on channels-last ``x``: [N, C, H, W] -> same.

    For d > 1, pixel (i, j) only meets pixels of its own phase (i mod d, j mod d): each of the
    d * d phase sub-grids is convolved with the undilated kernel (zero padding of the padded
    sub-grid = the dilated conv's zero padding), then the sub-grids are interleaved back.
    """
    d = conv.dilation[0]
    if d == 1:
        return F.conv2d(nhwc(x), conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)
    n, c, h, w = x.shape
    hp, wp = -(-h // d), -(-w // d)  # sub-grid size
    pixels = nhwc(x).permute(0, 2, 3, 1)  # [N, H, W, C]
    if (hp * d, wp * d) != (h, w):
        pixels = F.pad(pixels, (0, 0, 0, wp * d - w, 0, hp * d - h))
    grids = pixels.reshape(n, hp, d, wp, d, c).permute(0, 2, 4, 1, 3, 5)
    grids = grids.reshape(n * d * d, hp, wp, c).permute(0, 3, 1, 2)  # [N*d*d, C, hp, wp] NHWC
    out = F.conv2d(grids, conv.weight, conv.bias, padding=1, groups=conv.groups)
    out = out.permute(0, 2, 3, 1).reshape(n, d, d, hp, wp, c).permute(0, 3, 1, 4, 2, 5)
    out = out.reshape(n, hp * d, wp * d, c)[:, :h, :w]
    return out.contiguous().permute(0, 3, 1, 2)


def _per_channel(values: Tensor, channels: int) -> Tensor:
    """[N, G] group values -> [N, C] (each group's value on its channels)."""
    n, groups = values.shape
    return values.view(n, groups, 1).expand(n, groups, channels // groups).reshape(n, channels)


class _GroupNormReLU(torch.autograd.Function):
    """relu(group_norm(x)); backward by hand in NHWC, torch's kernel in NCHW."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float
    ) -> Tensor:
        n, c, h, w = x.shape
        y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, h * w, groups, eps)
        y = y.relu_()
        ctx.save_for_backward(x, y, weight, mean, rstd)
        ctx.groups = groups
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, y, weight, mean, rstd = ctx.saved_tensors
        n, c, h, w = x.shape
        masked = torch.ops.aten.threshold_backward(grad, y, 0)
        if not x.is_contiguous(memory_format=CHANNELS_LAST) or c == 1:
            gx, gw, gb = torch.ops.aten.native_group_norm_backward(
                masked.contiguous(), x.contiguous(), mean, rstd, weight, n, c, h * w, ctx.groups,
                list(ctx.needs_input_grad[:3]),
            )  # fmt: skip
            return gx, gw, gb, None, None
        xs, gs = _rows(x).view(n, h * w, c), _rows(masked).view(n, h * w, c)
        sum_g = gs.sum(1)  # [N, C]
        sum_gx = (gs * xs).sum(1)  # [N, C]
        mean_c, rstd_c = _per_channel(mean, c), _per_channel(rstd, c)
        grad_bias = sum_g.sum(0)
        grad_weight = ((sum_gx - mean_c * sum_g) * rstd_c).sum(0)
        # dx = rstd * weight * g + b * x + c0, with b, c0 per (image, group)
        count = (c // ctx.groups) * h * w
        sum_g_group = (sum_g * weight).view(n, ctx.groups, -1).sum(2)
        sum_gx_group = (sum_gx * weight).view(n, ctx.groups, -1).sum(2)
        b = (sum_g_group * mean - sum_gx_group) * rstd.pow(3) / count
        c0 = -b * mean - sum_g_group * rstd / count
        gx = torch.addcmul(_per_channel(c0, c).unsqueeze(1), gs, (rstd_c * weight).unsqueeze(1))
        gx = gx.addcmul_(xs, _per_channel(b, c).unsqueeze(1))
        return _from_rows(gx.view(-1, c), x), grad_weight, grad_bias, None, None


def gn_relu(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """relu(norm(x)) for ``x`` [N, C, H, W] in either layout (the result keeps it)."""
    if x.shape[1] == norm.num_groups and x.shape[2:].numel() == 1:
        return F.relu(norm(x))  # one value per group: the module's special case
    return _GroupNormReLU.apply(x, norm.weight, norm.bias, norm.num_groups, norm.eps)


def conv_unit(unit: nn.Module, x: Tensor) -> Tensor:
    """A ``ConvUnit`` (conv, or depthwise + pointwise, -> GN -> ReLU) on channels-last ``x``."""
    body = unit.body
    if isinstance(body, nn.Sequential):  # depthwise 3x3 then pointwise 1x1
        x = pointwise(depthwise(x, body[0]), body[1])
    else:
        x = F.conv2d(nhwc(x), body.weight, body.bias, padding=body.padding)
    return gn_relu(x, unit.norm)


class _Mix(torch.autograd.Function):
    """z = sum_k w[col_k] * D_k(r_k), D_k a 1x1 conv (no bias) or the identity, in NHWC rows."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        weights: Tensor,
        columns: Sequence[int],
        decoupled: Sequence[bool],
        *tensors: Tensor,
    ) -> Tensor:
        k = len(columns)
        results, dec_weights = tensors[:k], iter(tensors[k:])
        rows = [_rows(r) for r in results]
        mats = [next(dec_weights).flatten(1) if d else None for d in decoupled]
        total = None
        for col, row, mat in zip(columns, rows, mats):  # products first: they fill `total`
            if mat is not None:
                scaled = (mat * weights[col]).t()
                total = row @ scaled if total is None else total.addmm_(row, scaled)
        for col, row, mat in zip(columns, rows, mats):
            if mat is None:
                total = row * weights[col] if total is None else total.addcmul_(row, weights[col])
        ctx.save_for_backward(weights, *results, *(m for m in mats if m is not None))
        ctx.columns, ctx.decoupled = list(columns), list(decoupled)
        return _from_rows(total, results[0])

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        k = len(ctx.columns)
        weights, results, dec_iter = saved[0], saved[1 : k + 1], iter(saved[k + 1 :])
        g = _rows(grad)
        grad_weights = torch.zeros_like(weights)
        grad_results: list[Tensor | None] = []
        grad_decs: list[Tensor] = []
        for i, (col, result, dec) in enumerate(zip(ctx.columns, results, ctx.decoupled)):
            w = weights[col]
            row = _rows(result)
            if dec:
                mat = next(dec_iter).flatten(1)
                outer = g.t() @ row  # [C', C]: d loss / d (w * D)
                grad_weights[col] += (outer * mat).sum()
                grad_decs.append((outer * w).view(*mat.shape, 1, 1))
                grad_row = g @ (mat * w) if ctx.needs_input_grad[3 + i] else None
            else:
                grad_weights[col] += torch.dot(g.reshape(-1), row.reshape(-1))
                grad_row = g * w if ctx.needs_input_grad[3 + i] else None
            grad_results.append(None if grad_row is None else _from_rows(grad_row, result))
        return grad_weights, None, None, *grad_results, *grad_decs


def mix(
    results: Sequence[Tensor],
    weights: Tensor,
    columns: Sequence[int],
    decouple: Sequence[nn.Module],
) -> Tensor:
    """sum_k weights[columns[k]] * decouple[k](results[k]); a decouple is a 1x1 conv or identity.

    results: channels-last [N, C, H, W] each; weights: [n_ops]. Returns channels-last [N, C, H, W].
    """
    decoupled = [isinstance(d, nn.Conv2d) for d in decouple]
    mats = [d.weight for d in decouple if isinstance(d, nn.Conv2d)]
    results = [nhwc(r) for r in results]
    return _Mix.apply(weights, list(columns), decoupled, *results, *mats)
