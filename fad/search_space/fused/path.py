"""The fused compute path: a tower run once on a canvas of all FPN levels (see ``canvas``).

`FusedPath(tower)` is what `Tower.forward_levels` calls instead of its per-level loop once the
path is set (`fad.search_space.paths.use_compute_path`). It packs the levels, runs the tower's
own modules on the canvas (their parameters read, their structure followed: the standard
chain, the cells of a genotype, the search cells with their node weights drawn once), and
unpacks the levels of the result.

The canvas pays off where a tower's time is the fixed price of its many small calls: small maps,
few channels. On a CPU, above ``CPU_MAX_ELEMENTS`` (batch x the levels' pixels x channels of
the input) the canvas's extra passes (re-zeroed borders, concatenated edges, batched products)
cost more than the calls they save, and the path runs the tower's plain per-level loop instead:
the same function (the tests hold the two paths equal), chosen per input. Measured on the 2-core
dev machine, eager, batch 1 unless noted, fused / plain head time (docs/performance.md): the
demo's head (64 FPN channels) 0.69 at 128x160, 0.87 at batch 8, 1.23 at batch 16, 1.49 at
512x853; the R-50 head (256 channels, C=96) 0.78 at 128x160, 0.86 at batch 2, 1.20 at batch 4,
2.06 at 800x1333: the crossover is at ~3e5 elements for both. On a GPU the limit is not applied
(not measured: no device was lent; the canvas was built for launch-bound GPUs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow, conv, run_chain
from fad.search_space.fused.fixed import fixed_cell
from fad.search_space.fused.search import search_cell, supports
from fad.search_space.towers import CellTower, FixedTower, SearchTower, StandardTower, Tower

Executor = Callable[[Tower, Flow, Flow | None, Canvas], Flow]
CPU_MAX_ELEMENTS = 2**18  # fused below, plain above (module doc); fused is >= 10 % faster here


def _standard(tower: Tower, feature: Flow, box: Flow | None, canvas: Canvas) -> Flow:
    assert isinstance(tower, StandardTower)
    return run_chain(tower.layers, feature, canvas)


def _cells(tower: CellTower, feature: Flow, box: Flow | None, cell: Callable[..., Flow]) -> Flow:
    """Stack the cells as `towers._run_cells`, then the reduce conv."""
    s0, s1 = (feature if box is None else box), feature
    for module in tower.cells:
        s0, s1 = s1, cell(module, s0, s1)
    return s1


def _fixed(tower: Tower, feature: Flow, box: Flow | None, canvas: Canvas) -> Flow:
    assert isinstance(tower, FixedTower)
    out = _cells(tower, feature, box, lambda c, s0, s1: fixed_cell(c, s0, s1, canvas))
    return conv(tower.reduce, out, canvas)


def _search(tower: Tower, feature: Flow, box: Flow | None, canvas: Canvas) -> Flow:
    assert isinstance(tower, SearchTower)
    weights = tower.node_weights()  # once for every level (a sampling relaxation draws once)
    out = _cells(tower, feature, box, lambda c, s0, s1: search_cell(c, s0, s1, weights, canvas))
    return conv(tower.reduce, out, canvas)


def reach(module: nn.Module) -> int:
    """The widest reach of the module's convs beyond a pixel: the borders its canvas needs."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return max([1, *(m.dilation[0] * (m.kernel_size[0] // 2) for m in convs)])


class FusedPath:
    """The fused execution of one tower (built for it: `FusedPath.applies_to` says which)."""

    def __init__(self, tower: Tower) -> None:
        self.gap = reach(tower)
        self.executor = _executor(tower)

    @staticmethod
    def applies_to(tower: Tower) -> bool:
        """Standard and genotype towers, and search towers of RepShare edges (the naive mixed
        op keeps the per-level loop)."""
        return isinstance(tower, StandardTower | FixedTower) or (
            isinstance(tower, SearchTower) and all(supports(cell) for cell in tower.cells)
        )

    @staticmethod
    def pays_off(features: Sequence[Tensor]) -> bool:
        """Whether the canvas is worth it for these levels (module doc): always off the CPU."""
        if features[0].device.type != "cpu":
            return True
        return sum(f.numel() for f in features) <= CPU_MAX_ELEMENTS

    def __call__(
        self, tower: Tower, features: Sequence[Tensor], box_features: Sequence[Tensor] | None
    ) -> list[Tensor]:
        if not self.pays_off(features):
            return tower.forward_each_level(features, box_features)
        canvas = Canvas.for_levels(features, self.gap)
        feature = Flow(canvas.pack(features), True)
        box = None if box_features is None else Flow(canvas.pack(box_features), True)
        return canvas.unpack(self.executor(tower, feature, box, canvas).x)


def _executor(tower: Tower) -> Executor:
    if isinstance(tower, StandardTower):
        return _standard
    if isinstance(tower, FixedTower):
        return _fixed
    return _search
