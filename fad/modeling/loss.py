"""FCOS "imprv" targets and losses as pure functions of tensors.

Targets: a location is positive for a box when it lies inside the box, within
`center_sampling_radius * stride` of its centre, and the box's largest ltrb distance falls in the
level's range (0-64-128-256-512-inf); ties go to the smallest box. Regression targets are ltrb
distances divided by the stride (BoxLinearCoder with normalize_by_size).

Losses (as the original FCOS imprv): sigmoid focal loss / #positives; GIoU loss weighted by the
centerness targets / their sum; centerness BCE / #positives. #positives and the centerness sum are
averaged over processes in distributed runs. Without positives, box and centerness losses are
exactly 0 (and stay attached to the graph, so every parameter gets a gradient).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torchvision.models.detection._utils import BoxLinearCoder
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss
from torchvision.ops.boxes import box_iou

INF = float("inf")


def match_locations(
    anchors: Tensor,
    gt_boxes: Tensor,
    num_anchors_per_level: list[int],
    center_sampling_radius: float = 1.5,
) -> Tensor:
    """Index of the ground-truth box each location regresses, -1 for background.

    Args:
        anchors: [HW, 4] one square anchor per location, side = stride (torchvision's FCOS anchors).
        gt_boxes: [M, 4] xyxy.
    Returns:
        [HW] int64.
    """
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2  # [HW, 2]
    strides = anchors[:, 2] - anchors[:, 0]  # [HW]
    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # [M, 2]
    near_center = (centers[:, None] - gt_centers[None]).abs().amax(dim=2) < (
        center_sampling_radius * strides[:, None]
    )
    x, y = centers[:, 0:1], centers[:, 1:2]  # [HW, 1]
    ltrb = torch.stack(
        [x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=2
    )  # [HW, M, 4]
    inside = ltrb.amin(dim=2) > 0
    lower = strides * 4
    upper = strides * 8
    lower[: num_anchors_per_level[0]] = 0
    upper[-num_anchors_per_level[-1] :] = INF
    extent = ltrb.amax(dim=2)
    in_range = (extent > lower[:, None]) & (extent < upper[:, None])
    candidate = near_center & inside & in_range  # [HW, M]
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    cost = torch.where(
        candidate, areas[None].expand_as(candidate), torch.full_like(ltrb[..., 0], INF)
    )
    best_cost, matched = cost.min(dim=1)
    matched[torch.isinf(best_cost)] = -1
    return matched


def _mean_over_processes(value: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def fcos_losses(
    head_outputs: dict[str, Tensor],
    anchors: list[Tensor],
    targets: list[dict[str, Tensor]],
    matched_idxs: list[Tensor],
    box_coder: BoxLinearCoder,
    *,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    iou_loss_type: str = "giou",
) -> dict[str, Tensor]:
    """`loss_cls`, `loss_reg`, `loss_centerness` for a batch (see module docstring)."""
    cls_logits = head_outputs["cls_logits"]  # [N, HW, K]
    regression = head_outputs["bbox_regression"]  # [N, HW, 4]
    ctrness = head_outputs["bbox_ctrness"].squeeze(2)  # [N, HW]

    gt_classes = torch.zeros_like(cls_logits)
    gt_boxes = torch.zeros_like(regression)
    for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
        positive = matched >= 0
        if positive.any():
            index = matched[positive]
            gt_classes[i, positive, target["labels"][index] - 1] = 1.0
            gt_boxes[i, positive] = target["boxes"][index].to(gt_boxes.dtype)
    positive = torch.stack(matched_idxs) >= 0  # [N, HW]
    num_pos = _mean_over_processes(positive.sum().to(cls_logits.dtype)).clamp(min=1.0)

    loss_cls = sigmoid_focal_loss(
        cls_logits, gt_classes, alpha=focal_alpha, gamma=focal_gamma, reduction="sum"
    )
    anchors_t = torch.stack(anchors)  # [N, HW, 4]
    pos_anchors = anchors_t[positive]
    pos_gt = gt_boxes[positive]
    pos_pred = box_coder.decode(regression[positive], pos_anchors)
    target_ltrb = box_coder.encode(pos_anchors, pos_gt)  # [P, 4]
    lr, tb = target_ltrb[:, [0, 2]], target_ltrb[:, [1, 3]]
    ctr_target = torch.sqrt(
        (lr.amin(dim=1) / lr.amax(dim=1)).clamp(min=0)
        * (tb.amin(dim=1) / tb.amax(dim=1)).clamp(min=0)
    )
    if positive.any():
        if iou_loss_type == "giou":
            box_loss = generalized_box_iou_loss(pos_pred, pos_gt, reduction="none")
        else:
            box_loss = -torch.log(box_iou(pos_pred, pos_gt).diagonal().clamp(min=1e-6))
        ctr_sum = _mean_over_processes(ctr_target.sum()).clamp(min=1e-6)
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
