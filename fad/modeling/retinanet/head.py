"""RetinaNet's head over injected towers: box and cls towers, then the anchor predictors, shared
by the FPN levels."""

from __future__ import annotations

import torch
from torch import Tensor

from fad.modeling.head import TowerHead, flatten_predictions, init_predictors
from fad.search_space.towers import Tower


class RetinaNetTowerHead(TowerHead):
    """RetinaNet's head over injected towers: box tower, cls tower, then the anchor predictors.

    Args:
        box_tower: maps an FPN level [N, W, H, W'] to a box feature with W channels.
        cls_tower: called as `cls_tower(feature, box_feature)`, returns W channels (a FAD tower's
            first cell reads the box feature; a standard tower ignores it).
        in_channels: W, the FPN width.
        num_classes: K, class logits per anchor (object classes, no background).
        num_anchors: A, anchors per location.
        prior_prob: the initial probability of every class (the bias of the class logits).
    """

    def __init__(
        self,
        box_tower: Tower,
        cls_tower: Tower,
        in_channels: int,
        num_classes: int,
        num_anchors: int = 9,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__(
            box_tower, cls_tower, in_channels, num_anchors * num_classes, num_anchors * 4
        )
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        init_predictors(self.cls_logits, self.bbox_pred, prior_prob=prior_prob)

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        """FPN levels -> `cls_logits` [N, HWA, K] and `bbox_regression` [N, HWA, 4] (box coder
        deltas), levels concatenated in order."""
        cls_logits, bbox_regression = [], []
        box_features, cls_features = self.tower_features(features)
        for box_feature, cls_feature in zip(box_features, cls_features):
            cls_logits.append(flatten_predictions(self.cls_logits(cls_feature), self.num_classes))
            bbox_regression.append(flatten_predictions(self.bbox_pred(box_feature), 4))
        return {
            "cls_logits": torch.cat(cls_logits, dim=1),
            "bbox_regression": torch.cat(bbox_regression, dim=1),
        }
