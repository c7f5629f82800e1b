"""A head within a budget: the searched head's expected FLOPs under the op weights, and a penalty
on the alpha loss when they exceed SOLVER.SEARCH.COST_BUDGET.

The head a genotype makes costs `base` (predictors, reduce convs, the cells' input maps and the
edges' 1x1 convs: the same for every genotype of the space) plus, for each cell and each kept
edge, the FLOPs of its op on every FPN level. Both are counted as `fad.modeling.cost` counts
(convolutions only, a multiply-add = 2 FLOPs, one image of INPUT.MIN_SIZE_TEST x MAX_SIZE_TEST)
on the head the genotype will be trained in: SOLVER.SEARCH.COST_CELLS cells per tower (0: the
search's own). The sum is exact for a genotype (the counts add up). Under the op weights, an edge's
op costs sum_j q_j c_j with q = softmax(alpha) over the ops other than `none` (a genotype never
keeps `none`), and each of a node's 2 + k edges counts 2 / (2 + k) (a node keeps two): the
expected cost is then differentiable in the alphas. The penalty added to the alpha loss is

    COST_WEIGHT * max(0, expected / COST_BUDGET - 1),

zero within the budget; its gradient, unlike the detection loss's, is the same at every step, so
above the budget it steers the alphas towards cheaper ops until the expected cost is back under.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from yacs.config import CfgNode as CN

from fad.modeling.build import build_detector
from fad.modeling.cost import count_flops
from fad.search_space.genotype import EDGES_PER_NODE, INPUT_NODES, ROLES, Genotype
from fad.search_space.ops import NONE, build_op, space_ops
from fad.search_space.towers import SearchTower, search_towers


def _uniform_genotype(num_nodes: int, op: str) -> Genotype:
    normal = [[(op, 0), (op, 1)] for _ in range(num_nodes)]
    return Genotype(normal=normal, normal_concat=range(INPUT_NODES, INPUT_NODES + num_nodes))


def _level_sizes(cfg: CN) -> list[tuple[int, int]]:
    """The FPN levels' sizes for one padded test image (strides 8 .. 128)."""
    divisor = max(cfg.DATALOADER.SIZE_DIVISIBILITY, 1)
    height = -(-cfg.INPUT.MIN_SIZE_TEST // divisor) * divisor
    width = -(-cfg.INPUT.MAX_SIZE_TEST // divisor) * divisor
    return [(-(-height // s), -(-width // s)) for s in (8, 16, 32, 64, 128)]


@dataclass(frozen=True)
class CostModel:
    """FLOPs of the trained head: `base` plus, per role, `cells` x (per kept edge) op FLOPs."""

    base: float
    cells: dict[str, int]
    op_flops: dict[str, dict[str, float]]  # role -> op -> FLOPs of one edge's op on all levels

    def of_genotypes(self, genotypes: dict[str, Genotype]) -> float:
        """The head's FLOPs with these genotypes (exact)."""
        total = self.base
        for role, genotype in genotypes.items():
            ops = [op for node in genotype.normal for op, _ in node]
            total += self.cells[role] * sum(self.op_flops[role][op] for op in ops)
        return total

    def expected(self, towers: list[SearchTower]) -> Tensor:
        """The head's expected FLOPs under the towers' op weights (differentiable)."""
        total = torch.tensor(self.base, device=towers[0].alphas[0].device)
        for tower in towers:
            ops = [name for name in tower.op_names if name != NONE]
            keep = [tower.op_names.index(name) for name in ops]
            costs = torch.tensor([self.op_flops[tower.role][name] for name in ops])
            for alpha in tower.alphas:
                q = torch.softmax(alpha[:, keep], dim=-1)  # [2 + k, ops without none]
                share = EDGES_PER_NODE / alpha.shape[0]  # a node keeps 2 of its 2 + k edges
                total = total + self.cells[tower.role] * share * (q @ costs.to(q)).sum()
        return total


def cost_model(cfg: CN, num_classes: int) -> CostModel:
    """Count the base and the per-op FLOPs of the head SOLVER.SEARCH.COST_CELLS describes."""
    fad = cfg.MODEL.FAD
    nodes = {"box": fad.NUM_NODES_BOX, "cls": fad.NUM_NODES_CLS}
    cells = {
        role: cfg.SOLVER.SEARCH.COST_CELLS or fad[f"NUM_CELLS_{role.upper()}"] for role in ROLES
    }
    trained = cfg.clone()
    trained.defrost()
    trained.MODEL.FAD.SEARCH = False
    trained.MODEL.WEIGHT = ""
    for role in ROLES:
        trained.MODEL.FAD[f"NUM_CELLS_{role.upper()}"] = cells[role]
    levels = _level_sizes(cfg)
    op_flops = {}
    for role in ROLES:
        width = fad[f"NUM_CHANNELS_{role.upper()}"]
        op_flops[role] = {
            name: float(_op_flops(name, width, levels))
            for name in space_ops(fad.SPACE)
            if name != NONE
        }
    any_op = next(iter(op_flops["box"]))
    genotypes = {role: _uniform_genotype(nodes[role], any_op) for role in ROLES}
    head = _head_flops(trained, num_classes, genotypes, levels)
    kept = {role: EDGES_PER_NODE * nodes[role] for role in ROLES}
    base = head - sum(cells[r] * kept[r] * op_flops[r][any_op] for r in ROLES)
    return CostModel(base, cells, op_flops)


def _op_flops(name: str, channels: int, levels: list[tuple[int, int]]) -> int:
    with torch.device("meta"):
        op = build_op(name, channels)
    with torch.no_grad():
        return sum(
            count_flops(lambda h=h, w=w: op(torch.empty(1, channels, h, w, device="meta")))
            for h, w in levels
        )


def _head_flops(
    cfg: CN, num_classes: int, genotypes: dict[str, Genotype], levels: list[tuple[int, int]]
) -> int:
    with torch.device("meta"):
        head = build_detector(cfg, num_classes, genotypes, load_weights=False).head
    width = cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS
    features = [torch.empty(1, width, h, w, device="meta") for h, w in levels]
    with torch.no_grad():
        return count_flops(lambda: head(features))


@dataclass(frozen=True)
class Budget:
    """SOLVER.SEARCH.COST_BUDGET (GFLOPs of the trained head), COST_WEIGHT, and the cost model."""

    gflops: float
    weight: float
    costs: CostModel

    def penalty(self, towers: list[SearchTower]) -> Tensor:
        """COST_WEIGHT * max(0, expected / budget - 1)."""
        return self.weight * torch.relu(self.costs.expected(towers) / 1e9 / self.gflops - 1.0)

    def report(self, model: nn.Module, genotypes: dict[str, Genotype]) -> dict[str, float]:
        """The budget beside the expected cost and the derived genotypes' cost, in GFLOPs."""
        with torch.no_grad():
            expected = float(self.costs.expected(list(search_towers(model)))) / 1e9
        return {
            "budget_gflops": self.gflops,
            "expected_gflops": expected,
            "genotype_gflops": self.costs.of_genotypes(genotypes) / 1e9,
        }
