"""Range and consistency checks on a merged config, run before any heavy work.

The constraints are the components' own: the backbones and norms of `fad.modeling.backbone`, the
op spaces and GroupNorm widths of `fad.search_space.ops`, the optimizers and warmups of
`fad.solver`, the IoU losses of `fad.modeling.loss`; this module only names the keys.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.backbone import FPN_STRIDES, NORMS, conv_body_depth
from fad.modeling.loss import IOU_LOSS_TYPES
from fad.search_space.ops import SPACES, check_group_norm_width
from fad.solver import OPTIMIZERS, WARMUP_METHODS

# Keys of the original for parts fad does not have: accepted only at the value that means "off"
# (key -> (accepted value, what another value would need)).
UNSUPPORTED_VALUES: dict[str, tuple[object, str]] = {
    "MODEL.RETINANET_ON": (False, "fad has no RetinaNet yet"),
    "MODEL.FCOS_ON": (True, "fad's detector is FCOS"),
    "MODEL.RPN_ONLY": (True, "fad's detectors are one-stage"),
    "MODEL.MASK_ON": (False, "fad has no mask head"),
    "MODEL.KEYPOINT_ON": (False, "fad has no keypoint head"),
    "MODEL.CLS_AGNOSTIC_BBOX_REG": (False, "FCOS regresses one box per location"),
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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise FadError(message)


def validate_config(cfg: CN, *, world_size: int = 1) -> None:
    """Raise a FadError naming the key path of the first invalid value."""
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
        m.FCOS.NUM_CLASSES >= 2, f"MODEL.FCOS.NUM_CLASSES must be >= 2, got {m.FCOS.NUM_CLASSES}"
    )
    _check(
        tuple(m.FCOS.FPN_STRIDES) == FPN_STRIDES,
        f"MODEL.FCOS.FPN_STRIDES must be {FPN_STRIDES} (P3-P7), got {tuple(m.FCOS.FPN_STRIDES)}",
    )
    _check(0 < m.FCOS.PRIOR_PROB < 1, "MODEL.FCOS.PRIOR_PROB must be in (0, 1)")
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
