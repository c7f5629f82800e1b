"""Range and consistency checks on a merged config, run before any heavy work.

The constraints are the components' own: the backbones and norms of `fad.modeling.backbone`, the
op spaces and GroupNorm widths of `fad.search_space.ops`, the optimizers and warmups of
`fad.solver`, the detectors' sections of `fad.modeling.build` (each registered detector checks
its own keys); this module only names the keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.backbone import NORMS, conv_body_depth
from fad.modeling.build import validate_detectors
from fad.modeling.speed import COMPILE_MODES
from fad.runtime.limits import MAX_INPUT_SIDE, shown
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
DEVICE_RE = re.compile(r"cpu|cuda(:\d{1,3})?")
# Budgets on sizes that set how much memory and time a run takes (far above any real setting):
# a typo such as INPUT.MIN_SIZE_TRAIN (100000,) is an error, not minutes of swapping.
UPPER_BOUNDS: dict[str, int] = {
    "INPUT.MAX_SIZE_TRAIN": MAX_INPUT_SIDE,
    "INPUT.MIN_SIZE_TEST": MAX_INPUT_SIDE,
    "INPUT.MAX_SIZE_TEST": MAX_INPUT_SIDE,
    "SOLVER.MAX_ITER": 10**9,
    "SOLVER.IMS_PER_BATCH": 1024,
    "TEST.IMS_PER_BATCH": 1024,
    "TEST.DETECTIONS_PER_IMG": 10_000,
    "DATALOADER.NUM_WORKERS": 128,
    "DATALOADER.SIZE_DIVISIBILITY": 1024,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS": 2048,
    "MODEL.RESNETS.NUM_GROUPS": 256,
    "MODEL.RESNETS.WIDTH_PER_GROUP": 1024,
    "MODEL.FCOS.NUM_CLASSES": 10_001,
    "MODEL.FCOS.NUM_CONVS": 32,
    "MODEL.FCOS.PRE_NMS_TOP_N": 100_000,
    "MODEL.RETINANET.NUM_CLASSES": 10_001,
    "MODEL.RETINANET.NUM_CONVS": 32,
    "MODEL.RETINANET.PRE_NMS_TOP_N": 100_000,
    "MODEL.RETINANET.SCALES_PER_OCTAVE": 16,
    "MODEL.FAD.NUM_CELLS_BOX": 16,
    "MODEL.FAD.NUM_CELLS_CLS": 16,
    "MODEL.FAD.NUM_NODES_BOX": 16,
    "MODEL.FAD.NUM_NODES_CLS": 16,
    "MODEL.FAD.NUM_CHANNELS_BOX": 2048,
    "MODEL.FAD.NUM_CHANNELS_CLS": 2048,
}
MAX_ASPECT_RATIOS = 16


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
    _check_solver(cfg, world_size)
    _check_input(cfg)
    _check_model(cfg)
    _check_budgets(cfg)
    _check_rates(cfg.SOLVER)
    for key in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[key]:
            _check(
                isinstance(name, str) and bool(name.strip()),
                f"DATASETS.{key} must hold dataset names (non-empty strings), got {shown(name)}",
            )


def _check_solver(cfg: CN, world_size: int) -> None:
    """SOLVER.*, TEST.* and DATALOADER.*."""
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
    tau = tuple(s.SEARCH.TAU)
    _check(
        len(tau) == 2 and all(t > 0 for t in tau),
        f"SOLVER.SEARCH.TAU must be two temperatures > 0 (start, end), got {tau}",
    )
    for key in ("COST_BUDGET", "COST_WEIGHT", "COST_CELLS", "ENTROPY_WEIGHT"):
        _check(s.SEARCH[key] >= 0, f"SOLVER.SEARCH.{key} must be >= 0, got {s.SEARCH[key]}")
    _check(
        cfg.MODEL.FAD.PARTIAL_CHANNELS >= 1,
        f"MODEL.FAD.PARTIAL_CHANNELS must be >= 1, got {cfg.MODEL.FAD.PARTIAL_CHANNELS}",
    )
    _check(
        cfg.MODEL.BACKBONE.FEATURE_CACHE_MB >= 0,
        f"MODEL.BACKBONE.FEATURE_CACHE_MB must be >= 0, got {cfg.MODEL.BACKBONE.FEATURE_CACHE_MB}",
    )
    _check(cfg.DATALOADER.NUM_WORKERS >= 0, "DATALOADER.NUM_WORKERS must be >= 0")
    _check(cfg.DATALOADER.SIZE_DIVISIBILITY >= 0, "DATALOADER.SIZE_DIVISIBILITY must be >= 0")
    bad = cfg.DATALOADER.MAX_BAD_IMAGE_FRACTION
    _check(0 <= bad < 1, f"DATALOADER.MAX_BAD_IMAGE_FRACTION must be in [0, 1), got {bad}")


def _check_input(cfg: CN) -> None:
    """INPUT.*, the pixel statistics against MODEL.WEIGHT, the original's unsupported keys."""
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
    _check(min(inp.PIXEL_STD) > 0, f"INPUT.PIXEL_STD must be > 0, got {tuple(inp.PIXEL_STD)}")
    _check(0 <= inp.HORIZONTAL_FLIP_PROB_TRAIN <= 1, "INPUT.HORIZONTAL_FLIP_PROB_TRAIN in [0, 1]")

    _check_pixels(inp, cfg.MODEL.WEIGHT)
    _check_unsupported(cfg)


def _check_model(cfg: CN) -> None:
    """MODEL.*: backbone, FCOS and RetinaNet heads, FAD towers, device."""
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
    validate_detectors(cfg)
    check_compute_path(m.COMPUTE_PATH)
    _check(
        m.COMPILE_MODE in COMPILE_MODES,
        f"MODEL.COMPILE_MODE must be one of {COMPILE_MODES}, got {m.COMPILE_MODE!r}",
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
    _check(
        DEVICE_RE.fullmatch(m.DEVICE) is not None,
        f"MODEL.DEVICE must be 'cpu', 'cuda' or 'cuda:N', got {shown(m.DEVICE)}",
    )


def _value(cfg: CN, key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _check_budgets(cfg: CN) -> None:
    """The sizes of `UPPER_BOUNDS`, the training sizes and the anchors per location."""
    for key, limit in UPPER_BOUNDS.items():
        value = _value(cfg, key)
        _check(value <= limit, f"{key} must be <= {limit}, got {shown(value)}")
    inp = cfg.INPUT
    _check(inp.MAX_SIZE_TRAIN > 0, f"INPUT.MAX_SIZE_TRAIN must be > 0, got {inp.MAX_SIZE_TRAIN}")
    for key in ("MIN_SIZE_TRAIN", "MIN_SIZE_RANGE_TRAIN"):
        sizes = tuple(inp[key])
        _check(
            max(sizes) <= MAX_INPUT_SIDE,
            f"INPUT.{key} sizes must be <= {MAX_INPUT_SIDE}, got {shown(sizes)}",
        )
    r = cfg.MODEL.RETINANET
    _check(
        len(r.ASPECT_RATIOS) <= MAX_ASPECT_RATIOS,
        f"MODEL.RETINANET.ASPECT_RATIOS holds at most {MAX_ASPECT_RATIOS} ratios, "
        f"got {len(r.ASPECT_RATIOS)}",
    )
    _check(
        max(r.ANCHOR_SIZES) <= 4 * MAX_INPUT_SIDE and r.OCTAVE <= 16,
        f"MODEL.RETINANET.ANCHOR_SIZES must be <= {4 * MAX_INPUT_SIDE} and OCTAVE <= 16, got "
        f"{shown(tuple(r.ANCHOR_SIZES))} and {r.OCTAVE}",
    )


def _check_rates(s: CN) -> None:
    """Factors that scale a learning rate or a decay: a negative one would train backwards."""
    _check(s.GAMMA > 0, f"SOLVER.GAMMA must be > 0 (the lr is multiplied by it), got {s.GAMMA}")
    _check(s.BIAS_LR_FACTOR > 0, f"SOLVER.BIAS_LR_FACTOR must be > 0, got {s.BIAS_LR_FACTOR}")
    _check(
        0 < s.WARMUP_FACTOR <= 1, f"SOLVER.WARMUP_FACTOR must be in (0, 1], got {s.WARMUP_FACTOR}"
    )
    _check(
        s.WEIGHT_DECAY_BIAS >= 0,
        f"SOLVER.WEIGHT_DECAY_BIAS must be >= 0, got {s.WEIGHT_DECAY_BIAS}",
    )
    _check(min(s.STEPS, default=0) >= 0, f"SOLVER.STEPS must be >= 0, got {tuple(s.STEPS)}")
    _check(s.CLIP_GRAD_NORM >= 0, f"SOLVER.CLIP_GRAD_NORM must be >= 0, got {s.CLIP_GRAD_NORM}")
    a = s.SEARCH
    _check(a.BASE_LR_ALPHA > 0, f"SOLVER.SEARCH.BASE_LR_ALPHA must be > 0, got {a.BASE_LR_ALPHA}")
    _check(
        a.WEIGHT_DECAY_ALPHA >= 0,
        f"SOLVER.SEARCH.WEIGHT_DECAY_ALPHA must be >= 0, got {a.WEIGHT_DECAY_ALPHA}",
    )
    _check(
        len(a.BETAS_ALPHA) == 2 and all(0 <= b < 1 for b in a.BETAS_ALPHA),
        f"SOLVER.SEARCH.BETAS_ALPHA must be two numbers in [0, 1), got {tuple(a.BETAS_ALPHA)}",
    )
    _check(
        a.CLIP_GRAD_NORM >= 0,
        f"SOLVER.SEARCH.CLIP_GRAD_NORM must be >= 0, got {a.CLIP_GRAD_NORM}",
    )


def _check_amp(amp: str) -> None:
    """SOLVER.AMP names a mode of `fad.runtime.precision.AMP_MODES`."""
    hint = " (YAML reads an unquoted off as False: write AMP: 'off')" if amp == "False" else ""
    _check(
        amp in AMP_MODES,
        f"SOLVER.AMP must be one of {tuple(AMP_MODES)}, got {amp!r}{hint}",
    )
