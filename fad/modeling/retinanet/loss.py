"""RetinaNet targets and losses as pure functions of tensors, as maskrcnn-benchmark computes them.

Targets: torchvision's `Matcher` (the original's, same code): an anchor whose best IoU with a box
is >= FG_IOU_THRESHOLD regresses that box, < BG_IOU_THRESHOLD is background, in between is
ignored; each box also keeps the anchors of its highest IoU (low-quality matches). Regression
targets: the box coder's (dx, dy, dw, dh) with weights (10, 10, 5, 5).

Losses: sigmoid focal loss summed over the anchors that are not ignored, divided by
(#positives + #images); smooth L1 (beta BBOX_REG_BETA) summed over the positives, divided by
max(1, #positives x BBOX_REG_WEIGHT). Both counts are this process's batch, as the original
(which does not average them over processes). Without positives the box loss is exactly 0 and
stays attached to the graph.

torchvision's `RetinaNetHead.compute_loss` differs: labels 0-based, both losses divided by each
image's positives and averaged over images, its smooth L1 has beta 1 (no way to pass 0.11).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.ops import box_iou

from fad.modeling.loss import FOCAL, FocalLoss, class_targets, matched_boxes
from fad.runtime.precision import in_float32

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the original RetinaNet's BoxCoder


def match_anchors(matcher: Matcher, anchors: Tensor, gt_boxes: Tensor) -> Tensor:
    """[A, 4] anchors, [M, 4] boxes -> [A] int64: the box index, -1 background, -2 ignored."""
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    return matcher(box_iou(gt_boxes, anchors))


@in_float32
def retinanet_losses(
    head_outputs: dict[str, Tensor],
    anchors: list[Tensor],
    targets: list[dict[str, Tensor]],
    matched_idxs: list[Tensor],
    box_coder: BoxCoder,
    *,
    focal: FocalLoss = FOCAL,
    bbox_reg_beta: float = 0.11,
    bbox_reg_weight: float = 4.0,
) -> dict[str, Tensor]:
    """`loss_retina_cls`, `loss_retina_reg` of a batch (see the module doc; labels 1..K), in
    float32 outside autocast."""
    cls_logits = head_outputs["cls_logits"]  # [N, HWA, K]
    regression = head_outputs["bbox_regression"]  # [N, HWA, 4]
    matched = torch.stack(matched_idxs)  # [N, HWA]
    positive = matched >= 0
    gt_classes = class_targets(cls_logits, targets, matched_idxs)
    boxes = matched_boxes(targets, matched_idxs, regression.dtype)
    reg_targets = [
        box_coder.encode_single(image_boxes, image_anchors[image_positive])
        for image_boxes, image_anchors, image_positive in zip(boxes, anchors, positive)
    ]
    num_pos = int(positive.sum())
    considered = matched != Matcher.BETWEEN_THRESHOLDS
    loss_cls = focal(cls_logits[considered], gt_classes[considered]) / (num_pos + len(targets))
    if num_pos:
        loss_reg = F.smooth_l1_loss(
            regression[positive], torch.cat(reg_targets), beta=bbox_reg_beta, reduction="sum"
        ) / max(1.0, num_pos * bbox_reg_weight)
    else:
        loss_reg = regression.sum() * 0.0
    return {"loss_retina_cls": loss_cls, "loss_retina_reg": loss_reg}
