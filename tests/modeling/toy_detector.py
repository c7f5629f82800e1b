"""A toy one-stage detector made only of fad's shared parts, as docs/architecture.md's "How to add
a detector" describes: its own head, loss, detector and registry entry, in this one module; the
test registers it with one line (`DETECTORS.register(TOY)`).

The toy: one prediction per location of FCOS's grid; a location is positive for the smallest box
it lies in (any level), regressing its ltrb distances in strides (L1); the class logits take the
focal loss. Its standard towers have no GroupNorm and both FAD reduce convs get the head init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOS
from yacs.config import CfgNode as CN

from fad.modeling.candidates import select_candidates
from fad.modeling.detector import OneStageDetector
from fad.modeling.fcos.locations import LocationGrid
from fad.modeling.head import TowerHead, flatten_predictions, init_predictors
from fad.modeling.loss import class_targets, matched_boxes
from fad.modeling.registry import DetectorEntry, DetectorParts, require
from fad.search_space.genotype import ROLES


class ToyHead(TowerHead):
    """Towers, then K class logits and 4 non-negative ltrb distances (in strides) per location."""

    def __init__(self, box_tower, cls_tower, in_channels, num_classes, prior_prob=0.01) -> None:
        super().__init__(box_tower, cls_tower, in_channels, num_classes, box_outputs=4)
        init_predictors(self.cls_logits, self.bbox_pred, prior_prob=prior_prob)

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        box_features, cls_features = self.tower_features(features)
        classes = self.cls_logits.out_channels
        logits = [flatten_predictions(self.cls_logits(f), classes) for f in cls_features]
        boxes = [flatten_predictions(torch.relu(self.bbox_pred(f)), 4) for f in box_features]
        return {"cls_logits": torch.cat(logits, 1), "bbox_regression": torch.cat(boxes, 1)}


def match_inside(anchors: Tensor, boxes: Tensor) -> Tensor:
    """[P] index of the smallest box each location lies in, -1 for none."""
    if boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64)
    centres = (anchors[:, None, :2] + anchors[:, None, 2:]) / 2  # [P, 1, 2]
    inside = ((centres > boxes[None, :, :2]) & (centres < boxes[None, :, 2:])).all(dim=2)
    areas = ((boxes[:, 2:] - boxes[:, :2]).prod(dim=1))[None].expand_as(inside)
    cost, index = torch.where(inside, areas, torch.inf).min(dim=1)
    return torch.where(torch.isinf(cost), -1, index)


def ltrb(anchors: Tensor, boxes: Tensor) -> Tensor:
    """[P, 4] distances from each location to its box's sides, in strides."""
    centres, strides = (anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2:3] - anchors[:, 0:1]
    return torch.cat([centres - boxes[:, :2], boxes[:, 2:] - centres], dim=1) / strides


class ToyDetector(OneStageDetector, FCOS):
    """The toy: torchvision's FCOS skeleton with the shared parts and the toy's loss."""

    def __init__(self, *, strides: Sequence[int], **shared) -> None:
        super().__init__(num_classes=shared["head"].cls_logits.out_channels, **shared)
        self.anchor_generator = LocationGrid(strides)

    def compute_loss(self, targets, head_outputs, anchors, num_anchors_per_level):
        matched = [match_inside(a, t["boxes"]) for a, t in zip(anchors, targets)]
        logits = head_outputs["cls_logits"]
        positive = torch.stack(matched) >= 0
        num_pos = max(1, int(positive.sum()))
        loss_cls = self.focal(logits, class_targets(logits, targets, matched)) / num_pos
        boxes = torch.cat(matched_boxes(targets, matched, logits.dtype))
        target = ltrb(torch.stack(anchors)[positive], boxes)
        regression = head_outputs["bbox_regression"][positive]
        loss_box = nn.functional.l1_loss(regression, target, reduction="sum") / num_pos
        return {"loss_toy_cls": loss_cls, "loss_toy_box": loss_box}

    def level_detections(self, outputs, anchors):
        probs = self.reported_probs(outputs["cls_logits"])
        location, label, scores = select_candidates(
            probs, probs, self.score_thresh, self.topk_candidates
        )
        centres = (anchors[location, :2] + anchors[location, 2:]) / 2
        strides = anchors[location, 2:3] - anchors[location, 0:1]
        distances = outputs["bbox_regression"][location] * strides
        boxes = torch.cat([centres - distances[:, :2], centres + distances[:, 2:]], dim=1)
        return boxes, scores, label + 1


def build_toy(section: CN, parts: DetectorParts) -> ToyDetector:
    """MODEL.TOY: the shared keys and STRIDES."""
    head = ToyHead(**parts.head_options())
    return ToyDetector(**parts.detector_options(head), strides=section.STRIDES)


def check_toy(section: CN, key: str) -> None:
    require(len(section.STRIDES) == 5, f"{key}.STRIDES needs one stride per level P3-P7")


TOY = DetectorEntry(
    name="toy",
    section="TOY",
    build=build_toy,
    validate=check_toy,
    standard_norm=False,
    head_init_reduce=ROLES,
)


def toy_section(fcos_section: CN) -> CN:
    """MODEL.TOY for a config: the shared keys of MODEL.FCOS, and the toy's STRIDES."""
    shared = ("NUM_CLASSES", "NUM_CONVS", "PRIOR_PROB", "INFERENCE_TH", "NMS_TH")
    shared += ("PRE_NMS_TOP_N", "LOSS_ALPHA", "LOSS_GAMMA")
    section = CN({key: fcos_section[key] for key in shared})
    section.STRIDES = (8, 16, 32, 64, 128)
    return section
