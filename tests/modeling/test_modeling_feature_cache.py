"""The feature cache: the plain backbone's features, computed once per image, within a budget;
only a frozen backbone takes it; the state_dict is untouched."""

from __future__ import annotations

import pytest
import torch

from fad.errors import FadError
from fad.modeling.backbone import build_resnet_fpn
from fad.modeling.feature_cache import disable_feature_cache, enable_feature_cache


class Holder(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone


def _frozen() -> Holder:
    torch.manual_seed(0)
    backbone = build_resnet_fpn(18, out_channels=32, norm="FrozenBN", freeze_at=5, freeze_fpn=True)
    return Holder(backbone).train()


def test_cached_features_equal_the_plain_ones_and_are_computed_once_per_image():
    model = _frozen()
    images = torch.rand(3, 3, 64, 96)
    with torch.no_grad():
        plain = model.backbone(images)
    keys = set(model.state_dict())
    cache = enable_feature_cache(model, budget_mb=100)
    first = model.backbone(images)
    again = model.backbone(images[[2, 0]])  # other batch, same images
    assert (cache.misses, cache.hits) == (3, 2)
    for name, level in plain.items():
        torch.testing.assert_close(first[name], level, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(again[name], level[[2, 0]], rtol=1e-5, atol=1e-6)
    flipped = model.backbone(images.flip(-1)[:1])  # another image
    assert cache.misses == 4 and not torch.equal(flipped["0"], first["0"][:1])
    assert set(model.state_dict()) == keys
    disable_feature_cache(model)
    model.backbone(images)
    assert cache.misses == 4


def test_the_budget_bounds_what_the_cache_keeps():
    model = _frozen()
    cache = enable_feature_cache(model, budget_mb=0.025)  # 2 of the 4 images (11 KiB each)
    images = torch.rand(4, 3, 64, 64)
    model.backbone(images)
    assert 0 < len(cache.entries) < 4 and cache.bytes <= cache.budget
    model.backbone(images[:1])  # evicted first: computed again
    assert cache.misses == 5


def test_only_a_frozen_backbone_takes_a_cache():
    trainable = Holder(build_resnet_fpn(18, out_channels=32, norm="FrozenBN", freeze_at=2))
    with pytest.raises(FadError, match="needs a frozen backbone .* trains"):
        enable_feature_cache(trainable, 10)
    batchnorm = Holder(
        build_resnet_fpn(18, out_channels=32, norm="BN", freeze_at=5, freeze_fpn=True)
    )
    for p in batchnorm.parameters():
        p.requires_grad_(False)
    with pytest.raises(FadError, match="NORM FrozenBN"):
        enable_feature_cache(batchnorm, 10)
