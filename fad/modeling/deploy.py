"""A trained detector as users call it: labels as the dataset's category ids, and a fixed-size,
one-image form of the same computation that exports to ONNX and TorchScript.

`CategoryDetector` is a detector in eval mode with its contiguous labels 1..K mapped to the
dataset's category ids. `FixedSizeDetector` re-expresses its inference for one image of a fixed
size in export-friendly ops: the resize, padding and anchors (FCOS's locations) become constants,
the candidates of each level are the eager detector's own (`level_detections`, whose selection
avoids shapes that depend on data until its final filter), and the NMS is `class_wise_nms`. It
computes the same detections as the eager detector; `fad export` checks that on sample images for
every file it writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.transform import resize_boxes

from fad.modeling.candidates import class_wise_nms
from fad.modeling.detector import OneStageDetector


class CategoryDetector(nn.Module):
    """A detector called as torchvision's detectors, labels as the dataset's category ids.

    `model([image, ...])`, images [3, H, W] RGB floats in [0, 1] of any size, returns one dict per
    image: `boxes` [N, 4] xyxy in that image's pixels, `scores` [N], `labels` [N] category ids.
    Runs without gradients, always in eval mode.
    """

    def __init__(
        self, detector: OneStageDetector, class_names: Sequence[str], category_ids: Sequence[int]
    ) -> None:
        super().__init__()
        if len(class_names) != len(category_ids):
            raise ValueError(f"{len(class_names)} class names for {len(category_ids)} ids")
        self.detector = detector.eval()
        self.class_names = list(class_names)
        self.category_ids = [int(c) for c in category_ids]
        self.register_buffer("label_ids", torch.tensor([0, *self.category_ids]), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> CategoryDetector:
        """Stays in eval mode: this is an inference module (train the detector with `fad train`)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        detections = self.detector(list(images))
        return [{**d, "labels": self.label_ids[d["labels"]]} for d in detections]


class FixedSizeDetector(nn.Module):
    """One image of a fixed size (H, W) -> (boxes [N, 4], scores [N], labels [N] category ids).

    The same computation as `CategoryDetector` on an H x W image: resize and normalise as the
    detector's transform, pad to its size divisibility, backbone, head, each level's candidates
    (the detector's `level_detections`), clip, class-wise NMS, the best `detections_per_img`,
    boxes back in input pixels.
    """

    def __init__(
        self, detector: OneStageDetector, category_ids: Sequence[int], size: tuple[int, int]
    ) -> None:
        super().__init__()
        detector = detector.eval()
        self.detector = detector
        self.size = (int(size[0]), int(size[1]))
        with torch.no_grad():
            resized, _ = detector.transform.resize(torch.zeros(3, *self.size))
            padded = detector.transform.batch_images([resized], detector.transform.size_divisible)
            features = detector.backbone(padded)
        self.resized = tuple(int(s) for s in resized.shape[-2:])
        self.padded = tuple(int(s) for s in padded.shape[-2:])
        level_sizes = [tuple(f.shape[-2:]) for f in features.values()]
        anchors = detector.anchor_generator.anchors(level_sizes)
        per_location = anchors.shape[0] // sum(h * w for h, w in level_sizes)
        self.level_counts = [h * w * per_location for h, w in level_sizes]
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("label_ids", torch.tensor([0, *category_ids]), persistent=False)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[3, H, W] RGB in [0, 1] -> boxes [N, 4] xyxy in input pixels, scores [N], labels [N]."""
        d = self.detector
        x = d.transform.normalize(image)
        x = F.interpolate(x[None], size=self.resized, mode="bilinear", align_corners=False)
        pad_h, pad_w = (p - r for p, r in zip(self.padded, self.resized))
        x = F.pad(x, (0, pad_w, 0, pad_h))
        outputs = {
            k: v[0].split(self.level_counts) for k, v in d.head([*d.backbone(x).values()]).items()
        }
        anchors = self.anchors.split(self.level_counts)
        boxes, scores, labels = d.image_detections(outputs, anchors, self.resized, class_wise_nms)
        boxes = resize_boxes(boxes, list(self.resized), list(self.size))
        return boxes, scores, self.label_ids[labels]
