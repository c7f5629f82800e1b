"""Config -> detector. The only place that reads MODEL.* keys; modules get explicit arguments.

The detector is the registered one (`fad.modeling.detectors.DETECTORS`) whose MODEL.<SECTION>_ON
is True (exactly one): MODEL.FCOS_ON builds FCOS from MODEL.FCOS.*, MODEL.RETINANET_ON RetinaNet
from MODEL.RETINANET.*. This module reads the keys every detector has (backbone, input, towers
from MODEL.FAD.* and a genotype, and the shared keys of the detector's section) into
`DetectorParts`; the detector's entry reads its own keys and builds it.
"""

from __future__ import annotations

import logging

from torch import nn
from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.backbone import build_resnet_fpn, conv_body_depth
from fad.modeling.candidates import Selection
from fad.modeling.detectors import DETECTORS
from fad.modeling.feature_cache import enable_feature_cache
from fad.modeling.loss import FocalLoss
from fad.modeling.pretrained import load_pretrained_backbone
from fad.modeling.registry import DetectorEntry, DetectorParts, require
from fad.modeling.speed import compile_towers, set_compute_path, use_channels_last
from fad.modeling.transform import TrainTestTransform
from fad.search_space.genotype import Genotype
from fad.search_space.towers import CellTowerSpec, TowerSpec, build_towers

log = logging.getLogger("fad")


def _listed(keys: list[str]) -> str:
    """'A and B are both' / 'A, B and C are all'."""
    names = ", ".join(keys[:-1]) + f" and {keys[-1]}"
    return f"{names} are {'both' if len(keys) == 2 else 'all'}"


def detector_entry(cfg: CN) -> DetectorEntry:
    """The registered detector whose MODEL.<SECTION>_ON switch is True (exactly one)."""
    on = [e for e in DETECTORS.values() if cfg.MODEL.get(e.switch, False)]
    if len(on) == 1:
        return on[0]
    if not on:
        switches = [f"MODEL.{e.switch}" for e in DETECTORS.values() if e.switch in cfg.MODEL]
        raise FadError(f"{_listed(switches)} False: set one of them True")
    hints = "; ".join(e.switch_hint for e in on if e.switch_hint)
    advice = hints or "set exactly one of them True"
    raise FadError(f"{_listed([f'MODEL.{e.switch}' for e in on])} True: {advice}")


def detector_name(cfg: CN) -> str:
    """The name of the detector the config builds ('fcos', 'retinanet', ...)."""
    return detector_entry(cfg).name


def head_section(cfg: CN) -> tuple[str, CN]:
    """('MODEL.FCOS', cfg.MODEL.FCOS) or ('MODEL.RETINANET', ...): the detector's own keys."""
    section = detector_entry(cfg).section
    return f"MODEL.{section}", cfg.MODEL[section]


def check_shared_keys(section: CN, key: str) -> None:
    """The keys every detector's section has (see `fad.modeling.registry`), in range."""
    require(section.NUM_CLASSES >= 2, f"{key}.NUM_CLASSES must be >= 2, got {section.NUM_CLASSES}")
    require(section.NUM_CONVS >= 1, f"{key}.NUM_CONVS must be >= 1")
    require(0 < section.PRIOR_PROB < 1, f"{key}.PRIOR_PROB must be in (0, 1)")
    require(
        0 <= section.INFERENCE_TH < 1,
        f"{key}.INFERENCE_TH must be in [0, 1), got {section.INFERENCE_TH}",
    )
    require(0 < section.NMS_TH <= 1, f"{key}.NMS_TH must be in (0, 1], got {section.NMS_TH}")
    require(
        section.PRE_NMS_TOP_N >= 1,
        f"{key}.PRE_NMS_TOP_N must be >= 1, got {section.PRE_NMS_TOP_N}",
    )
    require(0 <= section.LOSS_ALPHA <= 1, f"{key}.LOSS_ALPHA must be in [0, 1]")
    require(section.LOSS_GAMMA >= 0, f"{key}.LOSS_GAMMA must be >= 0")


def validate_detectors(cfg: CN) -> None:
    """Every registered detector's section in the config (its shared keys, then its own
    checks), then the switches: exactly one detector on. A FadError names the first bad key."""
    for entry in DETECTORS.values():
        if entry.section in cfg.MODEL:
            key = f"MODEL.{entry.section}"
            check_shared_keys(cfg.MODEL[entry.section], key)
            entry.validate(cfg.MODEL[entry.section], key)
    detector_entry(cfg)


def tower_mode(cfg: CN, genotypes: dict[str, Genotype] | None) -> str:
    """'standard' (plain FCOS / RetinaNet), 'search' (MODEL.FAD.SEARCH) or 'genotype'."""
    fad = cfg.MODEL.FAD
    if fad.SEARCH:
        return "search"
    if genotypes:
        return "genotype"
    if cfg.MODEL.FAD_ON:
        raise FadError(
            "MODEL.FAD_ON with MODEL.FAD.SEARCH False builds the towers of a genotype: give "
            "--genotype-file FILE (e.g. a search's genotype.log) or --genotype paper"
        )
    return "standard"


def tower_spec(cfg: CN, genotypes: dict[str, Genotype] | None) -> TowerSpec:
    mode = tower_mode(cfg, genotypes)
    fad = cfg.MODEL.FAD
    genotypes = genotypes or {}
    if mode == "genotype":
        for role, flag in (("box", fad.BOXTOWER), ("cls", fad.CLSTOWER)):
            if flag and role not in genotypes:
                raise FadError(
                    f"MODEL.FAD.{role.upper()}TOWER is on but the genotype has no {role} line"
                )
    entry = detector_entry(cfg)
    return TowerSpec(
        mode=mode,
        channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_convs=cfg.MODEL[entry.section].NUM_CONVS,
        box=_cell_tower(fad, "box", genotypes),
        cls=_cell_tower(fad, "cls", genotypes),
        repshare=fad.REPSHARE,
        space=fad.SPACE,
        standard_norm=entry.standard_norm,
        head_init_reduce=entry.head_init_reduce,
        partial_channels=fad.PARTIAL_CHANNELS if mode == "search" else 1,
        edge_normalization=fad.EDGE_NORMALIZATION and mode == "search",
        decouple_init=fad.DECOUPLE_INIT,
        search_none=fad.SEARCH_NONE,
        search_affine=fad.SEARCH_AFFINE,
    )


def _cell_tower(fad: CN, role: str, genotypes: dict[str, Genotype]) -> CellTowerSpec:
    """MODEL.FAD.{BOX,CLS}TOWER, NUM_{CELLS,NODES,CHANNELS}_{BOX,CLS} of one tower."""
    key = role.upper()
    enabled = fad[f"{key}TOWER"]
    return CellTowerSpec(
        enabled=enabled,
        num_cells=fad[f"NUM_CELLS_{key}"],
        num_nodes=fad[f"NUM_NODES_{key}"],
        edge_channels=fad[f"NUM_CHANNELS_{key}"],
        genotype=genotypes.get(role) if enabled else None,
    )


def backbone_arch(cfg: CN) -> tuple[int, int, int]:
    """(depth, groups, width per group) of MODEL.BACKBONE / MODEL.RESNETS."""
    r = cfg.MODEL.RESNETS
    return conv_body_depth(cfg.MODEL.BACKBONE.CONV_BODY), r.NUM_GROUPS, r.WIDTH_PER_GROUP


def train_min_sizes(cfg: CN) -> tuple[int, ...]:
    low, high = cfg.INPUT.MIN_SIZE_RANGE_TRAIN
    if low != -1:
        return tuple(range(low, high + 1))
    return tuple(cfg.INPUT.MIN_SIZE_TRAIN)


def logit_classes(cfg: CN, num_classes: int) -> int:
    """The number of class logits: MODEL.FCOS.NUM_CLASSES - 1 (MODEL.RETINANET.NUM_CLASSES - 1),
    as the original (which counts the background), for data of `num_classes` object classes.

    More logits than classes is what the original did when searching on VOC with COCO's 81: the
    extra logits are trained as negatives everywhere and never reported. Fewer is an error.
    """
    key, section = head_section(cfg)
    configured = section.NUM_CLASSES - 1
    if configured < num_classes:
        raise FadError(
            f"{key}.NUM_CLASSES {section.NUM_CLASSES} (object classes + background) "
            f"is too small for the {num_classes} classes of the data; set it to {num_classes + 1}"
        )
    if configured > num_classes:
        log.warning(
            "%s.NUM_CLASSES %d gives %d class logits for %d classes (as the original): "
            "the other %d are trained as background and never reported; set it to %d to drop them",
            key,
            section.NUM_CLASSES,
            configured,
            num_classes,
            configured - num_classes,
            num_classes + 1,
        )
    return configured


def build_detector(
    cfg: CN,
    num_classes: int,
    genotypes: dict[str, Genotype] | None = None,
    *,
    load_weights: bool = True,
) -> nn.Module:
    """The config's detector (`detector_entry`) with the towers the config (and genotypes) call
    for, for `num_classes` object classes (see `logit_classes` for MODEL.*.NUM_CLASSES).

    `load_weights` loads MODEL.WEIGHT into the backbone (off when a full checkpoint follows).
    """
    depth, groups, width = arch = backbone_arch(cfg)
    norm = "GN" if cfg.MODEL.BACKBONE.USE_GN else cfg.MODEL.BACKBONE.NORM
    backbone = build_resnet_fpn(
        depth,
        groups=groups,
        width_per_group=width,
        out_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        norm=norm,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT,
        freeze_fpn=cfg.MODEL.BACKBONE.FREEZE_FPN,
        use_c5=cfg.MODEL.RETINANET.USE_C5,
    )
    if load_weights:
        load_pretrained_backbone(backbone, cfg.MODEL.WEIGHT, arch)
    towers = build_towers(tower_spec(cfg, genotypes))
    entry = detector_entry(cfg)
    section = cfg.MODEL[entry.section]
    parts = DetectorParts(
        backbone=backbone,
        transform=train_test_transform(cfg),
        towers=towers,
        in_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_classes=logit_classes(cfg, num_classes),
        prior_prob=section.PRIOR_PROB,
        selection=Selection(
            score_thresh=section.INFERENCE_TH,
            nms_thresh=section.NMS_TH,
            detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
            topk_candidates=section.PRE_NMS_TOP_N,
            reported_classes=num_classes,
        ),
        focal=FocalLoss(section.LOSS_ALPHA, section.LOSS_GAMMA),
    )
    return entry.build(section, parts)


def train_test_transform(cfg: CN) -> TrainTestTransform:
    """INPUT.* and DATALOADER.SIZE_DIVISIBILITY -> the transform every detector uses."""
    inp = cfg.INPUT
    return TrainTestTransform(
        train_min_sizes(cfg),
        inp.MAX_SIZE_TRAIN,
        inp.MIN_SIZE_TEST,
        inp.MAX_SIZE_TEST,
        inp.PIXEL_MEAN,
        inp.PIXEL_STD,
        size_divisible=cfg.DATALOADER.SIZE_DIVISIBILITY,
        to_bgr255=inp.TO_BGR255,
    )


def apply_speed_paths(detector: nn.Module, cfg: CN) -> None:
    """MODEL.COMPUTE_PATH, MODEL.CHANNELS_LAST, MODEL.COMPILE (in MODEL.COMPILE_MODE) and
    MODEL.BACKBONE.FEATURE_CACHE_MB, in place, on a built detector that a run trains, searches or
    evaluates (`fad.load` and `fad predict` set the compute path alone; exports trace the plain
    detector)."""
    set_compute_path(detector, cfg.MODEL.COMPUTE_PATH)
    if cfg.MODEL.CHANNELS_LAST:
        use_channels_last(detector)
    if cfg.MODEL.COMPILE:
        compile_towers(detector.head, cfg.MODEL.COMPILE_MODE)
    if cfg.MODEL.BACKBONE.FEATURE_CACHE_MB > 0:
        enable_feature_cache(detector, cfg.MODEL.BACKBONE.FEATURE_CACHE_MB)
