"""RetinaNet in the detector registry: MODEL.RETINANET's own keys -> `RetinaNetDetector`, their
checks, and its towers (no norm in the standard ones; as the original head, both FAD reduce convs
get the head init)."""

from __future__ import annotations

from yacs.config import CfgNode as CN

from fad.modeling.backbone import FPN_STRIDES
from fad.modeling.registry import DetectorEntry, DetectorParts, require
from fad.modeling.retinanet.anchors import AnchorGrid, octave_sizes
from fad.modeling.retinanet.detector import RetinaNetDetector
from fad.modeling.retinanet.head import RetinaNetTowerHead
from fad.search_space.genotype import ROLES


def build_retinanet(section: CN, parts: DetectorParts) -> RetinaNetDetector:
    """MODEL.RETINANET (anchors, IoU thresholds, smooth L1) and the shared parts -> the
    detector."""
    r = section
    anchors = AnchorGrid(
        r.ANCHOR_STRIDES,
        octave_sizes(r.ANCHOR_SIZES, r.OCTAVE, r.SCALES_PER_OCTAVE),
        r.ASPECT_RATIOS,
    )
    head = RetinaNetTowerHead(
        **parts.head_options(), num_anchors=anchors.num_anchors_per_location()[0]
    )
    return RetinaNetDetector(
        **parts.detector_options(head),
        anchor_generator=anchors,
        fg_iou_thresh=r.FG_IOU_THRESHOLD,
        bg_iou_thresh=r.BG_IOU_THRESHOLD,
        bbox_reg_beta=r.BBOX_REG_BETA,
        bbox_reg_weight=r.BBOX_REG_WEIGHT,
    )


def check_retinanet(r: CN, key: str) -> None:
    """RetinaNet's own keys: anchors on P3-P7, IoU thresholds and smooth L1 in range."""
    require(
        tuple(r.ANCHOR_STRIDES) == FPN_STRIDES,
        f"{key}.ANCHOR_STRIDES must be {FPN_STRIDES} (P3-P7), got {tuple(r.ANCHOR_STRIDES)}",
    )
    require(
        len(r.ANCHOR_SIZES) == len(FPN_STRIDES) and min(r.ANCHOR_SIZES) > 0,
        f"{key}.ANCHOR_SIZES needs {len(FPN_STRIDES)} sizes > 0 (one per level P3-P7), "
        f"got {tuple(r.ANCHOR_SIZES)}",
    )
    require(
        len(r.ASPECT_RATIOS) > 0 and min(r.ASPECT_RATIOS) > 0,
        f"{key}.ASPECT_RATIOS needs ratios > 0, got {tuple(r.ASPECT_RATIOS)}",
    )
    require(r.OCTAVE > 0, f"{key}.OCTAVE must be > 0, got {r.OCTAVE}")
    require(r.SCALES_PER_OCTAVE >= 1, f"{key}.SCALES_PER_OCTAVE must be >= 1")
    require(
        0 <= r.BG_IOU_THRESHOLD <= r.FG_IOU_THRESHOLD <= 1,
        f"{key}.BG_IOU_THRESHOLD ({r.BG_IOU_THRESHOLD}) <= FG_IOU_THRESHOLD "
        f"({r.FG_IOU_THRESHOLD}), both in [0, 1]",
    )
    require(r.BBOX_REG_BETA >= 0, f"{key}.BBOX_REG_BETA must be >= 0 (0: L1)")
    require(r.BBOX_REG_WEIGHT > 0, f"{key}.BBOX_REG_WEIGHT must be > 0")


RETINANET = DetectorEntry(
    name="retinanet",
    section="RETINANET",
    build=build_retinanet,
    validate=check_retinanet,
    standard_norm=False,
    head_init_reduce=ROLES,
    switch_hint=(
        "set MODEL.FCOS_ON False to build RetinaNet (the original silently built FCOS), and "
        "MODEL.RETINANET.USE_C5 True for the original RetinaNet's P6 from C5 (fad's default is "
        "FCOS's False)"
    ),
)
