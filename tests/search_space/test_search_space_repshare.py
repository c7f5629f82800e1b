"""RepShare: shared results equal the ops computed one by one; costs vs the naive mixed op."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fad.search_space.ops import SPACES, ConvUnit, OpSpec, StackedOp, op_spec
from fad.search_space.repshare import NaiveMixedOp, RepShareMixedOp, RepShareStack, build_mixed_op

C = 32
RELEASED = SPACES["released"]


def _specs(base: str, space: str = "released") -> list[OpSpec]:
    return [op_spec(n) for n in SPACES[space] if n != "none" and n.startswith(base)]


def _copy_into_naive(stack: RepShareStack, k: int) -> StackedOp:
    """The k-th op of ``stack`` built on its own, with the stack's conv weights."""
    spec = stack.specs[k]
    naive = StackedOp(spec, C)
    units = list(stack.convs[: spec.depth]) + ([stack.suffixes[k]] if spec.suffix else [])
    for target, source in zip(naive, units, strict=True):
        target.load_state_dict(source.state_dict())
    return naive


@pytest.mark.parametrize("space", ["released", "with_r3"])
@pytest.mark.parametrize("base", ["std", "sinSep"])
def test_shared_results_equal_ops_one_by_one(base: str, space: str) -> None:
    torch.manual_seed(0)
    stack = RepShareStack(_specs(base, space), C)
    x = torch.randn(2, C, 8, 8)
    shared = stack.shared_results(x)
    assert len(shared) == len(stack.specs)
    for k, result in enumerate(shared):
        expected = _copy_into_naive(stack, k)(x)
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_decoupling_applies_to_x1_and_x2_only() -> None:
    stack = RepShareStack(_specs("std"), C)
    decoupled = [
        s.name for s, d in zip(stack.specs, stack.decouple, strict=True) if isinstance(d, nn.Conv2d)
    ]
    assert decoupled == ["std_conv_3x3", "std_conv_3x3_x2"]
    x = torch.randn(1, C, 8, 8)
    shared, out = stack.shared_results(x), stack(x)
    for dec, s, o in zip(stack.decouple, shared, out, strict=True):
        torch.testing.assert_close(o, dec(s))
        assert dec.bias is None if isinstance(dec, nn.Conv2d) else torch.equal(o, s)


def test_repshare_mixed_equals_naive_mixed_when_decoupling_is_identity() -> None:
    torch.manual_seed(0)
    shared = RepShareMixedOp(RELEASED, C)
    naive = NaiveMixedOp(RELEASED, C)
    for stack in shared.stacks:
        for dec in stack.decouple:
            if isinstance(dec, nn.Conv2d):
                nn.init.dirac_(dec.weight)
    by_name = {}
    for stack in shared.stacks:
        for k, spec in enumerate(stack.specs):
            by_name[spec.name] = _copy_into_naive(stack, k)
    for column, op in zip(naive.columns, naive.ops, strict=True):
        op.load_state_dict(by_name[RELEASED[column]].state_dict())
    x = torch.randn(2, C, 8, 8)
    weights = torch.softmax(torch.randn(len(RELEASED)), dim=0)
    torch.testing.assert_close(shared(x, weights), naive(x, weights), rtol=1e-5, atol=1e-5)


def test_mixed_op_uses_its_weights() -> None:
    torch.manual_seed(0)
    op = build_mixed_op(RELEASED, C)
    x = torch.randn(1, C, 8, 8)
    only_none = torch.zeros(len(RELEASED))
    only_none[-1] = 1.0
    assert torch.count_nonzero(op(x, only_none)) == 0
    only_first = torch.zeros(len(RELEASED))
    only_first[0] = 1.0
    first = op.stacks[0].decouple[0](op.stacks[0].convs[0](x))
    torch.testing.assert_close(op(x, only_first), first)


def _count(module: nn.Module) -> tuple[int, int]:
    """(conv units, bare 1x1 convs outside conv units)."""
    units = sum(isinstance(m, ConvUnit) for m in module.modules())
    inside = {id(c) for u in module.modules() if isinstance(u, ConvUnit) for c in u.modules()}
    bare = sum(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and id(m) not in inside
        for m in module.modules()
    )
    return units, bare


def test_edge_conv_counts() -> None:
    assert _count(build_mixed_op(RELEASED, C, repshare=True)) == (10, 4)
    assert _count(build_mixed_op(RELEASED, C, repshare=False)) == (22, 0)
    assert _count(build_mixed_op(SPACES["with_r3"], C, repshare=True)) == (12, 4)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_repshare_has_at_most_half_the_parameters() -> None:
    shared = _params(build_mixed_op(RELEASED, 96, repshare=True))
    naive = _params(build_mixed_op(RELEASED, 96, repshare=False))
    assert shared <= 0.5 * naive
    # By hand, C=96: std unit 83,232, sinSep unit 10,368, dil unit 10,464, 1x1 9,216.
    assert shared == 3 * 83_232 + 3 * 10_368 + 4 * 10_464 + 4 * 9_216
    assert naive == 9 * 83_232 + 9 * 10_368 + 4 * 10_464


def test_mixed_op_needs_a_real_op() -> None:
    from fad.errors import FadError

    with pytest.raises(FadError, match="at least one op"):
        build_mixed_op(["none"], C)
    with pytest.raises(FadError, match="unknown op 'std_conv_9x9'"):
        build_mixed_op(["std_conv_9x9", "none"], C)
