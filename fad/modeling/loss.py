"""What every detector's loss shares: the focal loss options and the targets of matched boxes.

A matching gives, per image, the index of the ground-truth box each prediction (location or
anchor) regresses: >= 0 for a positive, negative for background (and, for RetinaNet, -2 for an
ignored anchor). Labels run 1..K, as the targets' `labels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss


@dataclass(frozen=True)
class FocalLoss:
    """The sigmoid focal loss of both detectors (MODEL.*.LOSS_ALPHA, LOSS_GAMMA), summed."""

    alpha: float = 0.25
    gamma: float = 2.0

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Sum over every element of [..., K] logits and their 0/1 targets."""
        return sigmoid_focal_loss(
            logits, targets, alpha=self.alpha, gamma=self.gamma, reduction="sum"
        )


FOCAL = FocalLoss()  # the original's alpha 0.25, gamma 2


def class_targets(
    cls_logits: Tensor, targets: list[dict[str, Tensor]], matched_idxs: list[Tensor]
) -> Tensor:
    """[N, P, K] zeros of `cls_logits`' dtype, 1 at each positive's matched label (1..K)."""
    gt_classes = torch.zeros_like(cls_logits)
    for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
        positive = matched >= 0
        gt_classes[i, positive, target["labels"][matched[positive]] - 1] = 1.0
    return gt_classes


def matched_boxes(
    targets: list[dict[str, Tensor]], matched_idxs: list[Tensor], dtype: torch.dtype
) -> list[Tensor]:
    """Per image, [P_i, 4] the boxes its positives regress, in prediction order, as `dtype`."""
    return [
        target["boxes"][matched[matched >= 0]].to(dtype)
        for target, matched in zip(targets, matched_idxs)
    ]
