"""Config -> detector. The only place that reads MODEL.* keys; modules get explicit arguments."""

from __future__ import annotations

import logging

from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.backbone import build_resnet_fpn, conv_body_depth
from fad.modeling.fcos import FCOSDetector, TrainTestTransform
from fad.modeling.head import FCOSTowerHead
from fad.modeling.pretrained import load_pretrained_backbone
from fad.search_space.genotype import Genotype
from fad.search_space.towers import CellTowerSpec, TowerSpec, build_towers

log = logging.getLogger("fad")


def tower_mode(cfg: CN, genotypes: dict[str, Genotype] | None) -> str:
    """'standard' (plain FCOS), 'search' (MODEL.FAD.SEARCH) or 'genotype' (a genotype given)."""
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
    return TowerSpec(
        mode=mode,
        channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_convs=cfg.MODEL.FCOS.NUM_CONVS,
        box=_cell_tower(fad, "box", genotypes),
        cls=_cell_tower(fad, "cls", genotypes),
        repshare=fad.REPSHARE,
        space=fad.SPACE,
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
    """The number of class logits: MODEL.FCOS.NUM_CLASSES - 1, as the original (which counts the
    background), for data of `num_classes` object classes.

    More logits than classes is what the original did when searching on VOC with COCO's 81: the
    extra logits are trained as negatives everywhere and never reported. Fewer is an error.
    """
    configured = cfg.MODEL.FCOS.NUM_CLASSES - 1
    if configured < num_classes:
        raise FadError(
            f"MODEL.FCOS.NUM_CLASSES {cfg.MODEL.FCOS.NUM_CLASSES} (object classes + background) "
            f"is too small for the {num_classes} classes of the data; set it to {num_classes + 1}"
        )
    if configured > num_classes:
        log.warning(
            "MODEL.FCOS.NUM_CLASSES %d gives %d class logits for %d classes (as the original): "
            "the other %d are trained as background and never reported; set it to %d to drop them",
            cfg.MODEL.FCOS.NUM_CLASSES,
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
) -> FCOSDetector:
    """FCOS with the towers the config (and genotypes) call for, for `num_classes` object classes
    (see `logit_classes` for MODEL.FCOS.NUM_CLASSES).

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
    )
    if load_weights:
        load_pretrained_backbone(backbone.body, cfg.MODEL.WEIGHT, arch)
    box_tower, cls_tower = build_towers(tower_spec(cfg, genotypes))
    head = FCOSTowerHead(
        box_tower,
        cls_tower,
        in_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
        num_classes=logit_classes(cfg, num_classes),
        num_levels=len(cfg.MODEL.FCOS.FPN_STRIDES),
        prior_prob=cfg.MODEL.FCOS.PRIOR_PROB,
        norm_reg_targets=cfg.MODEL.FCOS.NORM_REG_TARGETS,
        centerness_on_reg=cfg.MODEL.FCOS.CENTERNESS_ON_REG,
    )
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
    f = cfg.MODEL.FCOS
    return FCOSDetector(
        backbone,
        head,
        transform,
        strides=f.FPN_STRIDES,
        center_sampling_radius=f.CENTER_SAMPLING_RADIUS,
        norm_reg_targets=f.NORM_REG_TARGETS,
        score_thresh=f.INFERENCE_TH,
        nms_thresh=f.NMS_TH,
        detections_per_img=cfg.TEST.DETECTIONS_PER_IMG,
        topk_candidates=f.PRE_NMS_TOP_N,
        focal_alpha=f.LOSS_ALPHA,
        focal_gamma=f.LOSS_GAMMA,
        iou_loss_type=f.IOU_LOSS_TYPE,
        reported_classes=num_classes,
    )
