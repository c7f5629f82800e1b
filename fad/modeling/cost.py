"""Parameters and FLOPs of a module: the one place that counts them.

FLOPs are counted as ``torch.utils.flop_counter.FlopCounterMode`` counts them (convolutions and
matrix products only, one multiply-add = 2 FLOPs; norms, activations and additions are free),
with two corrections:

- the backward of a grouped (e.g. depthwise) convolution is counted by its real work. Torch counts
  its weight gradient as if the convolution were dense (``groups`` times too much: 906 MFLOP
  instead of 9.3 for a 96-channel depthwise 3x3 on [2, 96, 52, 52]). Each gradient of a
  convolution takes exactly the multiply-adds of its forward, so each is counted as the forward;
- the in-place matrix products ``addmm_`` / ``baddbmm_`` are counted like their out-of-place forms.

Modules may live on the meta device (shapes only, nothing computed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten


def _conv_backward_flop(
    grad_out_shape: Sequence[int],
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    _groups: int,
    output_mask: Sequence[bool],
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """Input and weight gradients of a convolution, each as many FLOPs as the forward."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def _inplace_matmul_flop(
    _self_shape: Sequence[int], a_shape: Sequence[int], b_shape: Sequence[int], *_: Any, **__: Any
) -> int:
    """``addmm_`` ([m, k] @ [k, n]) or ``baddbmm_`` ([b, m, k] @ [b, k, n]): 2 * b * m * k * n."""
    return 2 * prod(a_shape) * b_shape[-1]


CORRECTIONS = {
    aten.convolution_backward: _conv_backward_flop,
    aten.addmm_: _inplace_matmul_flop,
    aten.baddbmm_: _inplace_matmul_flop,
}


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` with the corrections above; read ``get_total_flops()``."""
    return FlopCounterMode(display=False, custom_mapping=CORRECTIONS)


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of the tensor operations that ``run()`` performs (its backward too, if it runs one)."""
    counter = flop_counter()
    with counter:
        run()
    return counter.get_total_flops()


def count_parameters(module: nn.Module) -> int:
    """Number of parameter values of ``module`` (alphas included, if it holds any)."""
    return sum(p.numel() for p in module.parameters())


def _total(output: object) -> Tensor:
    """A scalar that depends on every tensor of ``output`` (a tensor, or a list/tuple/dict)."""
    if isinstance(output, Tensor):
        return output.sum()
    values = output.values() if isinstance(output, dict) else output
    return sum(_total(v) for v in values)  # type: ignore[union-attr, return-value]


def module_cost(
    module: nn.Module,
    *inputs: object,
    backward: bool = False,
    call: Callable[..., object] | None = None,
) -> tuple[int, int]:
    """(parameters, FLOPs) of ``module(*inputs)``; with ``backward``, forward + backward of the
    sum of its outputs (every parameter's gradient; inputs' too where they require it).

    The one cost of a head, a tower or a cell: ``call`` runs instead of ``module`` where only
    part of it counts (e.g. ``call=tower.forward_cells`` with ``module=tower.cells``); the
    parameters counted are ``module``'s.
    """
    forward = call or module

    def run() -> None:
        if backward:
            _total(forward(*inputs)).backward()
        else:
            with torch.no_grad():
                forward(*inputs)

    return count_parameters(module), count_flops(run)
