"""FCOS in the detector registry: MODEL.FCOS's own keys -> `FCOSDetector`, their checks, and its
towers (GroupNorm in the standard ones; as the original head, only the cls tower's FAD reduce
conv gets the head init)."""

from __future__ import annotations

from yacs.config import CfgNode as CN

from fad.modeling.backbone import FPN_STRIDES
from fad.modeling.fcos.detector import FCOSDetector
from fad.modeling.fcos.head import FCOSTowerHead
from fad.modeling.fcos.loss import IOU_LOSS_TYPES
from fad.modeling.registry import DetectorEntry, DetectorParts, require


def build_fcos(section: CN, parts: DetectorParts) -> FCOSDetector:
    """MODEL.FCOS (FPN_STRIDES, NORM_REG_TARGETS, CENTERNESS_ON_REG, CENTER_SAMPLING_RADIUS,
    IOU_LOSS_TYPE) and the shared parts -> the detector."""
    head = FCOSTowerHead(
        **parts.head_options(),
        num_levels=len(section.FPN_STRIDES),
        norm_reg_targets=section.NORM_REG_TARGETS,
        centerness_on_reg=section.CENTERNESS_ON_REG,
    )
    return FCOSDetector(
        **parts.detector_options(head),
        strides=section.FPN_STRIDES,
        center_sampling_radius=section.CENTER_SAMPLING_RADIUS,
        norm_reg_targets=section.NORM_REG_TARGETS,
        iou_loss_type=section.IOU_LOSS_TYPE,
    )


def check_fcos(section: CN, key: str) -> None:
    """FCOS's own keys: locations on P3-P7, a known IoU loss, a centre sampling radius >= 0."""
    strides = tuple(section.FPN_STRIDES)
    require(
        strides == FPN_STRIDES,
        f"{key}.FPN_STRIDES must be {FPN_STRIDES} (P3-P7), got {strides}",
    )
    require(
        section.IOU_LOSS_TYPE in IOU_LOSS_TYPES,
        f"{key}.IOU_LOSS_TYPE must be one of {IOU_LOSS_TYPES}, got {section.IOU_LOSS_TYPE!r}",
    )
    require(
        section.CENTER_SAMPLING_RADIUS >= 0,
        f"{key}.CENTER_SAMPLING_RADIUS must be >= 0 (0: no centre sampling), "
        f"got {section.CENTER_SAMPLING_RADIUS}",
    )


FCOS = DetectorEntry(
    name="fcos",
    section="FCOS",
    build=build_fcos,
    validate=check_fcos,
    standard_norm=True,
    head_init_reduce=("cls",),
)
