"""The fast kernels give the first implementation's results: cells, edges, layouts, recomputation."""

from __future__ import annotations

import gc
import hashlib
import weakref
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from bench import reference_cell
from fad.search_space import kernels, recompute
from fad.search_space.cells import FixedCell, SearchCell
from fad.search_space.genotype import PRESETS
from fad.search_space.ops import SPACES, space_ops

W, C = 64, 32
TOL = 1e-5


@pytest.fixture(params=["small-map", "large-map"])
def paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both code paths on small inputs: "large-map" lowers the size thresholds to 0, so the
    channels-last depthwise convs (phase grids for dilated ones), the GroupNorm + ReLU function
    and the recomputation of activations run."""
    if request.param == "large-map":
        monkeypatch.setattr(kernels, "NHWC_MIN_NUMEL", 0)
        monkeypatch.setattr(recompute, "MIN_NUMEL", 0)
    return request.param


def _run(cell: nn.Module, forward: Callable[..., Tensor], inputs: list[Tensor], *args: object):
    """Output and the gradients of inputs, parameters and ``args`` tensors (a probe loss)."""
    cell.zero_grad(set_to_none=True)
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    extra = [a.detach().clone().requires_grad_() for a in args]  # alphas
    weights = [a.softmax(dim=-1) for a in extra]
    out = forward(cell, *leaves, *([weights] if weights else []))
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * probe).sum().backward()
    grads = [t.grad for t in (*leaves, *extra, *cell.parameters())]
    return out.detach(), grads


def _assert_same(new: tuple[Tensor, list[Tensor]], ref: tuple[Tensor, list[Tensor]]) -> None:
    """Max abs difference <= TOL once the loss is scaled so that no gradient exceeds 1 (mere
    rounding noise, e.g. in the gradients of conv biases that GroupNorm cancels, stays below)."""
    torch.testing.assert_close(new[0], ref[0], rtol=0, atol=TOL)
    assert len(new[1]) == len(ref[1])
    scale = max(1.0, *(g.abs().max().item() for g in ref[1]))
    for got, expected in zip(new[1], ref[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=TOL * scale)


@pytest.mark.parametrize(("space", "size"), [("released", 12), ("with_r3", 13)])
def test_search_cell_equals_reference(paths: str, space: str, size: int) -> None:
    torch.manual_seed(0)
    ops = space_ops(space)
    cell = SearchCell(3, (W, 2 * W), W, C, ops)  # s1 wider than W: preprocessed
    inputs = [torch.randn(2, W, size, size), torch.randn(2, 2 * W, size, size)]
    alphas = [torch.randn(2 + k, len(ops)) for k in range(3)]
    new = _run(cell, SearchCell.__call__, inputs, *alphas)
    _assert_same(new, _run(cell, reference_cell.search_cell, inputs, *alphas))


@pytest.mark.parametrize("genotype", [0, 1])
def test_fixed_cell_equals_reference(paths: str, genotype: int) -> None:
    torch.manual_seed(0)
    cell = FixedCell(PRESETS["paper"][genotype], (W, W), W, C)
    inputs = [torch.randn(2, W, 12, 10), torch.randn(2, W, 12, 10)]
    _assert_same(
        _run(cell, FixedCell.__call__, inputs), _run(cell, reference_cell.fixed_cell, inputs)
    )


def test_channels_last_inputs_give_the_same_outputs(paths: str) -> None:
    torch.manual_seed(0)
    ops = SPACES["released"]
    cell = SearchCell(3, (W, W), W, C, ops)
    weights = [torch.softmax(torch.randn(2 + k, len(ops)), -1) for k in range(3)]
    s0, s1 = torch.randn(2, W, 12, 12), torch.randn(2, W, 12, 12)
    expected = cell(s0, s1, weights)
    last = [s.contiguous(memory_format=torch.channels_last) for s in (s0, s1)]
    torch.testing.assert_close(cell(*last, weights), expected, rtol=0, atol=TOL)
    fixed = FixedCell(PRESETS["paper"][1], (W, W), W, C)
    torch.testing.assert_close(fixed(*last), fixed(s0, s1), rtol=0, atol=TOL)


def test_inference_equals_reference() -> None:
    torch.manual_seed(0)
    cell = FixedCell(PRESETS["paper"][0], (W, W), W, C).eval()
    s0, s1 = torch.randn(1, W, 9, 11), torch.randn(1, W, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(cell(s0, s1), reference_cell.fixed_cell(cell, s0, s1))


def test_dilated_depthwise_on_phase_grids_equals_the_dilated_conv(paths: str) -> None:
    torch.manual_seed(0)
    for dilation, size in [(2, 12), (2, 13), (3, 13), (3, 12)]:
        conv = nn.Conv2d(C, C, 3, padding=dilation, dilation=dilation, groups=C)
        x = torch.randn(2, C, size, size + 1).contiguous(memory_format=torch.channels_last)
        probe = torch.randn(2, C, size, size + 1)
        results = []
        for run in (kernels.depthwise, nn.Conv2d.__call__):
            conv.zero_grad()
            leaf = x.clone().requires_grad_()
            out = run(conv, leaf) if run is nn.Conv2d.__call__ else run(leaf, conv)
            (out * probe).sum().backward()
            results.append([out.detach(), leaf.grad, conv.weight.grad, conv.bias.grad])
        for got, expected in zip(*results, strict=True):
            torch.testing.assert_close(got, expected, rtol=TOL, atol=TOL * 10)


def test_recomputable_tensors_are_not_kept_for_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recompute, "MIN_NUMEL", 0)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    rhs = torch.randn(8, 3)

    def double(t: Tensor) -> Tensor:
        return t * 2.0

    with recompute.cheap_recompute():
        y = double(x)
        assert recompute.recomputable(y, double, x)
        loss = (y.permute(0, 2, 3, 1) @ rhs).square().sum()  # the product saves a view of y
    alive = weakref.ref(y)
    del y
    gc.collect()
    assert alive() is None  # the graph holds its recipe only
    loss.backward()
    plain = x.detach().requires_grad_()
    (double(plain).permute(0, 2, 3, 1) @ rhs).square().sum().backward()
    torch.testing.assert_close(x.grad, plain.grad, rtol=0, atol=0)


def test_state_dict_keys_and_shapes_are_unchanged() -> None:
    """Old checkpoints load: digests of (key, shape) as of the first implementation."""
    cells = {
        "886d3ba787234500e3b7ef8f22e78a6b": SearchCell(3, (W, 3 * W), W, C, SPACES["released"]),
        "a8f9c4dfe534f7b33690c04fa98ba955": SearchCell(
            3, (W, W), W, C, SPACES["with_r3"], repshare=False
        ),
        "68b7040e81149abfc25bd3349f02788e": FixedCell(PRESETS["paper"][0], (W, W), W, C),
    }
    for digest, cell in cells.items():
        pairs = [(k, tuple(v.shape)) for k, v in cell.state_dict().items()]
        assert hashlib.md5(str(pairs).encode()).hexdigest() == digest


def test_the_kernels_take_float32_cpu_tensors_with_gradients_outside_autocast_only():
    x = torch.zeros(1, 2, 3, 3)
    assert not kernels.plain(x) and not kernels.plain(x.to("meta"))
    assert kernels.plain(x.to(torch.bfloat16)) and kernels.plain(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert kernels.plain(x)
    with kernels.disabled():
        assert kernels.plain(x)
    assert not kernels.plain(x)
    with torch.no_grad():  # inference: the modules were faster
        assert kernels.plain(x) and not kernels.plain(x.to("meta"))
