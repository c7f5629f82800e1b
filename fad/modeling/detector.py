"""What fad's one-stage detectors add to torchvision's: the injected transform, the reported
classes and one candidate selection (per level, then class-wise NMS) for every detector.

A detector is `class XDetector(OneStageDetector, torchvision's X)`: torchvision's class keeps its
`forward` (transform, backbone, head, anchors, then `compute_loss` in training or
`postprocess_detections` in eval); this class gives it the options and the selection loop, and
the detector says what its head's outputs of one level mean (`level_detections`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from fad.modeling.candidates import Selection
from fad.modeling.loss import FocalLoss
from fad.modeling.transform import TrainTestTransform
from fad.runtime.precision import in_float32


class OneStageDetector(nn.Module):
    """The part every detector shares; place it before the torchvision class it completes.

    Args:
        backbone: ResNet + FPN (`fad.modeling.backbone`).
        head: the detector's head, over injected towers (`fad.modeling.head.TowerHead`).
        transform: resize, normalise and batch (`TrainTestTransform`).
        num_classes: the head's class logits (K).
        selection: the candidate selection's options.
        focal: the focal loss of the class logits.
        **detector_options: the torchvision class's own keyword arguments.

    `forward(images, targets)` returns the loss dict in training mode and a list of detections
    (`boxes` xyxy in input-image pixels, `scores`, `labels` 1..K) in eval mode, as torchvision's.
    """

    transform: TrainTestTransform
    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    topk_candidates: int

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        transform: TrainTestTransform,
        *,
        num_classes: int,
        selection: Selection,
        focal: FocalLoss,
        **detector_options: Any,
    ) -> None:
        super().__init__(  # the torchvision detector's
            backbone,
            num_classes=num_classes,
            head=head,
            **selection.torchvision_options(),
            **detector_options,
        )
        self.transform = transform
        self.reported_classes = selection.reported_classes or num_classes
        self.focal = focal

    def level_detections(
        self, outputs: dict[str, Tensor], anchors: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One image's candidates on one level: its head outputs (each [P, C]) and anchors
        [P, 4] -> boxes [D, 4] xyxy (not clipped), scores [D], labels [D] (1..K), by
        `fad.modeling.candidates.select_candidates`. Eager and export call this alike."""
        raise NotImplementedError

    def reported_probs(self, logits: Tensor) -> Tensor:
        """[P, K'] class logits -> [P, K] probabilities of the reported classes."""
        return torch.sigmoid(logits[:, : self.reported_classes])

    def image_detections(
        self,
        outputs: dict[str, Sequence[Tensor]],
        anchors: Sequence[Tensor],
        image_shape: tuple[int, int],
        nms: Callable[[Tensor, Tensor, Tensor, float], Tensor] = batched_nms,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One image: its head outputs and anchors, per level -> boxes [D, 4] (clipped to
        `image_shape`), scores [D], labels [D]: each level's candidates, then class-wise `nms`
        keeps the best `detections_per_img` (the export passes its traceable NMS)."""
        found = [
            self.level_detections({k: v[level] for k, v in outputs.items()}, level_anchors)
            for level, level_anchors in enumerate(anchors)
        ]
        boxes, scores, labels = (torch.cat(parts) for parts in zip(*found))
        boxes = clip_boxes_to_image(boxes, image_shape)
        keep = nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
        return boxes[keep], scores[keep], labels[keep]

    @in_float32
    def postprocess_detections(
        self,
        head_outputs: dict[str, list[Tensor]],
        anchors: list[list[Tensor]],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """`image_detections` of each image; in float32, outside autocast."""
        detections = []
        for index, image_shape in enumerate(image_shapes):
            outputs = {k: [level[index] for level in v] for k, v in head_outputs.items()}
            boxes, scores, labels = self.image_detections(outputs, anchors[index], image_shape)
            detections.append({"boxes": boxes, "scores": scores, "labels": labels})
        return detections
