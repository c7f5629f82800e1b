"""The cost model of a budgeted search: exact on genotypes, differentiable under op weights, and
the penalty steers the alphas towards cheaper ops only above the budget."""

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.modeling.build import build_detector
from fad.modeling.cost import count_flops
from fad.search.budget import Budget, _level_sizes, cost_model
from fad.search_space.genotype import Genotype
from fad.search_space.towers import alphas, search_towers

OPTS = [
    "MODEL.FAD_ON", "True",
    "MODEL.FAD.SEARCH", "True",
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FAD.NUM_CELLS_BOX", "1",
    "MODEL.FAD.NUM_CELLS_CLS", "1",
    "MODEL.FAD.NUM_NODES_BOX", "2",
    "MODEL.FAD.NUM_NODES_CLS", "2",
    "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "96",
    "SOLVER.SEARCH.COST_CELLS", "2",  # the trained head stacks two cells
]  # fmt: skip
CHEAP, COSTLY = "sinSep_conv_3x3", "std_conv_3x3_x3"


def _genotype(ops: list[str]) -> Genotype:
    normal = [[(ops[0], 0), (ops[1], 1)], [(ops[2], 2), (ops[3], 0)]]
    return Genotype(normal=normal, normal_concat=range(2, 4))


def _counted(cfg, genotypes) -> float:
    trained = cfg.clone()
    trained.defrost()
    trained.MODEL.FAD.SEARCH = False
    trained.MODEL.FAD.NUM_CELLS_BOX = trained.MODEL.FAD.NUM_CELLS_CLS = 2
    with torch.device("meta"):
        head = build_detector(trained, 3, genotypes, load_weights=False).head
    levels = [torch.empty(1, 32, h, w, device="meta") for h, w in _level_sizes(cfg)]
    with torch.no_grad():
        return count_flops(lambda: head(levels))


def test_the_cost_of_a_genotype_is_the_counted_cost_of_its_trained_head():
    cfg = load_config(None, OPTS)
    costs = cost_model(cfg, 3)
    genotypes = {
        "box": _genotype([CHEAP, COSTLY, "std_conv_3x3+dil_conv_3x3", CHEAP]),
        "cls": _genotype([COSTLY, COSTLY, "sinSep_conv_3x3_x2", CHEAP]),
    }
    assert costs.of_genotypes(genotypes) == pytest.approx(_counted(cfg, genotypes), rel=1e-9)
    assert costs.op_flops["box"][COSTLY] > 10 * costs.op_flops["box"][CHEAP]


def test_the_expected_cost_of_decided_alphas_is_their_genotypes_cost():
    cfg = load_config(None, OPTS)
    costs = cost_model(cfg, 3)
    model = build_detector(cfg, 3, None, load_weights=False)
    towers = list(search_towers(model))
    with torch.no_grad():
        for tower in towers:
            for alpha in tower.alphas:
                alpha.zero_()[:, tower.op_names.index(COSTLY)] = 50.0  # every edge: COSTLY
    same = {role: _genotype([COSTLY] * 4) for role in ("box", "cls")}
    with torch.no_grad():
        assert costs.expected(towers).item() == pytest.approx(costs.of_genotypes(same), rel=1e-6)


def test_the_penalty_is_zero_under_the_budget_and_moves_alphas_to_cheaper_ops_above():
    cfg = load_config(None, OPTS)
    costs = cost_model(cfg, 3)
    model = build_detector(cfg, 3, None, load_weights=False)
    towers = list(search_towers(model))
    expected = costs.expected(towers).item() / 1e9
    assert Budget(2 * expected, 1.0, costs).penalty(towers).item() == 0.0
    budget = Budget(expected / 2, 1.0, costs)
    assert budget.penalty(towers).item() == pytest.approx(1.0, rel=1e-4)
    optimizer = torch.optim.Adam(alphas(model), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        budget.penalty(towers).backward()
        optimizer.step()
    assert costs.expected(towers).item() / 1e9 < 0.8 * expected
    box = towers[0]
    weights = torch.softmax(box.alphas[0].detach(), -1)[0]
    assert weights[box.op_names.index(CHEAP)] > weights[box.op_names.index(COSTLY)]
    report = budget.report(model, {t.role: t.genotype() for t in towers})
    assert report["budget_gflops"] == expected / 2 and report["genotype_gflops"] > 0
