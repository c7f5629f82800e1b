"""Plain modules run on a canvas: 1x1 and spatial convs, GroupNorm (+ ReLU), and chains of them.

A canvas tensor is *clean* when its borders are zero. A spatial conv needs a clean input (it is
masked first when not) and leaves garbage on the borders; a 1x1 conv keeps its input's state
(its bias is added on the levels only); GroupNorm leaves it clean. Only the modules the cells and
towers are made of are accepted (`nn.Sequential` chains of `nn.Conv2d`, `nn.GroupNorm`,
`nn.ReLU`, `nn.Identity`); anything else raises rather than run differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fad.errors import FadError
from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.norm import canvas_group_norm


class Flow(NamedTuple):
    """A canvas tensor [N, C, H, W] and whether its borders are zero."""

    x: Tensor
    clean: bool


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None, canvas: Canvas) -> Tensor:
    """A 1x1 conv, ``weight`` [C', C] (bias [C'] on the levels only): [N, C, H, W] -> [N, C',
    H, W], as one batched matrix product."""
    n, c, h, w = x.shape
    pixels = x.reshape(n, c, h * w)
    if bias is None:
        out = torch.matmul(weight, pixels)
    else:
        out = torch.baddbmm(canvas.bias(bias).to(x.dtype), weight.expand(n, -1, -1), pixels)
    return out.view(n, -1, h, w)


def grouped_pointwise(x: Tensor, weight: Tensor, bias: Tensor | None, canvas: Canvas) -> Tensor:
    """E independent 1x1 convs, ``weight`` [E, C', C] (bias [E * C']), on the E channel blocks
    of ``x`` [N, E * C, H, W] -> [N, E * C', H, W]."""
    n, _, h, w = x.shape
    e, c_out, c_in = weight.shape
    out = torch.matmul(weight, x.reshape(n, e, c_in, h * w)).view(n, e * c_out, h * w)
    if bias is not None:
        out = out + canvas.bias(bias).to(out.dtype)
    return out.view(n, -1, h, w)


def spatial_conv(
    flow: Flow, weight: Tensor, bias: Tensor | None, dilation: int, groups: int, canvas: Canvas
) -> Flow:
    """A stride-1 'same' conv (padding = dilation * (k - 1) / 2) on the canvas."""
    x = flow.x if flow.clean else flow.x * canvas.mask.to(flow.x.dtype)
    pad = dilation * (weight.shape[-1] // 2)
    return Flow(F.conv2d(x, weight, bias, 1, pad, dilation, groups), False)


def _check_same_conv(conv: nn.Conv2d) -> None:
    k = conv.kernel_size[0]
    same = conv.padding == (conv.dilation[0] * (k // 2),) * 2 and conv.kernel_size == (k, k)
    if conv.stride != (1, 1) or not same or conv.padding_mode != "zeros" or k % 2 == 0:
        raise FadError(f"the fused path runs stride-1 'same' convs only, got {conv}")


def conv(module: nn.Conv2d, flow: Flow, canvas: Canvas) -> Flow:
    """``module`` on the canvas (1x1 convs as matrix products)."""
    _check_same_conv(module)
    if module.kernel_size == (1, 1) and module.groups == 1:
        return Flow(pointwise(flow.x, module.weight.flatten(1), module.bias, canvas), flow.clean)
    return spatial_conv(flow, module.weight, module.bias, module.dilation[0], module.groups, canvas)


def norm_flow(
    flow: Flow, weight: Tensor, bias: Tensor, groups: int, eps: float, canvas: Canvas, relu: bool
) -> Flow:
    """GroupNorm (then ReLU) per level: a clean canvas."""
    return Flow(canvas_group_norm(flow.x, weight, bias, groups, eps, canvas, relu), True)


def norm(module: nn.GroupNorm, flow: Flow, canvas: Canvas, relu: bool) -> Flow:
    """``module`` (then ReLU) per level: a clean canvas."""
    if not module.affine:
        raise FadError("the fused path runs affine GroupNorms only")
    return norm_flow(flow, module.weight, module.bias, module.num_groups, module.eps, canvas, relu)


def layers(module: nn.Module) -> Iterator[nn.Module]:
    """The leaf modules of a chain, in order (a Sequential's children, recursively)."""
    if isinstance(module, nn.Sequential):
        for child in module.children():
            yield from layers(child)
    else:
        yield module


def run_chain(module: nn.Module, flow: Flow, canvas: Canvas) -> Flow:
    """A chain of convs, GroupNorms, ReLUs and identities on the canvas."""
    chain = list(layers(module))
    i = 0
    while i < len(chain):
        layer = chain[i]
        if isinstance(layer, nn.Conv2d):
            flow = conv(layer, flow, canvas)
        elif isinstance(layer, nn.GroupNorm):
            relu = i + 1 < len(chain) and isinstance(chain[i + 1], nn.ReLU)
            flow = norm(layer, flow, canvas, relu)
            i += relu
        elif isinstance(layer, nn.ReLU):
            flow = Flow(F.relu(flow.x), flow.clean)
        elif not isinstance(layer, nn.Identity):
            raise FadError(f"the fused path cannot run a {type(layer).__name__}")
        i += 1
    return flow
