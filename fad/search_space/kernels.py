"""Fast functional forms of the cells' building blocks: the modules' maps, computed another way.

The modules (``ConvUnit``, the 1x1 convs, the mixed edge) keep their parameters and state-dict
keys; the functions here read those parameters and compute the same maps (up to float rounding):

- an edge works in one layout, chosen by its size (``edge_layout``): channels-last (NHWC) for
  large maps, where depthwise convs are fast and a 1x1 conv is one plain matrix product; NCHW
  for small ones, where torch's channels-last GroupNorm is slow and per-call costs dominate. A 1x1
  conv is a matrix product that reads either layout and writes the one asked for, so entering
  and leaving an edge (NCHW node states) takes no layout copy;
- GroupNorm + ReLU is one autograd function; on large NHWC maps its backward is a few vectorised
  passes (torch's channels-last GroupNorm backward is several times slower on CPU);
- on large NHWC maps a dilated depthwise conv runs as a plain one on the d x d interleaved phase
  grids of its input (torch's dilated depthwise backward is slow on CPU);
- on large maps, GroupNorm + ReLU outputs and depthwise outputs are remade in the backward instead
  of being kept (``recompute``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from fad.search_space import recompute

CHANNELS_LAST = torch.channels_last
NCHW = torch.contiguous_format
LARGE = recompute.MIN_NUMEL  # values in a map from which the large-map paths pay off


def edge_layout(x: Tensor, channels: int) -> torch.memory_format:
    """The layout of an edge of ``channels`` channels on maps of ``x``'s batch and size."""
    n, _, h, w = x.shape
    return CHANNELS_LAST if n * channels * h * w >= LARGE else NCHW


def is_nhwc(x: Tensor) -> bool:
    """Whether ``x`` [N, C, H, W] is channels-last (and not also plainly contiguous)."""
    return x.is_contiguous(memory_format=CHANNELS_LAST) and not x.is_contiguous()


def layout(x: Tensor) -> torch.memory_format:
    return CHANNELS_LAST if is_nhwc(x) else NCHW


def rows(x: Tensor) -> Tensor:
    """Channels-last [N, C, H, W] as its [N*H*W, C] matrix of pixels (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(pixels: Tensor, like: Tensor) -> Tensor:
    """[N*H*W, C'] pixels -> channels-last [N, C', H, W] of ``like``'s N, H, W (a view)."""
    n, _, h, w = like.shape
    return pixels.view(n, h, w, -1).permute(0, 3, 1, 2)


def flat(x: Tensor) -> Tensor:
    """``x`` [N, C, H, W] as a 1-D view in memory order (NHWC or NCHW)."""
    return x.permute(0, 2, 3, 1).reshape(-1) if is_nhwc(x) else x.view(-1)


def channel_mix(weight: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
    """``weight`` [C', C] applied to the channels of ``x`` (a bias-free 1x1 conv), in its layout;
    with ``out`` (same layout), added to it in place."""
    n, c, h, w = x.shape
    if is_nhwc(x):
        if out is None:
            return from_rows(rows(x) @ weight.t(), x)
        rows(out).addmm_(rows(x), weight.t())
        return out
    batched = weight.expand(n, -1, -1)
    if out is None:
        return torch.bmm(batched, x.view(n, c, h * w)).view(n, -1, h, w)
    out.view(n, -1, h * w).baddbmm_(batched, x.view(n, c, h * w))
    return out


def channel_outer(g: Tensor, x: Tensor) -> Tensor:
    """sum over pixels of g[c'] * x[c]: [C', C], the weight gradient of ``channel_mix``."""
    if is_nhwc(x):
        return rows(g).t() @ rows(x)
    n, c, h, w = x.shape
    return torch.bmm(g.view(n, -1, h * w), x.view(n, c, h * w).transpose(1, 2)).sum(0)


def pointwise(x: Tensor, conv: nn.Module, memory_format: torch.memory_format = NCHW) -> Tensor:
    """A 1x1 conv (or identity) as a matrix product: ``x`` [N, C, H, W] in either layout ->
    [N, C', H, W] in ``memory_format``, written directly by the product (no layout copy)."""
    if not isinstance(conv, nn.Conv2d):
        return x.contiguous(memory_format=memory_format)
    weight = conv.weight.flatten(1)  # [C', C]
    if memory_format == CHANNELS_LAST and is_nhwc(x):
        return from_rows(F.linear(rows(x), weight, conv.bias), x)
    n, c, h, w = x.shape
    if is_nhwc(x):
        tokens = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # [N, HW, C]
    else:
        tokens = x.reshape(n, c, h * w).transpose(1, 2)  # [N, HW, C], transposed
    if memory_format == CHANNELS_LAST:  # [N, HW, C] @ [C, C'] per image
        out = _add_bias(torch.bmm(tokens, weight.t().expand(n, -1, -1)), conv.bias, -1)
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)
    out = torch.bmm(weight.expand(n, -1, -1), tokens.transpose(1, 2))  # [N, C', HW]
    return _add_bias(out, conv.bias, 1).view(n, -1, h, w)


def _add_bias(out: Tensor, bias: Tensor | None, dim: int) -> Tensor:
    """``out`` (a fresh product) + ``bias`` along ``dim``, in place."""
    if bias is None:
        return out
    shape = [1] * out.dim()
    shape[dim] = -1
    return out.add_(bias.view(shape))


def _to_grids(x: Tensor, d: int) -> Tensor:
    """Channels-last [N, C, H, W] -> channels-last [N*d*d, C, ceil(H/d), ceil(W/d)]: its d x d
    phase grids, zero-padded at the bottom and right to whole grids."""
    n, c, h, w = x.shape
    hp, wp = -(-h // d), -(-w // d)
    pixels = x.permute(0, 2, 3, 1)  # [N, H, W, C]
    if (hp * d, wp * d) != (h, w):
        pixels = F.pad(pixels, (0, 0, 0, wp * d - w, 0, hp * d - h))
    grids = pixels.reshape(n, hp, d, wp, d, c).permute(0, 2, 4, 1, 3, 5)
    return grids.reshape(n * d * d, hp, wp, c).permute(0, 3, 1, 2)


def _from_grids(grids: Tensor, d: int, size: tuple[int, int]) -> Tensor:
    """The inverse of ``_to_grids``: -> channels-last [N, C, H, W] (``size`` = (H, W))."""
    nd, c, hp, wp = grids.shape
    out = grids.permute(0, 2, 3, 1).reshape(nd // (d * d), d, d, hp, wp, c)
    out = out.permute(0, 3, 1, 4, 2, 5).reshape(-1, hp * d, wp * d, c)
    return out[:, : size[0], : size[1]].contiguous().permute(0, 3, 1, 2)


def _depthwise(x: Tensor, weight: Tensor, bias: Tensor | None, d: int, grids: bool) -> Tensor:
    """Depthwise 3x3 of dilation ``d`` (padding ``d``), through the phase grids if ``grids``."""
    if not grids:
        return F.conv2d(x, weight, bias, padding=d, dilation=d, groups=weight.shape[0])
    phases = _to_grids(x, d)
    recompute.recomputable(phases, _to_grids, x, d)
    out = F.conv2d(phases, weight, bias, padding=1, groups=weight.shape[0])
    return _from_grids(out, d, (x.shape[2], x.shape[3]))


def depthwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A depthwise 3x3 conv of dilation d (padding d): [N, C, H, W] -> same, in x's layout.

    On a large NHWC map needing a gradient, a dilated conv (torch's backward is slow on CPU) runs
    on the phase grids: pixel (i, j) only meets pixels of its phase (i mod d, j mod d), so each of
    the d * d phase grids is convolved with the undilated kernel (the zero padding of a padded
    grid is the dilated conv's zero padding), then the grids are interleaved back. The output is
    remade in the backward rather than kept (``recompute``).
    """
    d = conv.dilation[0]
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad)
    grids = d > 1 and needs_grad and is_nhwc(x) and x.numel() >= LARGE
    out = _depthwise(x, conv.weight, conv.bias, d, grids)
    if needs_grad:
        recompute.recomputable(out, _depthwise, x, conv.weight, conv.bias, d, grids)
    return out


def _per_channel(values: Tensor, channels: int) -> Tensor:
    """[N, G] group values -> [N, 1, C] (each group's value on its channels)."""
    n, groups = values.shape
    values = values.view(n, groups, 1).expand(n, groups, channels // groups)
    return values.reshape(n, 1, channels)


def _pixels(x: Tensor) -> Tensor:
    """Channels-last [N, C, H, W] as [N, H*W, C] (a view)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def _nhwc_stats(x: Tensor, groups: int, eps: float) -> tuple[Tensor, Tensor]:
    """GroupNorm's (mean, rstd) [N, groups] of channels-last ``x``, from centred values.

    Not torch's channels-last kernel: it takes the variance as E[x^2] - E[x]^2 in fp32, which
    loses most digits when a group's mean is large against its spread (a 0.07 error on
    GroupNorm(5 + 0.03 * randn), where the NCHW kernel and this one are exact to 1e-6).
    """
    n, c, h, w = x.shape
    pixels = _pixels(x)
    mean = pixels.sum(1).view(n, groups, -1).mean(2) / (h * w)  # [N, G]
    centred = pixels - _per_channel(mean, c)
    var = centred.square_().sum(1).view(n, groups, -1).mean(2) / (h * w)
    return mean, (var + eps).rsqrt()


def _centred(x: Tensor, mean: Tensor) -> Tensor:
    return _pixels(x) - _per_channel(mean, x.shape[1])  # [N, HW, C]


def _nhwc_normalize(
    x: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor, bias: Tensor, relu: bool = True
) -> Tensor:
    """(relu of) (x - mean) * rstd * weight + bias on channels-last ``x``; -> channels-last."""
    scale = _per_channel(rstd, x.shape[1]) * weight
    out = torch.addcmul(bias, _centred(x, mean), scale)
    return from_rows(out.relu_() if relu else out, x)


def _gn_relu(
    x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(relu(group_norm(x)), mean, rstd), mean and rstd [N, groups]."""
    n, c, h, w = x.shape
    if _by_hand(x):
        mean, rstd = _nhwc_stats(x, groups, eps)
        return _nhwc_normalize(x, mean, rstd, weight, bias), mean, rstd
    y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, h * w, groups, eps)
    return y.relu_(), mean, rstd


def _by_hand(x: Tensor) -> bool:
    """Whether GroupNorm runs by hand (large channels-last maps) or as torch's kernel."""
    return is_nhwc(x) and x.numel() >= LARGE


def _gn_relu_output(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float) -> Tensor:
    return _gn_relu(x, weight, bias, groups, eps)[0]


class _GroupNormReLU(torch.autograd.Function):
    """relu(group_norm(x)); by hand on large NHWC maps (torch's kernel there: ``_nhwc_stats``,
    and a backward several times slower than in NCHW on CPU)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float
    ) -> Tensor:
        y, mean, rstd = _gn_relu(x, weight, bias, groups, eps)
        # a large y is remade where its consumers need it
        if _by_hand(x):
            remade = recompute.recomputable(y, _nhwc_normalize, x, mean, rstd, weight, bias)
        else:
            remade = recompute.recomputable(y, _gn_relu_output, x, weight, bias, groups, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd, None if remade else y)
        ctx.groups, ctx.eps = groups, eps
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, bias, mean, rstd, y = ctx.saved_tensors
        n, c, h, w = x.shape
        if not _by_hand(x):
            if y is None:
                y = _gn_relu_output(x, weight, bias, ctx.groups, ctx.eps)
            masked = torch.ops.aten.threshold_backward(grad, y, 0).contiguous(
                memory_format=layout(x)
            )
            mask = list(ctx.needs_input_grad[:3])
            grads = torch.ops.aten.native_group_norm_backward(
                masked, x, mean, rstd, weight, n, c, h * w, ctx.groups, mask
            )
            return *grads, None, None
        centred = _centred(x, mean)  # [N, HW, C]
        rstd_c = _per_channel(rstd, c)
        before_relu = torch.addcmul(bias, centred, rstd_c * weight)
        masked = torch.ops.aten.threshold_backward(
            _pixels(grad.contiguous(memory_format=CHANNELS_LAST)), before_relu, 0
        )
        sum_g = masked.sum(1, keepdim=True)  # [N, 1, C]
        sum_gd = (masked * centred).sum(1, keepdim=True)  # [N, 1, C]
        grad_bias = sum_g.sum((0, 1))
        grad_weight = (sum_gd * rstd_c).sum((0, 1))
        # dx = rstd * weight * g - rstd / M * (A + (x - mean) * rstd^2 * B), per (image, group)
        count = (c // ctx.groups) * h * w
        a_sum = (sum_g * weight).view(n, ctx.groups, -1).sum(2)
        b_sum = (sum_gd * weight).view(n, ctx.groups, -1).sum(2)
        offset = _per_channel(-rstd * a_sum / count, c)
        slope = _per_channel(-rstd.pow(3) * b_sum / count, c)
        gx = torch.addcmul(offset, masked, rstd_c * weight).addcmul_(centred, slope)
        return from_rows(gx.view(-1, c), x), grad_weight, grad_bias, None, None


def gn_relu(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """relu(norm(x)) for ``x`` [N, C, H, W] in either layout (the result keeps it)."""
    if x.shape[1] == norm.num_groups and x.shape[2:].numel() == 1:
        return F.relu(norm(x))  # one value per group: the module's special case
    return _GroupNormReLU.apply(x, norm.weight, norm.bias, norm.num_groups, norm.eps)


def conv_unit(unit: nn.Module, x: Tensor) -> Tensor:
    """A ``ConvUnit`` (conv, or depthwise + pointwise, -> GN -> ReLU), in ``x``'s layout."""
    body = unit.body
    if isinstance(body, nn.Sequential):  # depthwise 3x3 then pointwise 1x1
        x = pointwise(depthwise(x, body[0]), body[1], layout(x))
    else:
        x = F.conv2d(x, body.weight, body.bias, padding=body.padding)
    return gn_relu(x, unit.norm)
