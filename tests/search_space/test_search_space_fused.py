"""The fused compute path equals the towers' plain modules run level by level: outputs and
gradients (float64 to rounding, float32 to 1e-4 of the largest value), for every kind of tower,
every relaxation the search cells take, partial channels and edge weights; the canvas layout."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fad.search_space.fused.path as fused_path
from fad.errors import FadError
from fad.search_space.fused.canvas import Canvas, plan_layout
from fad.search_space.genotype import PRESETS
from fad.search_space.ops import space_ops
from fad.search_space.paths import use_compute_path
from fad.search_space.random_genotype import sample_genotype
from fad.search_space.relaxation import GumbelSample, NodeWeights, softmax_relaxation
from fad.search_space.towers import CellTowerSpec, SearchTower, Tower, TowerSpec, build_towers

W, C = 32, 32
# FPN levels, down to a 1x1 level (GroupNorm of one value per group). Levels of 2 or 3 pixels
# would make these random towers ill-conditioned (a group of 2 values can have a variance near 0,
# which normalisation amplifies to ~1e-5 differences between two float64 summation orders).
LEVELS = [(8, 10), (4, 5), (3, 3), (2, 2), (1, 1)]
BOX, CLS = PRESETS["paper"]


def _spec(mode: str, cells: int = 1, **kwargs: object) -> TowerSpec:
    box = CellTowerSpec(num_cells=cells, num_nodes=3, edge_channels=C, genotype=BOX)
    cls = CellTowerSpec(num_cells=cells, num_nodes=3, edge_channels=C, genotype=CLS)
    return TowerSpec(mode=mode, channels=W, num_convs=2, box=box, cls=cls, **kwargs)


def _run(towers: list[Tower], path: str, dtype: torch.dtype, relaxation=None):
    """Outputs of both towers on every level and the gradients of every parameter and level."""
    towers = [copy.deepcopy(t).to(dtype) for t in towers]
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(2, W, h, w, generator=g, dtype=torch.float64) for h, w in LEVELS]
    features = [f.to(dtype).requires_grad_() for f in features]
    for tower in towers:
        use_compute_path(tower, path)
        if relaxation is not None and isinstance(tower, SearchTower):
            tower.relaxation = relaxation()
    box = towers[0].forward_levels(features)
    outputs = box + towers[1].forward_levels(features, box)
    probes = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(dtype) for o in outputs]
    loss = sum((o * probe).sum() for o, probe in zip(outputs, probes, strict=True))
    loss.backward()
    grads = [p.grad for t in towers for p in t.parameters()] + [f.grad for f in features]
    return [o.detach() for o in outputs], grads


def _errors(found, expected) -> tuple[float, float]:
    """The largest differences of outputs and of gradients, relative to the largest value."""
    assert [g is None for g in found[1]] == [g is None for g in expected[1]]
    errors = []
    for got, ref in zip(found, expected, strict=True):
        pairs = [(a, b) for a, b in zip(got, ref, strict=True) if b is not None]
        scale = max(float(b.abs().max()) for _, b in pairs)
        errors.append(max(float((a.double() - b.double()).abs().max()) for a, b in pairs) / scale)
    return errors[0], errors[1]


def _assert_equal(towers: list[Tower], dtype: torch.dtype, relaxation=None) -> None:
    """float64: equal to rounding. float32: as close to the float64 values as the plain modules
    in float32 are (both are float32 roundings of one function)."""
    plain = _run(towers, "plain", torch.float64, relaxation)
    if dtype == torch.float64:
        assert max(_errors(_run(towers, "fused", dtype, relaxation), plain)) < 1e-10
        return
    fused_error = _errors(_run(towers, "fused", dtype, relaxation), plain)
    plain_error = _errors(_run(towers, "plain", dtype, relaxation), plain)
    for fused_e, plain_e in zip(fused_error, plain_error, strict=True):
        assert fused_e <= 3 * plain_e + 1e-6, (fused_error, plain_error)
    assert max(fused_error) < 1e-3


TOWERS = {
    "standard FCOS": _spec("standard"),
    "standard RetinaNet": _spec("standard", standard_norm=False),
    "genotype, 2 cells": _spec("genotype", cells=2),
    "search": _spec("search"),
    "search, 2 cells": _spec("search", cells=2),
    "search, with_r3": _spec("search", space="with_r3"),
    "search, partial channels": _spec("search", partial_channels=4),
    "search, edge weights": _spec("search", edge_normalization=True),
    "search, fixed op scales": _spec("search", search_affine=False),
}


@pytest.mark.parametrize("name", list(TOWERS))
def test_fused_equals_plain_in_float64(name: str) -> None:
    torch.manual_seed(0)
    _assert_equal(list(build_towers(TOWERS[name])), torch.float64)


@pytest.mark.parametrize("name", ["standard FCOS", "genotype, 2 cells", "search"])
def test_fused_equals_plain_in_float32(name: str) -> None:
    torch.manual_seed(0)
    _assert_equal(list(build_towers(TOWERS[name])), torch.float32)


@pytest.mark.parametrize("draw", [0, 1, 2])
def test_random_genotypes_with_narrow_edges_equal_plain(draw: int) -> None:
    """A genotype cell's edges run batched by wave and unit kind: random genotypes (edges that
    read other nodes, every op of the space with the r3 suffix) and 1x1 widen/narrow convs
    (edges 64 wide in 32-wide nodes) give the plain cell's outputs and gradients."""
    g = torch.Generator().manual_seed(draw)
    ops = space_ops("with_r3")
    box, cls = (
        CellTowerSpec(
            num_cells=2, num_nodes=3, edge_channels=64, genotype=sample_genotype(3, ops, g)
        )
        for _ in range(2)
    )
    torch.manual_seed(draw)
    spec = TowerSpec(mode="genotype", channels=W, num_convs=2, box=box, cls=cls, space="with_r3")
    _assert_equal(list(build_towers(spec)), torch.float64)


@pytest.mark.parametrize("partial", [1, 2])
def test_a_sampled_relaxation_computes_the_same_ops(partial: int) -> None:
    """GDAS: one op per edge, drawn once per forward from a seeded generator; the ops left out
    get no gradient on either path."""
    torch.manual_seed(0)
    towers = list(build_towers(_spec("search", partial_channels=partial, edge_normalization=True)))
    _assert_equal(
        towers, torch.float64, lambda: GumbelSample(1.0, torch.Generator().manual_seed(3))
    )


class _Subsets:
    """Fixed active op subsets: a deep op, an op sharing a stack with another, only 'none',
    everything."""

    def __call__(self, alphas, betas=None):
        nodes = softmax_relaxation(alphas, betas)
        none = len(alphas[0][0]) - 1
        choices = [(4,), (1, 7), (none,), None, (0, 2, none), (9,), (3,), (none,), (6, 8)]
        active, i = [], 0
        for node in nodes:
            edges = []
            for _ in range(node.ops.shape[0]):
                edges.append(choices[i % len(choices)] or tuple(range(none + 1)))
                i += 1
            active.append(tuple(edges))
        return [NodeWeights(n.ops, a, n.edges) for n, a in zip(nodes, active, strict=True)]


@pytest.mark.parametrize("partial", [1, 4])
def test_active_op_subsets_and_edges_that_compute_nothing(partial: int) -> None:
    torch.manual_seed(0)
    towers = list(build_towers(_spec("search", partial_channels=partial)))
    _assert_equal(towers, torch.float64, _Subsets)


def test_the_path_changes_no_parameter_and_no_state_dict_name() -> None:
    box, cls = build_towers(_spec("search"))
    names, count = list(box.state_dict()), sum(p.numel() for p in box.parameters())
    use_compute_path(box, "fused")
    assert box.compute_path is not None
    assert list(box.state_dict()) == names
    assert sum(p.numel() for p in box.parameters()) == count
    use_compute_path(box, "plain")
    assert box.compute_path is None


def test_naive_mixed_ops_keep_the_level_loop_and_unknown_paths_are_refused() -> None:
    box, _ = build_towers(_spec("search", repshare=False))
    use_compute_path(box, "fused")
    assert box.compute_path is None
    with pytest.raises(FadError, match="unknown compute path 'fast'; valid: fused, plain"):
        use_compute_path(box, "fast")


def test_above_the_cpu_limit_the_fused_path_runs_the_plain_loop(monkeypatch) -> None:
    box, cls = build_towers(_spec("genotype", cells=2))
    features = [torch.randn(2, W, h, w) for h, w in LEVELS]
    elements = sum(f.numel() for f in features)
    packed = []
    real = Canvas.for_levels
    monkeypatch.setattr(Canvas, "for_levels", lambda *a: packed.append(1) or real(*a))
    use_compute_path(box, "plain")
    with torch.no_grad():
        expected = box.forward_levels(features)
        use_compute_path(box, "fused")
        monkeypatch.setattr(fused_path, "CPU_MAX_ELEMENTS", elements)
        at_limit = box.forward_levels(features)
        assert len(packed) == 1  # at the limit: the canvas
        monkeypatch.setattr(fused_path, "CPU_MAX_ELEMENTS", elements - 1)
        above = box.forward_levels(features)
        assert len(packed) == 1  # above it: the plain loop, bit for bit
    for a, b, c in zip(expected, at_limit, above, strict=True):
        assert torch.equal(a, c)
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_modules_the_path_cannot_run_raise() -> None:
    box, _ = build_towers(_spec("standard"))
    box.layers[0].body.stride = (2, 2)
    use_compute_path(box, "fused")
    with pytest.raises(FadError, match="stride-1 'same' convs only"):
        box.forward_levels([torch.randn(1, W, h, w) for h, w in LEVELS])
    box.layers[0] = nn.Sequential(nn.BatchNorm2d(W))
    with pytest.raises(FadError, match="cannot run a BatchNorm2d"):
        box.forward_levels([torch.randn(1, W, h, w) for h, w in LEVELS])


@pytest.mark.parametrize("gap", [1, 2, 3])
@pytest.mark.parametrize(
    "sizes", [LEVELS, [(100, 167), (50, 84), (25, 42), (13, 21), (7, 11)], [(3, 3)]]
)
def test_levels_sit_apart_by_the_gap_inside_the_canvas(sizes, gap: int) -> None:
    layout = plan_layout(tuple(sizes), gap)
    boxes = [(y, x, y + h, x + w) for (y, x), (h, w) in zip(layout.origins, sizes, strict=True)]
    for y0, x0, y1, x1 in boxes:
        assert 0 <= y0 and 0 <= x0 and y1 <= layout.height and x1 <= layout.width
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart_y = a[2] + gap <= b[0] or b[2] + gap <= a[0]
            apart_x = a[3] + gap <= b[1] or b[3] + gap <= a[1]
            assert apart_y or apart_x
    area = sum(h * w for h, w in sizes)
    assert layout.pixels <= 1.5 * area + 4 * gap * (layout.height + layout.width)


def test_pack_and_unpack_are_inverse_and_the_borders_are_zero() -> None:
    levels = [torch.randn(2, 3, h, w) for h, w in LEVELS]
    canvas = Canvas.for_levels(levels, 2)
    packed = canvas.pack(levels)
    for got, expected in zip(canvas.unpack(packed), levels, strict=True):
        assert torch.equal(got, expected)
    assert torch.equal(packed * canvas.mask, packed)
    assert canvas.mask.sum() == sum(h * w for h, w in LEVELS)


@pytest.mark.parametrize("name", list(TOWERS))
def test_fused_inference_without_autograd_equals_plain(name: str) -> None:
    """Under no_grad the canvas GroupNorm runs its forward alone (no autograd node)."""
    torch.manual_seed(0)
    towers = [copy.deepcopy(t).double() for t in build_towers(TOWERS[name])]
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(2, W, h, w, generator=g, dtype=torch.float64) for h, w in LEVELS]
    outputs = {}
    for path in ("plain", "fused"):
        for tower in towers:
            use_compute_path(tower, path)
        with torch.no_grad():
            box = towers[0].forward_levels(features)
            outputs[path] = box + towers[1].forward_levels(features, box)
    for fused, plain in zip(outputs["fused"], outputs["plain"], strict=True):
        assert not fused.requires_grad
        torch.testing.assert_close(fused, plain, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["standard FCOS", "genotype, 2 cells", "search"])
def test_the_fused_path_runs_on_the_meta_device(name: str) -> None:
    """Shapes without values (FLOP counts, `bench/supernet.py`): a device without autocast."""
    towers = [t.to("meta") for t in build_towers(TOWERS[name])]
    features = [torch.randn(2, W, h, w, device="meta", requires_grad=True) for h, w in LEVELS]
    for tower in towers:
        use_compute_path(tower, "fused")
    box = towers[0].forward_levels(features)
    outputs = box + towers[1].forward_levels(features, box)
    sum(o.sum() for o in outputs).backward()
    assert [tuple(o.shape) for o in outputs] == [(2, W, h, w) for h, w in LEVELS] * 2
    assert all(f.grad is not None and f.grad.device.type == "meta" for f in features)
