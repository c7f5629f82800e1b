"""RetinaNet on torchvision's RetinaNet skeleton (transform, forward, candidate selection), with
fad's head (injected towers), the original's anchors (`fad.modeling.anchors`) and the original's
targets and losses (`fad.modeling.retinanet_loss`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.retinanet import RetinaNet

from fad.modeling.anchors import AnchorGrid
from fad.modeling.fcos import TrainTestTransform
from fad.modeling.head import init_predictors
from fad.modeling.retinanet_loss import BOX_CODER_WEIGHTS, match_anchors, retinanet_losses
from fad.runtime.precision import in_float32


def _flatten_anchors(x: Tensor, channels: int) -> Tensor:
    """[N, A * C, H, W] -> [N, H * W * A, C] (locations row-major, A anchors each)."""
    n, _, h, w = x.shape
    return x.view(n, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, channels)


class RetinaNetTowerHead(nn.Module):
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
        box_tower: nn.Module,
        cls_tower: nn.Module,
        in_channels: int,
        num_classes: int,
        num_anchors: int = 9,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.box_tower = box_tower
        self.cls_tower = cls_tower
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        init_predictors(self.cls_logits, self.bbox_pred, prior_prob=prior_prob)

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        """FPN levels -> `cls_logits` [N, HWA, K] and `bbox_regression` [N, HWA, 4] (box coder
        deltas), levels concatenated in order."""
        cls_logits, bbox_regression = [], []
        box_features = self.box_tower.forward_levels(features)
        cls_features = self.cls_tower.forward_levels(features, box_features)
        for box_feature, cls_feature in zip(box_features, cls_features):
            cls_logits.append(_flatten_anchors(self.cls_logits(cls_feature), self.num_classes))
            bbox_regression.append(_flatten_anchors(self.bbox_pred(box_feature), 4))
        return {
            "cls_logits": torch.cat(cls_logits, dim=1),
            "bbox_regression": torch.cat(bbox_regression, dim=1),
        }


class RetinaNetDetector(RetinaNet):
    """RetinaNet whose head is a `RetinaNetTowerHead` (towers injected).

    `forward(images, targets)` returns the loss dict (`loss_retina_cls`, `loss_retina_reg`) in
    training mode and a list of detections (`boxes` xyxy in input-image pixels, `scores`,
    `labels` 1..K) in eval mode.

    As the original: anchors from `anchor_generator` (an `AnchorGrid`), the box coder's weights
    (10, 10, 5, 5), targets and losses of `fad.modeling.retinanet_loss`; at inference, per level,
    the (anchor, class) pairs whose probability exceeds `score_thresh`, the best
    `topk_candidates` of them, decoded and clipped, then class-wise NMS keeps at most
    `detections_per_img`, scored by the class probability. Only the first `reported_classes`
    class logits become detections (the others are always negatives).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: RetinaNetTowerHead,
        transform: TrainTestTransform,
        anchor_generator: AnchorGrid,
        *,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.4,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.4,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        bbox_reg_beta: float = 0.11,
        bbox_reg_weight: float = 4.0,
        reported_classes: int | None = None,
    ) -> None:
        super().__init__(
            backbone,
            num_classes=head.num_classes,
            anchor_generator=anchor_generator,
            head=head,
            fg_iou_thresh=fg_iou_thresh,
            bg_iou_thresh=bg_iou_thresh,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
        )
        self.transform = transform
        self.box_coder = BoxCoder(weights=BOX_CODER_WEIGHTS)
        self.reported_classes = reported_classes or head.num_classes
        self.loss_options = {
            "focal_alpha": focal_alpha,
            "focal_gamma": focal_gamma,
            "bbox_reg_beta": bbox_reg_beta,
            "bbox_reg_weight": bbox_reg_weight,
        }

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
    ) -> dict[str, Tensor]:
        matched = [
            match_anchors(self.proposal_matcher, a, t["boxes"]) for a, t in zip(anchors, targets)
        ]
        return retinanet_losses(
            head_outputs, anchors, targets, matched, self.box_coder, **self.loss_options
        )

    @in_float32
    def postprocess_detections(
        self,
        head_outputs: dict[str, list[Tensor]],
        anchors: list[list[Tensor]],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """torchvision's selection (see the class doc) on the reported classes, labels 1..K;
        in float32, outside autocast."""
        logits = [level[..., : self.reported_classes] for level in head_outputs["cls_logits"]]
        detections = super().postprocess_detections(
            {**head_outputs, "cls_logits": logits}, anchors, image_shapes
        )
        for found in detections:
            found["labels"] = found["labels"] + 1
        return detections
