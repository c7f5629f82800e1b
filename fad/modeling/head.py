"""What every detector head shares: injected (box, cls) towers run over the FPN levels, the
class and box predictors after them, their init, and the layout of their outputs."""

from __future__ import annotations

import math

from torch import Tensor, nn

from fad.search_space.towers import Tower


def init_predictors(cls_logits: nn.Conv2d, *others: nn.Conv2d, prior_prob: float) -> None:
    """The predictors' init of FCOS and RetinaNet: weights N(0, 0.01), biases 0, except the class
    logits' bias, -log((1 - p) / p), so that every class starts at probability `prior_prob`."""
    for layer in (cls_logits, *others):
        nn.init.normal_(layer.weight, std=0.01)
        nn.init.constant_(layer.bias, 0.0)
    nn.init.constant_(cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))


def tower_features(
    box_tower: Tower, cls_tower: Tower, features: list[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """(box features, cls features) of every FPN level: the box tower over all levels, then the
    cls tower over all levels with the box features (a FAD cls tower's first cell reads them; a
    standard one ignores them). The one place a head calls its towers, through
    `Tower.forward_levels`, where a compute path that runs all levels at once plugs in."""
    box_features = box_tower.forward_levels(features)
    return box_features, cls_tower.forward_levels(features, box_features)


def flatten_predictions(x: Tensor, channels: int) -> Tensor:
    """[N, A * C, H, W] -> [N, H * W * A, C]: locations row-major, A predictions of C values each
    (A = 1 for one prediction per location)."""
    n, _, h, w = x.shape
    return x.view(n, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, channels)


class TowerHead(nn.Module):
    """A head over injected towers: box tower, cls tower, then 3x3 predictors shared by the levels.

    Args:
        box_tower: maps an FPN level [N, W, H, W'] to a box feature with W channels.
        cls_tower: called as `cls_tower(feature, box_feature)`, returns W channels.
        in_channels: W, the FPN width.
        cls_outputs: channels of `cls_logits` (A x K: K class logits for each of A anchors).
        box_outputs: channels of `bbox_pred` (A x 4).

    Subclasses add their own predictors after these and init them all (`init_predictors`).
    """

    def __init__(
        self,
        box_tower: Tower,
        cls_tower: Tower,
        in_channels: int,
        cls_outputs: int,
        box_outputs: int,
    ) -> None:
        super().__init__()
        self.box_tower = box_tower
        self.cls_tower = cls_tower
        self.cls_logits = nn.Conv2d(in_channels, cls_outputs, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, box_outputs, 3, padding=1)

    def tower_features(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """(box features, cls features) of every level (see `tower_features`)."""
        return tower_features(self.box_tower, self.cls_tower, features)
