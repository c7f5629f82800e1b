"""The FCOS head over injected towers: box and cls towers, then FCOS's predictors, shared by the
FPN levels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fad.modeling.head import TowerHead, flatten_predictions, init_predictors
from fad.search_space.towers import Tower


class Scale(nn.Module):
    """A learnable scalar per FPN level on the box regression (as FCOS)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value]))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class FCOSTowerHead(TowerHead):
    """FCOS's head over injected towers: box tower, cls tower, then the FCOS predictors.

    Args:
        box_tower: maps an FPN level [N, W, H, W'] to a box feature with W channels.
        cls_tower: called as `cls_tower(feature, box_feature)`, returns W channels. A standard tower
            ignores `box_feature`; a FAD tower feeds it to its first cell (it sees the box
            representation).
        in_channels: W, the FPN width.
        num_classes: class logits (object classes, no background).
        num_levels: FPN levels (one Scale each).
        prior_prob: the initial probability of every class (the bias of the class logits).
        norm_reg_targets: regress ltrb in units of the stride, relu(scale * x) (the imprv
            variant); False: in pixels, exp(scale * x) (plain FCOS).
        centerness_on_reg: centerness from the box feature (imprv); False: from the cls feature.
    """

    def __init__(
        self,
        box_tower: Tower,
        cls_tower: Tower,
        in_channels: int,
        num_classes: int,
        num_levels: int = 5,
        prior_prob: float = 0.01,
        *,
        norm_reg_targets: bool = True,
        centerness_on_reg: bool = True,
    ) -> None:
        super().__init__(box_tower, cls_tower, in_channels, num_classes, 4)
        self.norm_reg_targets = norm_reg_targets
        self.centerness_on_reg = centerness_on_reg
        self.centerness = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        init_predictors(self.cls_logits, self.bbox_pred, self.centerness, prior_prob=prior_prob)

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        """FPN levels -> `cls_logits` [N, HW, K], `bbox_regression` [N, HW, 4] (ltrb distances,
        non-negative, per stride or in pixels) and `bbox_ctrness` [N, HW, 1], levels
        concatenated in order."""
        cls_logits, bbox_regression, ctrness = [], [], []
        box_features, cls_features = self.tower_features(features)
        for level, (box_feature, cls_feature) in enumerate(zip(box_features, cls_features)):
            regression = self.scales[level](self.bbox_pred(box_feature))
            regression = torch.relu(regression) if self.norm_reg_targets else torch.exp(regression)
            ctr_feature = box_feature if self.centerness_on_reg else cls_feature
            logits = self.cls_logits(cls_feature)
            cls_logits.append(flatten_predictions(logits, self.cls_logits.out_channels))
            bbox_regression.append(flatten_predictions(regression, 4))
            ctrness.append(flatten_predictions(self.centerness(ctr_feature), 1))
        return {
            "cls_logits": torch.cat(cls_logits, dim=1),
            "bbox_regression": torch.cat(bbox_regression, dim=1),
            "bbox_ctrness": torch.cat(ctrness, dim=1),
        }
