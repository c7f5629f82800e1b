"""FCOS "imprv" targets and losses as pure functions of tensors, as the original FCOS computes them.

Locations come as torchvision-style square anchors (see `fad.modeling.fcos.locations`): a
location is the anchor's centre and its level's stride is the anchor's side.

Targets: a location is positive for a box when it lies inside the box, within
`center_sampling_radius * stride` of its centre (any distance when the radius is 0: no centre
sampling), and the box's largest ltrb distance falls in the level's range
[0, 64], [64, 128], [128, 256], [256, 512], [512, inf] (bounds inclusive, as the original); ties go
to the smallest box. Regression targets are the ltrb distances in units of the stride
(NORM_REG_TARGETS True) or in pixels (False).

Losses (as the original FCOS imprv): sigmoid focal loss / #positives; the original's IoU or GIoU
loss on ltrb distances (with its +1 smoothing, in the units above) weighted by the centerness
targets / their sum; centerness BCE / #positives. #positives and the centerness sum are averaged
over processes in distributed runs. Without positives, box and centerness losses are exactly 0
(and stay attached to the graph, so every parameter gets a gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fad.modeling.loss import FOCAL, FocalLoss, class_targets, matched_boxes
from fad.runtime.distributed import mean_across_processes
from fad.runtime.precision import in_float32

INF = float("inf")
IOU_LOSS_TYPES = ("iou", "linear_iou", "giou")  # MODEL.FCOS.IOU_LOSS_TYPE


def centers_and_strides(anchors: Tensor) -> tuple[Tensor, Tensor]:
    """[HW, 4] square anchors -> locations [HW, 2] (x, y) and strides [HW]."""
    return (anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2] - anchors[:, 0]


def regression_units(anchors: Tensor, norm_reg_targets: bool) -> Tensor:
    """[..., HW] the length one regression unit stands for: the stride, or 1 pixel."""
    strides = anchors[..., 2] - anchors[..., 0]
    return strides if norm_reg_targets else torch.ones_like(strides)


def encode_ltrb(anchors: Tensor, boxes: Tensor, norm_reg_targets: bool = True) -> Tensor:
    """ltrb distances from each location to its box: [P, 4] anchors, [P, 4] xyxy -> [P, 4]."""
    centers, _ = centers_and_strides(anchors)
    ltrb = torch.cat([centers - boxes[:, :2], boxes[:, 2:] - centers], dim=1)
    return ltrb / regression_units(anchors, norm_reg_targets)[:, None]


def decode_ltrb(anchors: Tensor, ltrb: Tensor, norm_reg_targets: bool = True) -> Tensor:
    """The inverse of `encode_ltrb`: [P, 4] anchors, [P, 4] ltrb -> [P, 4] xyxy."""
    centers, _ = centers_and_strides(anchors)
    pixels = ltrb * regression_units(anchors, norm_reg_targets)[:, None]
    return torch.cat([centers - pixels[:, :2], centers + pixels[:, 2:]], dim=1)


def match_locations(
    anchors: Tensor,
    gt_boxes: Tensor,
    num_anchors_per_level: list[int],
    center_sampling_radius: float = 1.5,
) -> Tensor:
    """Index of the ground-truth box each location regresses, -1 for background.

    Args:
        anchors: [HW, 4] one square anchor per location, side = stride.
        gt_boxes: [M, 4] xyxy.
    Returns:
        [HW] int64.
    """
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    centers, strides = centers_and_strides(anchors)
    x, y = centers[:, 0:1], centers[:, 1:2]  # [HW, 1]
    ltrb = torch.stack(
        [x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=2
    )  # [HW, M, 4]
    candidate = ltrb.amin(dim=2) > 0  # inside the box
    if center_sampling_radius > 0:
        gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # [M, 2]
        offset = (centers[:, None] - gt_centers[None]).abs().amax(dim=2)
        candidate &= offset < center_sampling_radius * strides[:, None]
    lower = strides * 4
    upper = strides * 8
    lower[: num_anchors_per_level[0]] = 0
    upper[-num_anchors_per_level[-1] :] = INF
    extent = ltrb.amax(dim=2)
    candidate &= (extent >= lower[:, None]) & (extent <= upper[:, None])  # [HW, M]
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    cost = torch.where(candidate, areas[None].expand_as(candidate), INF)
    best_cost, matched = cost.min(dim=1)
    matched[torch.isinf(best_cost)] = -1
    return matched


def iou_loss(pred: Tensor, target: Tensor, loss_type: str = "giou") -> Tensor:
    """The original FCOS IoU / linear IoU / GIoU loss of ltrb distances from the same location.

    [P, 4] predicted and target (l, t, r, b) -> [P] losses. As the original: IoU smoothed as
    (intersection + 1) / (union + 1), and 1e-7 added to the enclosing box's area.
    """
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    inner = torch.minimum(pred, target)
    outer = torch.maximum(pred, target)
    intersection = (inner[:, 0] + inner[:, 2]) * (inner[:, 1] + inner[:, 3])
    enclosing = (outer[:, 0] + outer[:, 2]) * (outer[:, 1] + outer[:, 3]) + 1e-7
    union = target_area + pred_area - intersection
    ious = (intersection + 1.0) / (union + 1.0)
    if loss_type == "iou":
        return -torch.log(ious)
    if loss_type == "linear_iou":
        return 1 - ious
    if loss_type == "giou":
        return 1 - (ious - (enclosing - union) / enclosing)
    raise ValueError(f"unknown IoU loss type {loss_type!r}; valid: {', '.join(IOU_LOSS_TYPES)}")


def centerness_targets(ltrb: Tensor) -> Tensor:
    """[P, 4] ltrb targets -> [P] sqrt(min/max of l, r  x  min/max of t, b)."""
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    return torch.sqrt(
        (lr.amin(dim=1) / lr.amax(dim=1)).clamp(min=0)
        * (tb.amin(dim=1) / tb.amax(dim=1)).clamp(min=0)
    )


@in_float32
def fcos_losses(
    head_outputs: dict[str, Tensor],
    anchors: list[Tensor],
    targets: list[dict[str, Tensor]],
    matched_idxs: list[Tensor],
    *,
    norm_reg_targets: bool = True,
    focal: FocalLoss = FOCAL,
    iou_loss_type: str = "giou",
) -> dict[str, Tensor]:
    """`loss_cls`, `loss_reg`, `loss_centerness` for a batch (see module docstring).

    `head_outputs["bbox_regression"]` holds ltrb distances in the units of `norm_reg_targets`.
    Computed in float32, outside autocast (half-precision head outputs are cast).
    """
    cls_logits = head_outputs["cls_logits"]  # [N, HW, K]
    regression = head_outputs["bbox_regression"]  # [N, HW, 4]
    ctrness = head_outputs["bbox_ctrness"].squeeze(2)  # [N, HW]

    positive = torch.stack(matched_idxs) >= 0  # [N, HW]
    (num_pos,) = mean_across_processes([positive.sum().to(cls_logits.dtype)])
    num_pos = num_pos.clamp(min=1.0)

    loss_cls = focal(cls_logits, class_targets(cls_logits, targets, matched_idxs))
    if positive.any():
        pos_anchors = torch.stack(anchors)[positive]  # [P, 4]
        gt_boxes = torch.cat(matched_boxes(targets, matched_idxs, regression.dtype))  # [P, 4]
        target_ltrb = encode_ltrb(pos_anchors, gt_boxes, norm_reg_targets)
        ctr_target = centerness_targets(target_ltrb)
        box_loss = iou_loss(regression[positive], target_ltrb, iou_loss_type)
        (ctr_sum,) = mean_across_processes([ctr_target.sum()])
        ctr_sum = ctr_sum.clamp(min=1e-6)
        loss_reg = (box_loss * ctr_target).sum() / ctr_sum
        loss_ctr = torch.nn.functional.binary_cross_entropy_with_logits(
            ctrness[positive], ctr_target, reduction="sum"
        )
    else:
        loss_reg = regression.sum() * 0.0
        loss_ctr = ctrness.sum() * 0.0
    return {
        "loss_cls": loss_cls / num_pos,
        "loss_reg": loss_reg,
        "loss_centerness": loss_ctr / num_pos,
    }
