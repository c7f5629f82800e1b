"""The parts every head shares: the box-then-cls tower call, the predictors' init and layout."""

from __future__ import annotations

import pytest
import torch

from fad.modeling.fcos.head import FCOSTowerHead
from fad.modeling.head import flatten_predictions, tower_features
from fad.modeling.retinanet.head import RetinaNetTowerHead
from fad.search_space.genotype import PRESETS
from fad.search_space.towers import CellTowerSpec, TowerSpec, build_towers

W = 32


def _towers():
    box, cls = PRESETS["paper"]
    spec = TowerSpec(
        mode="genotype",
        channels=W,
        box=CellTowerSpec(num_cells=1, edge_channels=W, genotype=box),
        cls=CellTowerSpec(num_cells=1, edge_channels=W, genotype=cls),
    )
    return build_towers(spec)


def test_the_cls_tower_reads_the_box_features_of_each_level():
    torch.manual_seed(0)
    box_tower, cls_tower = _towers()
    features = [torch.randn(1, W, 6, 8), torch.randn(1, W, 3, 4)]
    box, cls = tower_features(box_tower, cls_tower, features)
    for feature, b, c in zip(features, box, cls):
        assert torch.equal(b, box_tower(feature))
        assert torch.equal(c, cls_tower(feature, b))
        assert not torch.allclose(c, cls_tower(feature, feature))  # it does read them


@pytest.mark.parametrize("make", [FCOSTowerHead, RetinaNetTowerHead])
def test_heads_share_the_tower_call_and_the_predictor_init(make):
    torch.manual_seed(0)
    head = make(*_towers(), in_channels=W, num_classes=3, prior_prob=0.05)
    prior = torch.sigmoid(head.cls_logits.bias)
    assert torch.allclose(prior, torch.full_like(prior, 0.05))
    assert head.bbox_pred.bias.abs().sum() == 0 and head.cls_logits.weight.std() < 0.02
    features = [torch.randn(2, W, 4, 6)]
    outputs = head(features)
    box, cls = head.tower_features(features)
    logits = flatten_predictions(head.cls_logits(cls[0]), 3)
    assert torch.equal(outputs["cls_logits"], logits)


def test_flatten_predictions_is_location_major_then_prediction():
    x = torch.arange(2 * 3 * 2 * 2.0).view(1, 2 * 3, 2, 2)  # A=2 predictions of C=3 values
    flat = flatten_predictions(x, 3)
    assert flat.shape == (1, 2 * 2 * 2, 3)
    assert flat[0, 1 * 2 + 1].tolist() == x[0, 3:6, 0, 1].tolist()  # location (0, 1), second
