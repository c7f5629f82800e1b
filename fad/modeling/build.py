"""Config -> detector. The only place that reads MODEL.* keys; modules get explicit arguments.

MODEL.FCOS_ON builds FCOS from MODEL.FCOS.*, MODEL.RETINANET_ON builds RetinaNet from
MODEL.RETINANET.* (exactly one of the two); both take their towers from MODEL.FAD.* and a genotype.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from torch import nn
from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.anchors import AnchorGrid, octave_sizes
from fad.modeling.backbone import build_resnet_fpn, conv_body_depth
from fad.modeling.fcos import FCOSDetector, TrainTestTransform
from fad.modeling.head import FCOSTowerHead
from fad.modeling.pretrained import load_pretrained_backbone
from fad.modeling.retinanet import RetinaNetDetector, RetinaNetTowerHead
from fad.modeling.speed import compile_towers, set_compute_path, use_channels_last
from fad.search_space.genotype import ROLES, Genotype
from fad.search_space.towers import CellTowerSpec, Tower, TowerSpec, build_towers

log = logging.getLogger("fad")

# detector -> (its MODEL.*_ON switch, its MODEL.* section)
DETECTORS = {"fcos": ("FCOS_ON", "FCOS"), "retinanet": ("RETINANET_ON", "RETINANET")}


def detector_name(cfg: CN) -> str:
    """'fcos' or 'retinanet': the one detector whose MODEL.*_ON switch is True."""
    on = [name for name, (switch, _) in DETECTORS.items() if cfg.MODEL[switch]]
    if len(on) == 1:
        return on[0]
    if not on:
        raise FadError("MODEL.FCOS_ON and MODEL.RETINANET_ON are both False: set one of them True")
    raise FadError(
        "MODEL.FCOS_ON and MODEL.RETINANET_ON are both True: set MODEL.FCOS_ON False to build "
        "RetinaNet (the original silently built FCOS), and MODEL.RETINANET.USE_C5 True for the "
        "original RetinaNet's P6 from C5 (fad's default is FCOS's False)"
    )


def head_section(cfg: CN) -> tuple[str, CN]:
    """('MODEL.FCOS', cfg.MODEL.FCOS) or ('MODEL.RETINANET', ...): the detector's own keys."""
    _, section = DETECTORS[detector_name(cfg)]
    return f"MODEL.{section}", cfg.MODEL[section]


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
    fcos = detector_name(cfg) == "fcos"
    return TowerSpec(
        mode=mode,
        channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_convs=head_section(cfg)[1].NUM_CONVS,
        box=_cell_tower(fad, "box", genotypes),
        cls=_cell_tower(fad, "cls", genotypes),
        repshare=fad.REPSHARE,
        space=fad.SPACE,
        standard_norm=fcos,  # GroupNorm in FCOS's standard towers, none in RetinaNet's
        head_init_reduce=("cls",) if fcos else ROLES,  # as the original heads
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
) -> FCOSDetector | RetinaNetDetector:
    """FCOS or RetinaNet (`detector_name`) with the towers the config (and genotypes) call for,
    for `num_classes` object classes (see `logit_classes` for MODEL.*.NUM_CLASSES).

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
    inp = cfg.INPUT
    transform = TrainTestTransform(
        train_min_sizes(cfg),
        inp.MAX_SIZE_TRAIN,
        inp.MIN_SIZE_TEST,
        inp.MAX_SIZE_TEST,
        inp.PIXEL_MEAN,
        inp.PIXEL_STD,
        size_divisible=cfg.DATALOADER.SIZE_DIVISIBILITY,
        to_bgr255=inp.TO_BGR255,
    )
    build = _retinanet if detector_name(cfg) == "retinanet" else _fcos
    return build(cfg, _Parts(backbone, transform, towers, num_classes))


def apply_speed_paths(detector: nn.Module, cfg: CN) -> None:
    """MODEL.COMPUTE_PATH, MODEL.CHANNELS_LAST and MODEL.COMPILE, in place, on a built detector
    that a run trains, searches or evaluates (exports and `fad.load` keep the plain detector)."""
    set_compute_path(detector, cfg.MODEL.COMPUTE_PATH)
    if cfg.MODEL.CHANNELS_LAST:
        use_channels_last(detector)
    if cfg.MODEL.COMPILE:
        compile_towers(detector.head)


class _Parts(NamedTuple):
    """What either detector is made of besides its head's own keys."""

    backbone: nn.Module
    transform: TrainTestTransform
    towers: tuple[Tower, Tower]  # (box, cls)
    num_classes: int  # object classes of the data


def _shared_options(cfg: CN, parts: _Parts) -> dict[str, object]:
    """The candidate selection and focal loss keys both detectors have, as keyword arguments."""
    _, section = head_section(cfg)
    return {
        "score_thresh": section.INFERENCE_TH,
        "nms_thresh": section.NMS_TH,
        "detections_per_img": cfg.TEST.DETECTIONS_PER_IMG,
        "topk_candidates": section.PRE_NMS_TOP_N,
        "focal_alpha": section.LOSS_ALPHA,
        "focal_gamma": section.LOSS_GAMMA,
        "reported_classes": parts.num_classes,
    }


def _fcos(cfg: CN, parts: _Parts) -> FCOSDetector:
    f = cfg.MODEL.FCOS
    head = FCOSTowerHead(
        *parts.towers,
        in_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_classes=logit_classes(cfg, parts.num_classes),
        num_levels=len(f.FPN_STRIDES),
        prior_prob=f.PRIOR_PROB,
        norm_reg_targets=f.NORM_REG_TARGETS,
        centerness_on_reg=f.CENTERNESS_ON_REG,
    )
    return FCOSDetector(
        parts.backbone,
        head,
        parts.transform,
        strides=f.FPN_STRIDES,
        center_sampling_radius=f.CENTER_SAMPLING_RADIUS,
        norm_reg_targets=f.NORM_REG_TARGETS,
        **_shared_options(cfg, parts),
        iou_loss_type=f.IOU_LOSS_TYPE,
    )


def _retinanet(cfg: CN, parts: _Parts) -> RetinaNetDetector:
    r = cfg.MODEL.RETINANET
    anchors = AnchorGrid(
        r.ANCHOR_STRIDES,
        octave_sizes(r.ANCHOR_SIZES, r.OCTAVE, r.SCALES_PER_OCTAVE),
        r.ASPECT_RATIOS,
    )
    head = RetinaNetTowerHead(
        *parts.towers,
        in_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_classes=logit_classes(cfg, parts.num_classes),
        num_anchors=anchors.num_anchors_per_location()[0],
        prior_prob=r.PRIOR_PROB,
    )
    return RetinaNetDetector(
        parts.backbone,
        head,
        parts.transform,
        anchors,
        fg_iou_thresh=r.FG_IOU_THRESHOLD,
        bg_iou_thresh=r.BG_IOU_THRESHOLD,
        **_shared_options(cfg, parts),
        bbox_reg_beta=r.BBOX_REG_BETA,
        bbox_reg_weight=r.BBOX_REG_WEIGHT,
    )
