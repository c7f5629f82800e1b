"""FLOP counting: grouped-conv backward by its real work, dense convs as torch counts them."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fad.modeling.cost import count_flops, count_parameters, module_cost

N, C, H, W = 2, 96, 52, 52


def test_depthwise_conv_flops_equal_the_hand_count() -> None:
    conv = nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False)
    x = torch.randn(N, C, H, W, requires_grad=True)
    forward = 2 * N * H * W * C * 9  # one multiply-add per pixel, channel and tap
    assert forward == 9_345_024
    assert module_cost(conv, x) == (C * 9, forward)
    # input and weight gradients each take the forward's multiply-adds (torch counts 906 M)
    assert module_cost(conv, x, backward=True) == (C * 9, 3 * forward)
    frozen_input = torch.randn(N, C, H, W)
    assert module_cost(conv, frozen_input, backward=True)[1] == 2 * forward


def test_dilated_and_meta_depthwise_counts() -> None:
    conv = nn.Conv2d(C, C, 3, padding=2, dilation=2, groups=C).to("meta")
    x = torch.empty(N, C, H, W, device="meta", requires_grad=True)
    assert module_cost(conv, x, backward=True)[1] == 3 * 2 * N * H * W * C * 9


def test_dense_conv_counts_are_torchs() -> None:
    conv = nn.Conv2d(C, C, 3, padding=1)
    x = torch.randn(N, C, H, W, requires_grad=True)
    for backward in (False, True):
        counter = FlopCounterMode(display=False)
        with counter:
            out = conv(x)
            if backward:
                out.sum().backward()
        assert module_cost(conv, x, backward=backward)[1] == counter.get_total_flops()


def test_in_place_matrix_products_are_counted() -> None:
    a, b, out = torch.randn(8, 4), torch.randn(4, 3), torch.zeros(8, 3)
    assert count_flops(lambda: out.addmm_(a, b)) == 2 * 8 * 4 * 3
    batched = torch.zeros(2, 8, 3)
    assert count_flops(lambda: batched.baddbmm_(a.expand(2, 8, 4), b.expand(2, 4, 3))) == 2 * (
        2 * 8 * 4 * 3
    )


def test_parameters_and_outputs_of_any_structure() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
            return {"out": [self.linear(x), self.linear(2 * x)]}

    pair = Pair()
    assert count_parameters(pair) == 15
    params, flops = module_cost(pair, torch.randn(5, 4), backward=True)
    assert params == 15 and flops == 2 * (2 * 5 * 4 * 3) + 2 * (2 * 5 * 4 * 3)  # fwd + weight grads


def test_call_counts_part_of_a_module_with_that_part_s_parameters() -> None:
    pair = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    params, flops = module_cost(pair[0], x, call=lambda v: pair[1](pair[0](v)))
    assert params == 4 * 3 + 3
    assert flops == module_cost(pair, x)[1] == 2 * 5 * (4 * 3 + 3 * 2)
