"""Candidate selection, one form for eager inference and for export: which (location, class)
pairs of a level become candidate detections, and the class-wise NMS after them.

Both detectors keep, per level, the pairs whose class probability exceeds `score_thresh`, the
best `topk_candidates` of them by a ranking (FCOS: probability x centerness; RetinaNet: the
probability), then after all levels a class-wise NMS keeps at most `detections_per_img`. The
selection is written without shapes that depend on data until its last filter, so that the
traced export (`fad.modeling.deploy.FixedSizeDetector`) runs the very code eager inference runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import nms


@dataclass(frozen=True)
class Selection:
    """The candidate selection's options (MODEL.*.INFERENCE_TH, NMS_TH, PRE_NMS_TOP_N,
    TEST.DETECTIONS_PER_IMG); only the first `reported_classes` class logits become detections
    (None: all of them; the original's NUM_CLASSES may exceed the dataset's classes)."""

    score_thresh: float = 0.05
    nms_thresh: float = 0.6
    detections_per_img: int = 100
    topk_candidates: int = 1000
    reported_classes: int | None = None

    def torchvision_options(self) -> dict[str, float | int]:
        """The keyword arguments of torchvision's FCOS and RetinaNet that hold these options."""
        return {
            "score_thresh": self.score_thresh,
            "nms_thresh": self.nms_thresh,
            "detections_per_img": self.detections_per_img,
            "topk_candidates": self.topk_candidates,
        }


def select_candidates(
    probs: Tensor, ranking: Tensor, score_thresh: float, topk: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The candidates of one level: [P, K] class probabilities and [P, K] rankings (>= 0) ->
    locations [C], labels [C] (0-based), rankings [C], best first.

    The (location, class) pairs whose probability exceeds `score_thresh`, the best `topk` of them
    by ranking, with a fixed-size top-k: pairs below the threshold rank last (-1), so the top-k
    of all pairs holds every candidate a top-k of the candidates alone keeps.
    """
    ranked = torch.where(probs > score_thresh, ranking, torch.full_like(ranking, -1.0))
    best, index = ranked.reshape(-1).topk(min(topk, ranked.numel()))
    keep = best >= 0
    index = index[keep]
    classes = probs.shape[1]
    return index // classes, index % classes, best[keep]


def class_wise_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """torchvision's `batched_nms` for boxes in [0, inf), without its data-dependent branches
    (the export's NMS; eager inference uses `batched_nms` itself).

    Boxes of each class are shifted past the others' (torchvision's coordinate trick, with the
    same offset); an empty input gives an empty output. Returns kept indices, best first.
    """
    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = labels.to(boxes) * (max_coordinate + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)
