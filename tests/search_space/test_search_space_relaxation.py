"""Relaxations and what the cells do with them: sampled op subsets, partial channels, edge weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fad.errors import FadError
from fad.search_space.cells import SearchCell, SearchEdge
from fad.search_space.genotype import derive_genotype
from fad.search_space.ops import SPACES
from fad.search_space.relaxation import GumbelSample, NodeWeights, softmax_relaxation
from fad.search_space.towers import CellTowerSpec, TowerSpec, alphas, build_tower

OPS = SPACES["released"]
W, C = 32, 32


def _small_search_spec(**kwargs: object) -> TowerSpec:
    """Search towers of one cell of 2 nodes on W channels, edges of C."""
    tower = CellTowerSpec(num_cells=1, num_nodes=2, edge_channels=C)
    return TowerSpec(mode="search", channels=W, box=tower, cls=tower, **kwargs)


@pytest.mark.parametrize("repshare", [True, False])
def test_an_edge_with_active_ops_equals_the_full_edge_with_the_others_weighted_zero(repshare):
    torch.manual_seed(0)
    edge = SearchEdge(OPS, W, C, repshare).eval()
    x = torch.randn(2, W, 6, 7)
    weights = torch.rand(len(OPS))
    active = (1, 4, 8)  # std + dil, sinSep, sinSep x3
    masked = torch.zeros_like(weights)
    masked[list(active)] = weights[list(active)]
    with torch.no_grad():
        torch.testing.assert_close(edge(x, weights, active), edge(x, masked), rtol=1e-5, atol=1e-6)
        assert edge(x, weights, (len(OPS) - 1,)) is None  # only 'none': nothing computed


def test_partial_channels_send_only_a_part_through_the_ops():
    torch.manual_seed(0)
    edge = SearchEdge(OPS, W, C, True, partial=4)
    assert edge.mixed.stacks[0].convs[0].body.weight.shape[0] == C // 4
    assert edge.mixed.stacks[0].convs[0].norm.num_groups == C // 4  # one group per channel
    x = torch.randn(2, W, 5, 5)
    zero = torch.zeros(len(OPS))
    with torch.no_grad():  # all op weights 0: only the bypassed channels reach the output
        narrow = edge.narrow(x)
        bypass = torch.cat([torch.zeros_like(narrow[:, : C // 4]), narrow[:, C // 4 :]], 1)
        torch.testing.assert_close(edge(x, zero), edge.widen(bypass))
    with pytest.raises(FadError, match="cannot be split in 3"):
        SearchEdge(OPS, W, C, True, partial=3)


def test_edge_weights_scale_each_edge_of_a_node():
    torch.manual_seed(0)
    cell = SearchCell(1, (W, W), W, C, OPS).eval()
    s0, s1 = torch.randn(1, W, 4, 4), torch.randn(1, W, 4, 4)
    ops = torch.softmax(torch.randn(2, len(OPS)), -1)
    with torch.no_grad():
        only_s1 = cell(s0, s1, [NodeWeights(ops, None, torch.tensor([0.0, 1.0]))])
        edge = cell.nodes[0][1]
        torch.testing.assert_close(only_s1, edge(s1, ops[1]), rtol=1e-5, atol=1e-6)


def test_gumbel_sample_is_one_hot_with_soft_gradients_and_reproducible():
    alpha = torch.zeros(3, len(OPS), requires_grad=True)
    first = GumbelSample(1.0, torch.Generator().manual_seed(5))([alpha])[0]
    again = GumbelSample(1.0, torch.Generator().manual_seed(5))([alpha])[0]
    assert torch.equal(first.ops.detach().sum(-1), torch.ones(3))
    assert set(first.ops.detach().unique().tolist()) == {0.0, 1.0}
    assert first.active == again.active
    assert all(first.ops[e, i] == 1 for e, (i,) in enumerate(first.active))
    (first.ops * torch.arange(len(OPS))).sum().backward()
    assert alpha.grad.abs().sum() > 0  # straight-through: the soft weights' gradient


def test_softmax_relaxation_is_darts_and_derivation_ranks_by_edge_weight():
    alpha = torch.zeros(3, len(OPS))
    alpha[0, 0] = alpha[1, 1] = alpha[2, 2] = 2.0  # every edge equally sure of its op
    node = softmax_relaxation([alpha], [torch.tensor([0.0, 1.0, 2.0])])[0]
    torch.testing.assert_close(node.ops, F.softmax(alpha, -1))
    genotype = derive_genotype([alpha], OPS, [node.edges])
    assert [index for _, index in genotype.normal[0]] == [2, 1]  # by edge weight


def test_a_sampling_tower_draws_once_for_all_levels_and_edge_normalisation_adds_betas():
    spec = _small_search_spec(edge_normalization=True, partial_channels=2)
    tower = build_tower(spec, "box")
    assert len(alphas(tower)) == 4  # 2 alphas + 2 betas
    calls = []
    real = GumbelSample(1.0, torch.Generator().manual_seed(0))
    tower.relaxation = lambda a, b: calls.append(1) or real(a, b)
    outs = tower.forward_levels([torch.randn(1, W, 8, 8), torch.randn(1, W, 4, 4)])
    assert len(calls) == 1 and [o.shape[-1] for o in outs] == [8, 4]


def test_a_search_without_none_and_decouple_convs_starting_as_the_identity():
    spec = _small_search_spec(search_none=False, decouple_init="identity")
    tower = build_tower(spec, "box")
    assert "none" not in tower.op_names and tower.alphas[0].shape == (2, len(OPS) - 1)
    tower.genotype()  # derived without a 'none' column
    stack = tower.cells[0].nodes[0][0].mixed.stacks[0]
    decoupled = [conv for conv in stack.decouple if isinstance(conv, torch.nn.Conv2d)]
    assert decoupled and all(torch.equal(c.weight[:, :, 0, 0], torch.eye(C)) for c in decoupled)
    x = torch.rand(1, C, 5, 5)
    with torch.no_grad():  # a decoupled op's result is the op's own output
        torch.testing.assert_close(stack(x)[0], stack.shared_results(x)[0])
    with pytest.raises(FadError, match="unknown decouple init"):
        TowerSpec(mode="search", decouple_init="zeros")


def test_fixed_op_scales_freeze_every_op_norm_and_decouple_but_not_the_alphas():
    spec = _small_search_spec(search_affine=False)
    tower = build_tower(spec, "box")
    edge = tower.cells[0].nodes[0][0]
    frozen = [n for n, p in edge.named_parameters() if not p.requires_grad]
    norms = [m for m in edge.mixed.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(torch.equal(m.weight, torch.ones(C)) and not m.bias.any() for m in norms)
    assert all(not m.weight.requires_grad and not m.bias.requires_grad for m in norms)
    assert any(".decouple." in n for n in frozen)
    assert all(".decouple." in n or ".norm." in n for n in frozen)
    assert edge.mixed.stacks[0].convs[0].body.weight.requires_grad
    assert all(a.requires_grad for a in tower.alphas)
    # an op's output is its unit's normalised output: doubling its weight doubles its share
    x = torch.randn(2, C, 6, 6)
    one = torch.zeros(len(OPS))
    one[0] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(edge.mixed(x, 2 * one), 2 * edge.mixed(x, one))
        unit = edge.mixed.stacks[0].convs[0]
        z = unit.norm(unit.body(x))
        torch.testing.assert_close(edge.mixed(x, one), torch.relu(z))
