"""RetinaNet on torchvision's RetinaNet skeleton (forward, matcher), with fad's head (injected
towers), transform and candidate selection, the original's anchors
(`fad.modeling.retinanet.anchors`) and the original's targets and losses
(`fad.modeling.retinanet.loss`)."""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.retinanet import RetinaNet

from fad.modeling.candidates import Selection, select_candidates
from fad.modeling.detector import OneStageDetector
from fad.modeling.loss import FocalLoss
from fad.modeling.retinanet.anchors import AnchorGrid
from fad.modeling.retinanet.head import RetinaNetTowerHead
from fad.modeling.retinanet.loss import BOX_CODER_WEIGHTS, match_anchors, retinanet_losses
from fad.modeling.transform import TrainTestTransform


class RetinaNetDetector(OneStageDetector, RetinaNet):
    """RetinaNet whose head is a `RetinaNetTowerHead` (towers injected).

    `forward(images, targets)` returns the loss dict (`loss_retina_cls`, `loss_retina_reg`) in
    training mode and a list of detections (`boxes` xyxy in input-image pixels, `scores`,
    `labels` 1..K) in eval mode.

    As the original: anchors from `anchor_generator` (an `AnchorGrid`), the box coder's weights
    (10, 10, 5, 5), targets and losses of `fad.modeling.retinanet.loss`; at inference, per level,
    the (anchor, class) pairs whose probability exceeds `score_thresh`, the best
    `topk_candidates` of them, decoded and clipped, then class-wise NMS keeps at most
    `detections_per_img`, scored by the class probability. Only the first `reported_classes` class logits become
    detections (the others are always negatives).
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
        bbox_reg_beta: float = 0.11,
        bbox_reg_weight: float = 4.0,
        selection: Selection,
        focal: FocalLoss,
    ) -> None:
        super().__init__(
            backbone,
            head,
            transform,
            num_classes=head.num_classes,
            selection=selection,
            focal=focal,
            anchor_generator=anchor_generator,
            fg_iou_thresh=fg_iou_thresh,
            bg_iou_thresh=bg_iou_thresh,
        )
        self.box_coder = BoxCoder(weights=BOX_CODER_WEIGHTS)
        self.bbox_reg_beta = bbox_reg_beta
        self.bbox_reg_weight = bbox_reg_weight

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
            head_outputs,
            anchors,
            targets,
            matched,
            self.box_coder,
            focal=self.focal,
            bbox_reg_beta=self.bbox_reg_beta,
            bbox_reg_weight=self.bbox_reg_weight,
        )

    def level_detections(
        self, outputs: dict[str, Tensor], anchors: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`cls_logits` [HWA, K'], `bbox_regression` [HWA, 4] (deltas) and anchors [HWA, 4] ->
        boxes [D, 4], scores [D] (the class probability), labels [D] (1..K)."""
        probs = self.reported_probs(outputs["cls_logits"])
        anchor, label, scores = select_candidates(
            probs, probs, self.score_thresh, self.topk_candidates
        )
        boxes = self.box_coder.decode_single(outputs["bbox_regression"][anchor], anchors[anchor])
        return boxes, scores, label + 1
