"""A trained FCOS detector as users call it: labels as the dataset's category ids, and a
fixed-size, one-image form of the same computation that exports to ONNX and TorchScript.

`CategoryDetector` is `FCOSDetector` in eval mode with its contiguous labels 1..K mapped to the
dataset's category ids. `FixedSizeDetector` re-expresses its inference for one image of a fixed
size in export-friendly ops: the resize, padding and location grid become constants, and the
candidate selection avoids shapes that depend on data until the final filter (see
`select_candidates`). It computes the same detections as the eager detector; `fad export` checks
that on sample images for every file it writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import clip_boxes_to_image, nms

from fad.modeling.fcos import FCOSDetector
from fad.modeling.loss import decode_ltrb

OUTPUT_KEYS = ("cls_logits", "bbox_ctrness", "bbox_regression")  # FCOSTowerHead's, per level


class CategoryDetector(nn.Module):
    """`FCOSDetector` called as torchvision's detectors, labels as the dataset's category ids.

    `model([image, ...])`, images [3, H, W] RGB floats in [0, 1] of any size, returns one dict per
    image: `boxes` [N, 4] xyxy in that image's pixels, `scores` [N], `labels` [N] category ids.
    Runs without gradients, always in eval mode.
    """

    def __init__(
        self, detector: FCOSDetector, class_names: Sequence[str], category_ids: Sequence[int]
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


def class_wise_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """torchvision's `batched_nms` for boxes in [0, inf), without its data-dependent branches.

    Boxes of each class are shifted past the others' (torchvision's coordinate trick, with the
    same offset); an empty input gives an empty output. Returns kept indices, best first.
    """
    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = labels.to(boxes) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


class FixedSizeDetector(nn.Module):
    """One image of a fixed size (H, W) -> (boxes [N, 4], scores [N], labels [N] category ids).

    The same computation as `CategoryDetector` on an H x W image: resize and normalise as the
    detector's transform, pad to its size divisibility, backbone, head, FCOS candidates, clip,
    class-wise NMS, the best `detections_per_img`, boxes back in input pixels.
    """

    def __init__(
        self, detector: FCOSDetector, category_ids: Sequence[int], size: tuple[int, int]
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
        self.level_counts = [h * w for h, w in level_sizes]
        self.register_buffer(
            "anchors", detector.anchor_generator.anchors(level_sizes), persistent=False
        )
        self.register_buffer("label_ids", torch.tensor([0, *category_ids]), persistent=False)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[3, H, W] RGB in [0, 1] -> boxes [N, 4] xyxy in input pixels, scores [N], labels [N]."""
        d = self.detector
        x = d.transform.normalize(image)
        x = F.interpolate(x[None], size=self.resized, mode="bilinear", align_corners=False)
        pad_h, pad_w = (p - r for p, r in zip(self.padded, self.resized))
        x = F.pad(x, (0, pad_w, 0, pad_h))
        outputs = d.head(list(d.backbone(x).values()))
        per_level = zip(
            *(outputs[k][0].split(self.level_counts) for k in OUTPUT_KEYS),
            self.anchors.split(self.level_counts),
        )
        boxes, scores, labels = [], [], []
        for logits, ctrness, regression, anchors in per_level:
            location, label, products = select_candidates(
                logits, ctrness, d.reported_classes, d.score_thresh, d.topk_candidates
            )
            decoded = decode_ltrb(anchors[location], regression[location], d.norm_reg_targets)
            boxes.append(clip_boxes_to_image(decoded, self.resized))
            scores.append(torch.sqrt(products))
            labels.append(label + 1)
        boxes_t, scores_t, labels_t = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        keep = class_wise_nms(boxes_t, scores_t, labels_t, d.nms_thresh)[: d.detections_per_img]
        boxes_t = resize_boxes(boxes_t[keep], list(self.resized), list(self.size))
        return boxes_t, scores_t[keep], self.label_ids[labels_t[keep]]


def select_candidates(
    logits: Tensor,
    ctrness: Tensor,
    reported_classes: int,
    score_thresh: float,
    topk: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """`FCOSDetector._level_candidates`' choice with a fixed-size top-k, then one filter.

    [HW, K'] logits, [HW, 1] centerness -> locations [P], labels [P] (0-based), products [P]
    (probability x centerness): the (location, class) pairs whose probability exceeds
    `score_thresh`, the best `topk` of them by product. Pairs below the threshold are ranked last
    (product -1), so the top-k of all pairs holds every candidate the eager top-k keeps.
    """
    probs = torch.sigmoid(logits[:, :reported_classes])
    products = probs * torch.sigmoid(ctrness)
    ranked = torch.where(probs > score_thresh, products, torch.full_like(products, -1.0))
    best, index = ranked.reshape(-1).topk(min(topk, ranked.numel()))
    keep = best >= 0
    index = index[keep]
    return index // reported_classes, index % reported_classes, best[keep]
