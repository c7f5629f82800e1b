"""Range and consistency checks on a merged config, run before any heavy work.

The constraints are the components' own: the backbones and norms of `fad.modeling.backbone`, the
op spaces and GroupNorm widths of `fad.search_space.ops`, the optimizers and warmups of
`fad.solver`, the IoU losses of `fad.modeling.loss`, the detectors of `fad.modeling.build`; this
module only names the keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.backbone import FPN_STRIDES, NORMS, conv_body_depth
from fad.modeling.build import detector_name
from fad.modeling.loss import IOU_LOSS_TYPES
from fad.runtime.precision import AMP_MODES
from fad.runtime.seeding import MAX_SEED
from fad.search_space.ops import SPACES, check_group_norm_width
from fad.search_space.paths import check_compute_path
from fad.solver import OPTIMIZERS, WARMUP_METHODS

# Keys of the original for parts fad does not have: accepted only at the value that means "off"
# (key -> (accepted value, what another value would need)).
UNSUPPORTED_VALUES: dict[str, tuple[object, str]] = {
    "MODEL.RPN_ONLY": (True, "fad's detectors are one-stage"),
    "MODEL.MASK_ON": (False, "fad has no mask head"),
    "MODEL.KEYPOINT_ON": (False, "fad has no keypoint head"),
    "MODEL.CLS_AGNOSTIC_BBOX_REG": (False, "fad's detectors regress one box per anchor"),
    "MODEL.RESNETS.RES5_DILATION": (1, "fad's ResNets have no dilated res5"),
    "MODEL.RESNETS.STEM_OUT_CHANNELS": (64, "torchvision's ResNet stems have 64 channels"),
    "MODEL.RESNETS.STAGE_WITH_DCN": (
        (False, False, False, False),
        "fad has no deformable convolutions",
    ),
    "MODEL.RESNETS.WITH_MODULATED_DCN": (False, "fad has no deformable convolutions"),
    "MODEL.FCOS.USE_DCN_IN_TOWER": (False, "fad has no deformable convolutions"),
    "MODEL.FPN.USE_GN": (False, "torchvision's FPN has no GroupNorm"),
    "MODEL.FPN.USE_RELU": (False, "torchvision's FPN has no ReLU"),
}
TORCHVISION_PRETRAINED = ("catalog://", "torchvision://", "ResNet", "ResNeXt", "http")


def _check_unsupported(cfg: CN) -> None:
    for key, (accepted, reason) in UNSUPPORTED_VALUES.items():
        value = cfg
        for part in key.split("."):
            value = value[part]
        if isinstance(accepted, tuple):
            value = tuple(value)
        _check(
            value == accepted,
            f"{key} {value!r} is not supported: {reason} (only {accepted!r} is accepted)",
        )


def _check_pixels(inp: CN, weight: str) -> None:
    """INPUT.TO_BGR255 feeds caffe2-style BGR 0..255 pixels: the statistics must match, and
    torchvision's ImageNet weights (RGB in [0, 1]) cannot take them."""
    if not inp.TO_BGR255:
        return
    _check(
        max(inp.PIXEL_MEAN) > 1.0,
        "INPUT.TO_BGR255 True feeds BGR pixels in 0..255, but INPUT.PIXEL_MEAN "
        f"{tuple(inp.PIXEL_MEAN)} are statistics of [0, 1] RGB; set the caffe2 values, e.g. "
        "INPUT.PIXEL_MEAN (102.9801, 115.9465, 122.7717) INPUT.PIXEL_STD (1.0, 1.0, 1.0)",
    )
    _check(
        not weight.startswith(TORCHVISION_PRETRAINED),
        f"INPUT.TO_BGR255 True with MODEL.WEIGHT {weight!r}: fad's pretrained backbones are "
        "torchvision's, trained on RGB in [0, 1] normalised by ImageNet statistics; set "
        "INPUT.TO_BGR255 False and the default INPUT.PIXEL_MEAN / PIXEL_STD",
    )


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def non_finite_value(key: str, value: Any) -> str:
    """The message "KEY must be finite, got VALUE" when `value` is a number (or holds one) that
    is NaN, infinite or beyond the float range; "" otherwise."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    if all(map(_finite, values)):
        return ""
    shown = repr(value) if len(values) > 1 or isinstance(value, float) else "a huge number"
    return f"{key} must be finite, got {shown[:80]}"


def _leaves(node: CN, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in node.items():
        if isinstance(value, CN):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise FadError(message)


def validate_config(cfg: CN, *, world_size: int = 1) -> None:
    """Raise a FadError naming the key path of the first invalid value."""
    for key, value in _leaves(cfg):
        problem = non_finite_value(key, value)
        _check(not problem, problem)
    _check(0 <= cfg.SEED <= MAX_SEED, f"SEED must be in [0, {MAX_SEED}], got {cfg.SEED}")
    s = cfg.SOLVER
    _check(s.MAX_ITER > 0, f"SOLVER.MAX_ITER must be > 0, got {s.MAX_ITER}")
    _check(s.BASE_LR > 0, f"SOLVER.BASE_LR must be > 0, got {s.BASE_LR}")
    _check(s.IMS_PER_BATCH > 0, f"SOLVER.IMS_PER_BATCH must be > 0, got {s.IMS_PER_BATCH}")
    _check(
        s.IMS_PER_BATCH % world_size == 0,
        f"SOLVER.IMS_PER_BATCH ({s.IMS_PER_BATCH}) must be divisible by the number of "
        f"processes ({world_size})",
    )
    _check(
        cfg.TEST.IMS_PER_BATCH > 0, f"TEST.IMS_PER_BATCH must be > 0, got {cfg.TEST.IMS_PER_BATCH}"
    )
    detections = cfg.TEST.DETECTIONS_PER_IMG
    _check(detections >= 1, f"TEST.DETECTIONS_PER_IMG must be >= 1, got {detections}")
    _check(
        s.CHECKPOINT_PERIOD > 0, f"SOLVER.CHECKPOINT_PERIOD must be > 0, got {s.CHECKPOINT_PERIOD}"
    )
    _check(s.WARMUP_ITERS >= 0, f"SOLVER.WARMUP_ITERS must be >= 0, got {s.WARMUP_ITERS}")
    _check(
        s.WARMUP_METHOD in WARMUP_METHODS,
        f"SOLVER.WARMUP_METHOD must be one of {WARMUP_METHODS}, got {s.WARMUP_METHOD!r}",
    )
    _check(
        list(s.STEPS) == sorted(s.STEPS),
        f"SOLVER.STEPS must be increasing, got {tuple(s.STEPS)}",
    )
    _check(
        s.OPTIMIZER in OPTIMIZERS,
        f"SOLVER.OPTIMIZER must be one of {OPTIMIZERS}, got {s.OPTIMIZER!r}",
    )
    _check(
        s.SEARCH.FIRST_ORDER or s.OPTIMIZER == "SGD",
        "SOLVER.SEARCH.FIRST_ORDER False needs SOLVER.OPTIMIZER SGD (the second-order step "
        f"mirrors SGD's update), got {s.OPTIMIZER!r}",
    )
    _check_amp(s.AMP)
    _check(0 <= s.MOMENTUM < 1, f"SOLVER.MOMENTUM must be in [0, 1), got {s.MOMENTUM}")
    _check(s.WEIGHT_DECAY >= 0, f"SOLVER.WEIGHT_DECAY must be >= 0, got {s.WEIGHT_DECAY}")
    _check(
        0 <= s.SEARCH.ALPHA_HOLDOUT < 1,
        f"SOLVER.SEARCH.ALPHA_HOLDOUT must be in [0, 1), got {s.SEARCH.ALPHA_HOLDOUT}",
    )
    _check(
        0 <= s.SEARCH.WARMUP_ITERS < s.MAX_ITER,
        f"SOLVER.SEARCH.WARMUP_ITERS must be in [0, SOLVER.MAX_ITER), got {s.SEARCH.WARMUP_ITERS}",
    )
    _check(cfg.DATALOADER.NUM_WORKERS >= 0, "DATALOADER.NUM_WORKERS must be >= 0")
    _check(cfg.DATALOADER.SIZE_DIVISIBILITY >= 0, "DATALOADER.SIZE_DIVISIBILITY must be >= 0")
    bad = cfg.DATALOADER.MAX_BAD_IMAGE_FRACTION
    _check(0 <= bad < 1, f"DATALOADER.MAX_BAD_IMAGE_FRACTION must be in [0, 1), got {bad}")

    inp = cfg.INPUT
    _check(len(inp.MIN_SIZE_TRAIN) > 0, "INPUT.MIN_SIZE_TRAIN must not be empty")
    _check(all(v > 0 for v in inp.MIN_SIZE_TRAIN), "INPUT.MIN_SIZE_TRAIN sizes must be > 0")
    rng = tuple(inp.MIN_SIZE_RANGE_TRAIN)
    _check(
        len(rng) == 2 and (rng == (-1, -1) or 0 < rng[0] <= rng[1]),
        f"INPUT.MIN_SIZE_RANGE_TRAIN must be (-1, -1) or (low, high) with 0 < low <= high, got {rng}",
    )
    _check(inp.MIN_SIZE_TEST > 0 and inp.MAX_SIZE_TEST > 0, "INPUT.MIN/MAX_SIZE_TEST must be > 0")
    _check(
        len(inp.PIXEL_MEAN) == 3 and len(inp.PIXEL_STD) == 3,
        "INPUT.PIXEL_MEAN/STD need 3 values",
    )
    _check(0 <= inp.HORIZONTAL_FLIP_PROB_TRAIN <= 1, "INPUT.HORIZONTAL_FLIP_PROB_TRAIN in [0, 1]")

    _check_pixels(inp, cfg.MODEL.WEIGHT)
    _check_unsupported(cfg)

    m = cfg.MODEL
    conv_body_depth(m.BACKBONE.CONV_BODY)
    _check(
        0 <= m.BACKBONE.FREEZE_CONV_BODY_AT <= 5,
        f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..5, got {m.BACKBONE.FREEZE_CONV_BODY_AT}",
    )
    _check(
        m.BACKBONE.NORM in NORMS,
        f"MODEL.BACKBONE.NORM must be one of {NORMS}, got {m.BACKBONE.NORM!r}",
    )
    check_group_norm_width("MODEL.RESNETS.BACKBONE_OUT_CHANNELS", m.RESNETS.BACKBONE_OUT_CHANNELS)
    _check(
        not m.BACKBONE.FREEZE_FPN or bool(m.WEIGHT),
        "MODEL.BACKBONE.FREEZE_FPN True freezes a backbone that MODEL.WEIGHT leaves random: give "
        "pretrained weights (e.g. the demo's stage-0 model_final.pth) or set it False",
    )
    _check(
        m.FCOS.NUM_CLASSES >= 2, f"MODEL.FCOS.NUM_CLASSES must be >= 2, got {m.FCOS.NUM_CLASSES}"
    )
    _check(
        tuple(m.FCOS.FPN_STRIDES) == FPN_STRIDES,
        f"MODEL.FCOS.FPN_STRIDES must be {FPN_STRIDES} (P3-P7), got {tuple(m.FCOS.FPN_STRIDES)}",
    )
    _check(0 < m.FCOS.PRIOR_PROB < 1, "MODEL.FCOS.PRIOR_PROB must be in (0, 1)")
    _check(
        0 <= m.FCOS.INFERENCE_TH < 1,
        f"MODEL.FCOS.INFERENCE_TH must be in [0, 1), got {m.FCOS.INFERENCE_TH}",
    )
    _check(0 < m.FCOS.NMS_TH <= 1, f"MODEL.FCOS.NMS_TH must be in (0, 1], got {m.FCOS.NMS_TH}")
    _check(
        m.FCOS.PRE_NMS_TOP_N >= 1,
        f"MODEL.FCOS.PRE_NMS_TOP_N must be >= 1, got {m.FCOS.PRE_NMS_TOP_N}",
    )
    _check(m.FCOS.NUM_CONVS >= 1, "MODEL.FCOS.NUM_CONVS must be >= 1")
    _check(
        m.FCOS.IOU_LOSS_TYPE in IOU_LOSS_TYPES,
        f"MODEL.FCOS.IOU_LOSS_TYPE must be one of {IOU_LOSS_TYPES}, got {m.FCOS.IOU_LOSS_TYPE!r}",
    )
    _check(
        m.FCOS.CENTER_SAMPLING_RADIUS >= 0,
        "MODEL.FCOS.CENTER_SAMPLING_RADIUS must be >= 0 (0: no centre sampling), "
        f"got {m.FCOS.CENTER_SAMPLING_RADIUS}",
    )
    _check_retinanet(m.RETINANET)
    check_compute_path(m.COMPUTE_PATH)
    detector_name(cfg)
    for tower in ("BOX", "CLS"):
        for field in ("NUM_CELLS", "NUM_NODES"):
            key = f"{field}_{tower}"
            _check(m.FAD[key] >= 1, f"MODEL.FAD.{key} must be >= 1, got {m.FAD[key]}")
        key = f"NUM_CHANNELS_{tower}"
        check_group_norm_width(f"MODEL.FAD.{key}", m.FAD[key])
    _check(
        m.FAD.SPACE in SPACES,
        f"MODEL.FAD.SPACE must be one of {tuple(SPACES)}, got {m.FAD.SPACE!r}",
    )


def _check_amp(amp: str) -> None:
    """SOLVER.AMP names a mode of `fad.runtime.precision.AMP_MODES`."""
    hint = " (YAML reads an unquoted off as False: write AMP: 'off')" if amp == "False" else ""
    _check(
        amp in AMP_MODES,
        f"SOLVER.AMP must be one of {tuple(AMP_MODES)}, got {amp!r}{hint}",
    )


def _check_retinanet(r: CN) -> None:
    """MODEL.RETINANET.*: anchors on P3-P7, thresholds and loss parameters in range."""
    key = "MODEL.RETINANET"
    _check(r.NUM_CLASSES >= 2, f"{key}.NUM_CLASSES must be >= 2, got {r.NUM_CLASSES}")
    _check(
        tuple(r.ANCHOR_STRIDES) == FPN_STRIDES,
        f"{key}.ANCHOR_STRIDES must be {FPN_STRIDES} (P3-P7), got {tuple(r.ANCHOR_STRIDES)}",
    )
    _check(
        len(r.ANCHOR_SIZES) == len(FPN_STRIDES) and min(r.ANCHOR_SIZES) > 0,
        f"{key}.ANCHOR_SIZES needs {len(FPN_STRIDES)} sizes > 0 (one per level P3-P7), "
        f"got {tuple(r.ANCHOR_SIZES)}",
    )
    _check(
        len(r.ASPECT_RATIOS) > 0 and min(r.ASPECT_RATIOS) > 0,
        f"{key}.ASPECT_RATIOS needs ratios > 0, got {tuple(r.ASPECT_RATIOS)}",
    )
    _check(r.OCTAVE > 0, f"{key}.OCTAVE must be > 0, got {r.OCTAVE}")
    _check(r.SCALES_PER_OCTAVE >= 1, f"{key}.SCALES_PER_OCTAVE must be >= 1")
    _check(r.NUM_CONVS >= 1, f"{key}.NUM_CONVS must be >= 1")
    _check(
        0 <= r.BG_IOU_THRESHOLD <= r.FG_IOU_THRESHOLD <= 1,
        f"{key}.BG_IOU_THRESHOLD ({r.BG_IOU_THRESHOLD}) <= FG_IOU_THRESHOLD "
        f"({r.FG_IOU_THRESHOLD}), both in [0, 1]",
    )
    _check(0 < r.PRIOR_PROB < 1, f"{key}.PRIOR_PROB must be in (0, 1)")
    _check(0 <= r.LOSS_ALPHA <= 1, f"{key}.LOSS_ALPHA must be in [0, 1]")
    _check(r.LOSS_GAMMA >= 0, f"{key}.LOSS_GAMMA must be >= 0")
    _check(r.BBOX_REG_BETA >= 0, f"{key}.BBOX_REG_BETA must be >= 0 (0: L1)")
    _check(r.BBOX_REG_WEIGHT > 0, f"{key}.BBOX_REG_WEIGHT must be > 0")
    _check(0 < r.NMS_TH <= 1, f"{key}.NMS_TH must be in (0, 1]")
    _check(0 <= r.INFERENCE_TH < 1, f"{key}.INFERENCE_TH must be in [0, 1)")
    _check(r.PRE_NMS_TOP_N >= 1, f"{key}.PRE_NMS_TOP_N must be >= 1")
