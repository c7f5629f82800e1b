"""FCOS (the "imprv" variant) on torchvision's FCOS skeleton (forward), with fad's head (injected
towers), transform and candidate selection, and the original's locations, targets and losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOS

from fad.modeling.candidates import Selection, select_candidates
from fad.modeling.detector import OneStageDetector
from fad.modeling.fcos.head import FCOSTowerHead
from fad.modeling.fcos.locations import LocationGrid
from fad.modeling.fcos.loss import decode_ltrb, fcos_losses, match_locations
from fad.modeling.loss import FocalLoss
from fad.modeling.transform import TrainTestTransform


class FCOSDetector(OneStageDetector, FCOS):
    """FCOS whose head is an `FCOSTowerHead` (towers injected).

    `forward(images, targets)` returns the loss dict (`loss_cls`, `loss_reg`, `loss_centerness`)
    in training mode and a list of detections (`boxes` xyxy in input-image pixels, `scores`,
    `labels` 1..K) in eval mode, as torchvision's detectors do.

    As the original FCOS: locations on the nominal grid of `strides` (`LocationGrid`), and at
    inference the candidates of a level are the (location, class) pairs whose class probability
    exceeds `score_thresh`; the best `topk_candidates` of them by probability x centerness are
    decoded and scored sqrt(probability x centerness), then class-wise NMS keeps at most
    `detections_per_img`. Only the first `reported_classes` class logits become detections (the
    original's NUM_CLASSES may exceed the dataset's classes; the others are always negatives).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: FCOSTowerHead,
        transform: TrainTestTransform,
        *,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        center_sampling_radius: float = 1.5,
        norm_reg_targets: bool = True,
        iou_loss_type: str = "giou",
        selection: Selection,
        focal: FocalLoss,
    ) -> None:
        super().__init__(
            backbone,
            head,
            transform,
            num_classes=head.cls_logits.out_channels,
            selection=selection,
            focal=focal,
            center_sampling_radius=center_sampling_radius,
        )
        self.anchor_generator = LocationGrid(strides)
        self.norm_reg_targets = norm_reg_targets
        self.iou_loss_type = iou_loss_type

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        num_anchors_per_level: list[int],
    ) -> dict[str, Tensor]:
        matched = [
            match_locations(a, t["boxes"], num_anchors_per_level, self.center_sampling_radius)
            for a, t in zip(anchors, targets)
        ]
        return fcos_losses(
            head_outputs,
            anchors,
            targets,
            matched,
            norm_reg_targets=self.norm_reg_targets,
            focal=self.focal,
            iou_loss_type=self.iou_loss_type,
        )

    def level_detections(
        self, outputs: dict[str, Tensor], anchors: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`cls_logits` [HW, K'], `bbox_ctrness` [HW, 1], `bbox_regression` [HW, 4] and locations
        [HW, 4] -> boxes [D, 4], scores [D] (sqrt(probability x centerness)), labels [D] (1..K)."""
        probs = self.reported_probs(outputs["cls_logits"])
        ranking = probs * torch.sigmoid(outputs["bbox_ctrness"])
        location, label, products = select_candidates(
            probs, ranking, self.score_thresh, self.topk_candidates
        )
        regression = outputs["bbox_regression"][location]
        boxes = decode_ltrb(anchors[location], regression, self.norm_reg_targets)
        return boxes, torch.sqrt(products), label + 1
