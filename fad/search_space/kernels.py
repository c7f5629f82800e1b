"""Fast functional forms of the cells' building blocks: the modules' maps, computed another way.

The modules (``ConvUnit``, the 1x1 convs, the mixed edge) keep their parameters and state-dict
keys; the functions here read those parameters and compute the same maps (up to float rounding),
in NCHW (on a 2-core CPU, channels-last made depthwise and 1x1 convs faster but GroupNorm and
dense-conv backward slower, and torch's channels-last GroupNorm loses digits on offset data; see
docs/performance.md):

- a 1x1 conv is a batched matrix product ([C', C] @ [C, H*W] per image) that reads either layout,
  instead of torch's CPU 1x1 conv in NCHW (``_slow_conv2d``, an im2col copy for nothing);
- on a CPU a depthwise conv runs channels-last, and a dilated one (torch's dilated depthwise
  backward is slow) as an undilated one on the d x d interleaved phase grids of its input;
- GroupNorm + ReLU is one autograd function, so that its output can be remade in the backward
  instead of kept (``recompute``), as can depthwise outputs.

They are float32 CPU paths for training and search: on a GPU, without gradients (inference),
under autocast (SOLVER.AMP) or on other dtypes each function runs the modules themselves
(``plain``), which cuDNN runs faster (on an H200 the search
cell took 97 ms on these functions against 59 ms on the modules) and autocast knows how to cast.
The meta device (FLOP counting) takes the kernels' path.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from fad.search_space import recompute

CHANNELS_LAST, NCHW = torch.channels_last, torch.contiguous_format
NHWC_MIN_NUMEL = 1 << 14  # from about this size, channels-last depthwise convs pay off


_DISABLED = threading.local()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within it (this thread), every cell runs its plain modules: for side-by-side comparisons."""
    before = getattr(_DISABLED, "on", False)
    _DISABLED.on = True
    try:
        yield
    finally:
        _DISABLED.on = before


def plain(x: Tensor) -> bool:
    """Whether ``x`` should go through the plain modules: it is not a float32 CPU (or meta)
    tensor, no gradient is recorded, autocast is on, or the kernels are ``disabled()``."""
    if getattr(_DISABLED, "on", False):
        return True
    kind = x.device.type
    if x.dtype != torch.float32 or kind not in ("cpu", "meta"):
        return True
    # without gradients (inference) the modules were faster on a CPU too: the R-50 FAD head at
    # 800x1333 took 2042 ms as modules, 2299 ms on the kernels (bench/inference.py)
    return kind == "cpu" and (torch.is_autocast_enabled(kind) or not torch.is_grad_enabled())


def channel_mix(weight: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
    """``weight`` [C', C] on the channels of NCHW ``x`` (a bias-free 1x1 conv) -> NCHW; with
    ``out`` (NCHW), added to it in place."""
    n, c, h, w = x.shape
    batched = weight.expand(n, -1, -1)
    if out is None:
        return torch.bmm(batched, x.view(n, c, h * w)).view(n, -1, h, w)
    out.view(n, -1, h * w).baddbmm_(batched, x.view(n, c, h * w))
    return out


def channel_outer(g: Tensor, x: Tensor) -> Tensor:
    """sum over images and pixels of g[c'] * x[c]: [C', C], the weight gradient of
    ``channel_mix`` (NCHW ``g`` [N, C', H, W], ``x`` [N, C, H, W])."""
    n, c, h, w = x.shape
    return torch.bmm(g.view(n, -1, h * w), x.view(n, c, h * w).transpose(1, 2)).sum(0)


def pointwise(x: Tensor, conv: nn.Module) -> Tensor:
    """A 1x1 conv (or identity) as a batched matrix product: ``x`` [N, C, H, W] in either layout
    (a channels-last one is read in place, transposed) -> NCHW [N, C', H, W]."""
    if not isinstance(conv, nn.Conv2d):
        return x.contiguous()
    if plain(x):
        return conv(x)
    n, c, h, w = x.shape
    if x.is_contiguous():
        pixels = x.view(n, c, h * w)
    else:  # channels-last, or a copy
        pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c).transpose(1, 2)
    out = torch.bmm(conv.weight.flatten(1).expand(n, -1, -1), pixels)  # [N, C', HW]
    if conv.bias is not None:
        out = out.add_(conv.bias.view(1, -1, 1))  # in place: bmm does not need its output
    return out.view(n, -1, h, w)


def _to_grids(x: Tensor, d: int) -> Tensor:
    """[N, C, H, W] -> channels-last [N*d*d, C, ceil(H/d), ceil(W/d)]: its d x d phase grids
    (zero-padded at the bottom and right to whole grids), in one copy."""
    n, c, h, w = x.shape
    hp, wp = -(-h // d), -(-w // d)
    if (hp * d, wp * d) != (h, w):
        x = F.pad(x, (0, wp * d - w, 0, hp * d - h))
    grids = x.reshape(n, c, hp, d, wp, d).permute(0, 3, 5, 2, 4, 1)  # [N, d, d, hp, wp, C]
    return grids.reshape(n * d * d, hp, wp, c).permute(0, 3, 1, 2)


def _from_grids(grids: Tensor, d: int, size: Any, memory_format: torch.memory_format) -> Tensor:
    """The inverse of ``_to_grids``: -> [N, C, H, W] (``size`` = (H, W)) in ``memory_format``."""
    nd, c, hp, wp = grids.shape
    phases = grids.permute(0, 2, 3, 1).reshape(nd // (d * d), d, d, hp, wp, c)
    if memory_format == CHANNELS_LAST:
        image = phases.permute(0, 3, 1, 4, 2, 5).reshape(-1, hp * d, wp * d, c)
        return image[:, : size[0], : size[1]].contiguous().permute(0, 3, 1, 2)
    image = phases.permute(0, 5, 3, 1, 4, 2).reshape(-1, c, hp * d, wp * d)
    return image[:, :, : size[0], : size[1]].contiguous()


class _ToGrids(torch.autograd.Function):
    """``_to_grids``, whose gradient comes back NCHW (mixed layouts are slow on CPU)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, d: int) -> Tensor:
        ctx.d, ctx.size = d, x.shape[2:]
        return _to_grids(x, d)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return _from_grids(grad, ctx.d, ctx.size, NCHW), None


class _FromGrids(torch.autograd.Function):
    """``_from_grids`` to channels-last; its gradient goes back to channels-last grids."""

    @staticmethod
    def forward(ctx: FunctionCtx, grids: Tensor, d: int, size: Any) -> Tensor:
        ctx.d = d
        return _from_grids(grids, d, size, CHANNELS_LAST)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:
        return _to_grids(grad, ctx.d), None, None


class _ToChannelsLast(torch.autograd.Function):
    """``x`` in channels-last memory, whose gradient comes back NCHW."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=CHANNELS_LAST)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        return grad.contiguous()


def _nhwc_input(x: Tensor, d: int, grids: bool) -> Tensor:
    """The input of a depthwise conv: ``x`` channels-last, or its channels-last phase grids."""
    return _ToGrids.apply(x, d) if grids else _ToChannelsLast.apply(x)


def _nhwc_depthwise(
    x: Tensor, weight: Tensor, bias: Tensor | None, d: int, grids: bool, size: Any
) -> Tensor:
    """The depthwise conv of ``_nhwc_input``'s output -> channels-last [N, C, H, W]."""
    if not grids:
        return F.conv2d(x, weight, bias, padding=d, dilation=d, groups=weight.shape[0])
    out = F.conv2d(x, weight, bias, padding=1, groups=weight.shape[0])
    return _FromGrids.apply(out, d, size)


def depthwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A depthwise 3x3 conv of dilation d (padding d): [N, C, H, W] -> same, channels-last on a
    CPU (``pointwise`` reads it in place).

    On a CPU a depthwise conv runs channels-last (about 10x faster than NCHW there); when a
    gradient is needed and d > 1 (torch's dilated depthwise backward is slow), pixel (i, j) only
    meets pixels of its phase (i mod d, j mod d), so each of the d * d phase grids is convolved
    with the undilated kernel (the zero padding of a padded grid is the dilated conv's zero
    padding), then the grids are interleaved back. Its input copy and output are remade in the
    backward rather than kept (``recompute``).
    """
    weight, bias, d = conv.weight, conv.bias, conv.dilation[0]
    if x.device.type != "cpu" or x.numel() < NHWC_MIN_NUMEL or plain(x):
        return F.conv2d(x, weight, bias, padding=d, dilation=d, groups=conv.groups)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    grids = d > 1 and needs_grad
    size = (x.shape[2], x.shape[3])
    inp = _nhwc_input(x, d, grids)
    out = _nhwc_depthwise(inp, weight, bias, d, grids, size)
    if needs_grad:
        recompute.recomputable(inp, _nhwc_input, x, d, grids)
        recompute.recomputable(out, _nhwc_depthwise, inp, weight, bias, d, grids, size)
    return out


def _gn_relu(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float) -> Tensor:
    n, c, h, w = x.shape
    return torch.native_group_norm(x, weight, bias, n, c, h * w, groups, eps)[0].relu_()


class _GroupNormReLU(torch.autograd.Function):
    """relu(group_norm(x)), saving its output as a tensor to remake (``recompute``)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float
    ) -> Tensor:
        n, c, h, w = x.shape
        y, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, h * w, groups, eps)
        y = y.relu_()
        recompute.recomputable(y, _gn_relu, x, weight, bias, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd, y)
        ctx.groups = groups
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mean, rstd, y = ctx.saved_tensors
        masked = torch.ops.aten.threshold_backward(grad, y, 0).contiguous()
        n, c, h, w = x.shape
        mask = list(ctx.needs_input_grad[:3])
        grads = torch.ops.aten.native_group_norm_backward(
            masked, x, mean, rstd, weight, n, c, h * w, ctx.groups, mask
        )
        return *grads, None, None


def gn_relu(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """relu(norm(x)) for NCHW ``x`` [N, C, H, W] -> NCHW; as one function on a large map (to
    remake its output), as torch's ops on a small one (less per-call cost)."""
    if x.numel() < recompute.MIN_NUMEL or not torch.is_grad_enabled() or plain(x):
        return F.relu(norm(x))  # norm: the module, for its one-value-per-group case
    return _GroupNormReLU.apply(x, norm.weight, norm.bias, norm.num_groups, norm.eps)


def conv_unit(unit: nn.Module, x: Tensor) -> Tensor:
    """A ``ConvUnit`` (conv, or depthwise + pointwise, -> GN -> ReLU): NCHW -> NCHW."""
    body = unit.body
    if isinstance(body, nn.Sequential):  # depthwise 3x3 then pointwise 1x1
        x = pointwise(depthwise(x, body[0]), body[1])
    else:
        x = F.conv2d(x, body.weight, body.bias, padding=body.padding)
    return gn_relu(x, unit.norm)
