"""The op table: every op's output shape, structure and the unknown-name errors."""

from __future__ import annotations

import pytest
import torch

from fad.errors import FadError
from fad.search_space.ops import OPS, SPACES, ConvUnit, build_op, op_spec, space_ops

C = 32


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_keeps_shape(name: str) -> None:
    x = torch.randn(2, C, 8, 8)
    out = build_op(name, C)(x)
    assert out.shape == x.shape
    if name == "none":
        assert torch.count_nonzero(out) == 0


def test_released_space_column_order() -> None:
    assert SPACES["released"] == (
        "std_conv_3x3",
        "std_conv_3x3+dil_conv_3x3",
        "std_conv_3x3_x2",
        "std_conv_3x3_x2+dil_conv_3x3",
        "std_conv_3x3_x3",
        "sinSep_conv_3x3",
        "sinSep_conv_3x3+dil_conv_3x3",
        "sinSep_conv_3x3_x2",
        "sinSep_conv_3x3_x2+dil_conv_3x3",
        "sinSep_conv_3x3_x3",
        "none",
    )
    assert len(SPACES["with_r3"]) == 13 and "std_conv_3x3+dil_conv_3x3_r3" in SPACES["with_r3"]
    assert "sinSep_conv_3x3_x2+dil_conv_3x3_r3" in OPS


def _conv_layers(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_op_layers_match_the_original() -> None:
    std = _conv_layers(build_op("std_conv_3x3", C))
    assert [(c.kernel_size, c.groups, c.bias is not None) for c in std] == [((3, 3), 1, True)]
    sin_sep = _conv_layers(build_op("sinSep_conv_3x3", C))
    assert [(c.kernel_size, c.groups, c.bias is not None) for c in sin_sep] == [
        ((3, 3), C, False),
        ((1, 1), 1, True),
    ]
    for name, dilation in (("std_conv_3x3+dil_conv_3x3", 2), ("std_conv_3x3+dil_conv_3x3_r3", 3)):
        dw, pw = _conv_layers(build_op(name, C))[1:]
        assert (dw.dilation, dw.padding, dw.groups, dw.bias is not None) == (
            (dilation, dilation),
            (dilation, dilation),
            C,
            True,
        )
        assert pw.kernel_size == (1, 1) and pw.bias is not None
    op = build_op("sinSep_conv_3x3_x2+dil_conv_3x3", C)
    assert sum(isinstance(m, ConvUnit) for m in op.modules()) == 3
    assert all(isinstance(u[1], torch.nn.GroupNorm) and u[1].num_groups == 32 for u in op)


def test_op_spec_names_round_trip() -> None:
    for name in OPS:
        if name != "none":
            assert op_spec(name).name == name


def test_unknown_op_lists_valid_names_closest_first() -> None:
    with pytest.raises(FadError) as info:
        build_op("std_conv_3x3_x4", C)
    message = str(info.value)
    assert "'std_conv_3x3_x4'" in message
    listed = message.split("valid: ")[1].split(", ")
    assert set(listed) == set(OPS)
    assert listed[0].startswith("std_conv_3x3_x")


def test_unknown_space() -> None:
    with pytest.raises(FadError, match="unknown search space 'relased'; valid: released"):
        space_ops("relased")


@pytest.mark.parametrize("train", [True, False])
def test_group_norm_of_one_value_per_group_is_its_bias(train):
    """A 1x1 P7 of one image on C == 32 channels: torch's GroupNorm refuses it; ours gives bias."""
    from fad.search_space.ops import GroupNorm

    norm = GroupNorm(32, 32).train(train)
    with torch.no_grad():
        norm.bias.copy_(torch.arange(32.0))
    x = torch.randn(1, 32, 1, 1, requires_grad=True)
    out = norm(x)
    assert torch.equal(out, torch.arange(32.0).view(1, 32, 1, 1))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    wide = torch.randn(2, 32, 3, 3)  # otherwise exactly torch's GroupNorm
    assert torch.equal(norm(wide), torch.nn.functional.group_norm(wide, 32, norm.weight, norm.bias))
    two = torch.randn(2, 32, 1, 1)  # torch accepts a batch of 2 and also gives the bias
    reference = torch.nn.functional.group_norm(two, 32, norm.weight, norm.bias)
    assert torch.allclose(norm(two), reference, atol=1e-4)  # torch: mean rounding, ~1e-5


def test_fad_cell_on_a_single_tiny_image_runs():
    from fad.search_space.cells import FixedCell
    from fad.search_space.genotype import load_genotypes

    cell = FixedCell(load_genotypes("paper")["box"], (64, 64), 64, 32).eval()
    x = torch.randn(1, 64, 1, 1)
    assert cell(x, x).shape == (1, 192, 1, 1)
