"""Range and consistency checks on a merged config, run before any heavy work."""

from __future__ import annotations

from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.solver import OPTIMIZERS

CONV_BODIES = ("R-18", "R-34", "R-50", "R-101", "R-152")
WARMUP_METHODS = ("constant", "linear")
BACKBONE_NORMS = ("FrozenBN", "BN", "GN")


def conv_body_depth(conv_body: str) -> int:
    """`R-50-FPN-RETINANET` -> 50; an unknown body is an error listing the valid ones."""
    head = "-".join(conv_body.split("-")[:2])
    if head not in CONV_BODIES or "FPN" not in conv_body:
        raise FadError(
            f"MODEL.BACKBONE.CONV_BODY {conv_body!r} is not supported; use one of "
            + ", ".join(f"{b}-FPN-RETINANET" for b in CONV_BODIES)
        )
    return int(head[2:])


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

    m = cfg.MODEL
    conv_body_depth(m.BACKBONE.CONV_BODY)
    _check(
        0 <= m.BACKBONE.FREEZE_CONV_BODY_AT <= 5,
        f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..5, got {m.BACKBONE.FREEZE_CONV_BODY_AT}",
    )
    _check(
        m.BACKBONE.NORM in BACKBONE_NORMS,
        f"MODEL.BACKBONE.NORM must be one of {BACKBONE_NORMS}, got {m.BACKBONE.NORM!r}",
    )
    width = m.RESNETS.BACKBONE_OUT_CHANNELS
    _check(
        width > 0 and width % 32 == 0,
        f"MODEL.RESNETS.BACKBONE_OUT_CHANNELS must be a positive multiple of 32 (GroupNorm), got {width}",
    )
    _check(
        m.FCOS.NUM_CLASSES >= 2, f"MODEL.FCOS.NUM_CLASSES must be >= 2, got {m.FCOS.NUM_CLASSES}"
    )
    _check(
        tuple(m.FCOS.FPN_STRIDES) == (8, 16, 32, 64, 128),
        f"MODEL.FCOS.FPN_STRIDES must be (8, 16, 32, 64, 128) (P3-P7), got {tuple(m.FCOS.FPN_STRIDES)}",
    )
    _check(0 < m.FCOS.PRIOR_PROB < 1, "MODEL.FCOS.PRIOR_PROB must be in (0, 1)")
    _check(m.FCOS.NUM_CONVS >= 1, "MODEL.FCOS.NUM_CONVS must be >= 1")
    _check(
        m.FCOS.IOU_LOSS_TYPE in ("giou", "iou"),
        f"MODEL.FCOS.IOU_LOSS_TYPE must be 'giou' or 'iou', got {m.FCOS.IOU_LOSS_TYPE!r}",
    )
    for tower in ("BOX", "CLS"):
        for field in ("NUM_CELLS", "NUM_NODES"):
            key = f"{field}_{tower}"
            _check(m.FAD[key] >= 1, f"MODEL.FAD.{key} must be >= 1, got {m.FAD[key]}")
        key = f"NUM_CHANNELS_{tower}"
        _check(
            m.FAD[key] > 0 and m.FAD[key] % 32 == 0,
            f"MODEL.FAD.{key} must be a positive multiple of 32 (GroupNorm), got {m.FAD[key]}",
        )
    _check(
        m.FAD.SPACE in ("released", "with_r3"),
        f"MODEL.FAD.SPACE must be 'released' or 'with_r3', got {m.FAD.SPACE!r}",
    )
