"""FCOS (the "imprv" variant) on torchvision's FCOS: its transform, anchors, box coder and
postprocessing, with fad's head (injected towers) and the imprv losses of `fad.modeling.loss`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOS
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from fad.modeling.loss import fcos_losses, match_locations


class TrainTestTransform(GeneralizedRCNNTransform):
    """torchvision's resize/normalise/batch transform with separate train and test sizes.

    Training picks the shorter side uniformly from `train_min_sizes` (multi-scale); evaluation
    uses `test_min_size`. Switching the module to training or evaluation mode switches sizes.
    """

    def __init__(
        self,
        train_min_sizes: Sequence[int],
        train_max_size: int,
        test_min_size: int,
        test_max_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        size_divisible: int = 32,
    ) -> None:
        super().__init__(
            tuple(train_min_sizes),
            train_max_size,
            list(image_mean),
            list(image_std),
            size_divisible=max(1, size_divisible),
        )
        self.train_sizes = (tuple(train_min_sizes), train_max_size)
        self.test_sizes = ((test_min_size,), test_max_size)

    def train(self, mode: bool = True) -> TrainTestTransform:
        self.min_size, self.max_size = self.train_sizes if mode else self.test_sizes
        return super().train(mode)


class FCOSDetector(FCOS):
    """FCOS whose head is `fad.modeling.head.FCOSHead` (towers injected).

    `forward(images, targets)` returns the loss dict (`loss_cls`, `loss_reg`, `loss_centerness`)
    in training mode and a list of detections (`boxes` xyxy in input-image pixels, `scores`,
    `labels` 1..K) in eval mode, as torchvision's detectors do.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        transform: TrainTestTransform,
        *,
        center_sampling_radius: float = 1.5,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        iou_loss_type: str = "giou",
    ) -> None:
        super().__init__(
            backbone,
            num_classes=head.cls_logits.out_channels,
            head=head,
            center_sampling_radius=center_sampling_radius,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
        )
        self.transform = transform
        self.loss_options = {
            "focal_alpha": focal_alpha,
            "focal_gamma": focal_gamma,
            "iou_loss_type": iou_loss_type,
        }

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
            head_outputs, anchors, targets, matched, self.box_coder, **self.loss_options
        )

    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        detections = super().postprocess_detections(head_outputs, anchors, image_shapes)
        for detection in detections:
            detection["labels"] = detection["labels"] + 1  # contiguous 1..K, 0 is background
        return detections
