"""RetinaNet: its head over the three kinds of towers, the original's anchors, targets, losses and
candidate selection, and the keys that select it (docs/fidelity.md, RetinaNet)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import box_iou, sigmoid_focal_loss

from fad.config import load_config
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.modeling.retinanet.anchors import AnchorGrid, cell_anchors, octave_sizes
from fad.modeling.retinanet.head import RetinaNetTowerHead
from fad.search_space.genotype import PRESETS
from fad.search_space.towers import (
    CellTowerSpec,
    FixedTower,
    SearchTower,
    StandardTower,
    TowerSpec,
    alphas,
    build_towers,
)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "retinanet_R_18_FPN.yaml"
W, C, K, A = 64, 32, 5, 9  # FPN width, edge width, classes, anchors per location
STRIDES = (8, 16, 32, 64, 128)
pytestmark = pytest.mark.usefixtures("single_thread")


def _spec(mode: str, retinanet: bool = True) -> TowerSpec:
    box, cls = PRESETS["paper"]
    return TowerSpec(
        mode=mode,
        channels=W,
        num_convs=4,
        box=CellTowerSpec(num_cells=1, edge_channels=C, genotype=box),
        cls=CellTowerSpec(num_cells=1, edge_channels=C, genotype=cls),
        standard_norm=not retinanet,
        head_init_reduce=("box", "cls") if retinanet else ("cls",),
    )


def _head(mode: str) -> RetinaNetTowerHead:
    towers = build_towers(_spec(mode))
    return RetinaNetTowerHead(*towers, in_channels=W, num_classes=K, num_anchors=A)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _detector(*opts: str, num_classes: int = K) -> nn.Module:
    five = ["MODEL.RETINANET.NUM_CLASSES", "6"]  # the shipped config is for 3 classes
    cfg = load_config(CONFIG, ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", *five, *opts])
    return build_detector(cfg, num_classes, load_weights=False)


PREDICTORS = (W * 9 + 1) * A * (K + 4)  # two 3x3 convs: A x K logits, A x 4 deltas


@pytest.mark.parametrize("mode", ["standard", "search", "genotype"])
def test_head_shapes_and_parameter_counts_for_each_kind_of_tower(mode):
    torch.manual_seed(0)
    head = _head(mode)
    kind = {"standard": StandardTower, "search": SearchTower, "genotype": FixedTower}[mode]
    assert isinstance(head.box_tower, kind) and isinstance(head.cls_tower, kind)
    features = [torch.randn(2, W, 8, 10), torch.randn(2, W, 4, 5)]
    out = head(features)
    assert out["cls_logits"].shape == (2, (80 + 20) * A, K)
    assert out["bbox_regression"].shape == (2, (80 + 20) * A, 4)
    towers = _params(head.box_tower) + _params(head.cls_tower)
    assert _params(head) == towers + PREDICTORS
    if mode == "standard":  # RetinaNet's towers: 4 x (conv 3x3 -> ReLU), no GroupNorm
        assert towers == 2 * 4 * (W * W * 9 + W)
        assert not any(isinstance(m, nn.GroupNorm) for m in head.modules())
        # the same network as torchvision's RetinaNet head (v1: no norm in the towers)
        assert _params(head) == _params(RetinaNetHead(W, A, K))
    else:  # the same cells as FCOS's towers; the box reduce conv too gets the head init
        assert towers == sum(_params(t) for t in build_towers(_spec(mode, retinanet=False)))
        assert head.box_tower.reduce.bias.abs().sum() == 0
        assert head.box_tower.reduce.weight.std() < 0.02
    assert len(alphas(head)) == (6 if mode == "search" else 0)  # 3 nodes x 2 towers


def test_prediction_layout_is_location_major_then_anchor():
    head = _head("standard")
    feature = torch.randn(1, W, 2, 3)
    out = head([feature])
    box_feature = head.box_tower(feature)
    raw = head.bbox_pred(box_feature)  # [1, A * 4, 2, 3]
    location, anchor = 4, 7  # row 1, column 1; anchor 7 of 9
    expected = raw[0, anchor * 4 : anchor * 4 + 4, 1, 1]
    assert torch.equal(out["bbox_regression"][0, location * A + anchor], expected)
    prior = torch.sigmoid(head.cls_logits.bias)
    assert torch.allclose(prior, torch.full_like(prior, 0.01))


def test_cell_anchors_are_the_originals():
    # Faster R-CNN's published anchors of stride 16, sizes 128-512 (1-based, "+1" pixels): the
    # original's `generate_anchors` gives them minus 1; in continuous coordinates x2, y2 + 1.
    published = torch.tensor(
        [
            [-83, -39, 100, 56],
            [-175, -87, 192, 104],
            [-359, -183, 376, 200],
            [-55, -55, 72, 72],
            [-119, -119, 136, 136],
            [-247, -247, 264, 264],
            [-35, -79, 52, 96],
            [-79, -167, 96, 184],
            [-167, -343, 184, 360],
        ],
        dtype=torch.float32,
    )
    ours = cell_anchors(16, (128, 256, 512), (0.5, 1.0, 2.0)) + 8  # centred on 16 // 2
    assert torch.equal(ours, published + torch.tensor([-1.0, -1.0, 0.0, 0.0]))
    sizes = octave_sizes((32,), 2.0, 3)[0]
    assert sizes == pytest.approx((32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)))


@pytest.mark.parametrize("height, width", [(800, 1088), (100, 150)])
def test_anchors_sit_on_the_nominal_grid_for_any_input_size(height, width):
    model = _detector().eval()
    images, _ = model.transform([torch.rand(3, height, width)])
    features = list(model.backbone(images.tensors).values())
    anchors = model.anchor_generator(images, features)[0]
    start = 0
    for feature, stride in zip(features, STRIDES):
        h, w = feature.shape[-2:]
        level = anchors[start : start + h * w * A].view(h, w, A, 4)
        start += h * w * A
        centres = (level[..., :2] + level[..., 2:]) / 2
        expected_x = torch.arange(w) * stride + stride // 2
        expected_y = torch.arange(h) * stride + stride // 2
        assert torch.allclose(centres[..., 0], expected_x[None, :, None].float().expand(h, w, A))
        assert torch.allclose(centres[..., 1], expected_y[:, None, None].float().expand(h, w, A))
    assert start == anchors.shape[0]


def _batch_losses(model, targets, size=(64, 96)):
    images = [torch.rand(3, *size) for _ in targets]
    model.zero_grad(set_to_none=True)
    losses = model(images, targets)
    sum(losses.values()).backward()
    return losses, [p.grad for p in model.parameters() if p.grad is not None]


def _empty() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


@pytest.mark.parametrize("towers", ["standard", "search"])
def test_empty_images_give_zero_box_loss_and_finite_cls_loss(towers):
    torch.manual_seed(0)
    extra = ["MODEL.FAD_ON", "True", "MODEL.FAD.SEARCH", "True"] if towers == "search" else []
    extra += ["MODEL.FAD.NUM_NODES_BOX", "1", "MODEL.FAD.NUM_NODES_CLS", "1"]
    model = _detector(*extra).train()
    losses, grads = _batch_losses(model, [_empty(), _empty()])
    assert set(losses) == {"loss_retina_cls", "loss_retina_reg"}
    assert losses["loss_retina_reg"].item() == 0.0
    assert torch.isfinite(losses["loss_retina_cls"]) and losses["loss_retina_cls"].item() > 0
    assert grads and all(torch.isfinite(g).all() for g in grads)
    one_box = {"boxes": torch.tensor([[8.0, 10.0, 50.0, 56.0]]), "labels": torch.tensor([2])}
    losses, grads = _batch_losses(model, [_empty(), one_box])
    assert losses["loss_retina_reg"].item() > 0
    assert all(torch.isfinite(g).all() for g in grads)


def test_losses_are_normalised_over_the_batch_as_the_original():
    """cls: focal sum over non-ignored anchors / (#positives + #images); box: smooth L1 (beta
    0.11) / (4 x #positives). torchvision's head divides per image and averages instead."""
    torch.manual_seed(0)
    model = _detector().train()
    captured = {}
    real = model.compute_loss

    def spy(targets, head_outputs, anchors):
        captured.update(targets=targets, outputs=head_outputs, anchors=anchors)
        return real(targets, head_outputs, anchors)

    model.compute_loss = spy
    box = {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([3])}
    losses = model([torch.rand(3, 96, 128), torch.rand(3, 96, 128)], [_empty(), box])
    anchors = captured["anchors"][1]
    gt = captured["targets"][1]["boxes"]
    matched = model.proposal_matcher(box_iou(gt, anchors))
    positive = matched >= 0
    ignored = matched == -2
    num_pos = int(positive.sum())
    assert num_pos >= 1 and ignored.any()
    logits = captured["outputs"]["cls_logits"]
    target = torch.zeros_like(logits[1])
    target[positive, 2] = 1.0
    focal = sigmoid_focal_loss(logits[0], torch.zeros_like(logits[0]), reduction="sum")
    focal = focal + sigmoid_focal_loss(logits[1][~ignored], target[~ignored], reduction="sum")
    assert torch.allclose(losses["loss_retina_cls"], focal / (num_pos + 2))
    deltas = model.box_coder.encode_single(gt.expand(num_pos, 4), anchors[positive])
    regression = captured["outputs"]["bbox_regression"][1][positive]
    smooth = nn.functional.smooth_l1_loss(regression, deltas, beta=0.11, reduction="sum")
    assert torch.allclose(losses["loss_retina_reg"], smooth / (4 * num_pos))


def test_extra_class_logits_are_never_reported_and_labels_start_at_one():
    model = _detector("MODEL.RETINANET.NUM_CLASSES", "9", num_classes=5).eval()
    assert model.head.num_classes == 8
    assert model.head.cls_logits.out_channels == 8 * A
    logits = torch.full((1, 2 * A, 8), -10.0)
    logits[0, 0, 6] = 5.0  # class 7: beyond the dataset's 5 classes
    logits[0, A + 4, 1] = 5.0  # class 2 on location 1, anchor 4
    anchors = AnchorGrid((8,), ((32.0,) * 3,), (0.5, 1.0, 2.0)).anchors([(1, 2)])
    outputs = {"cls_logits": [logits], "bbox_regression": [torch.zeros(1, 2 * A, 4)]}
    found = model.postprocess_detections(outputs, [[anchors]], [(64, 64)])[0]
    assert found["labels"].tolist() == [2]
    assert torch.allclose(found["boxes"][0], anchors[A + 4].clamp(0, 64))


def test_p6_comes_from_c5_with_use_c5():
    assert _detector().backbone.fpn.extra_blocks.p6.in_channels == 512  # R-18's C5
    fpn = _detector("MODEL.RETINANET.USE_C5", "False").backbone.fpn
    assert fpn.extra_blocks.p6.in_channels == 32 and fpn.extra_blocks.use_P5


@pytest.mark.parametrize(
    "opts, message",
    [
        (["MODEL.FCOS_ON", "True"], "MODEL.FCOS_ON and MODEL.RETINANET_ON are both True"),
        (["MODEL.RETINANET_ON", "False"], "MODEL.FCOS_ON and MODEL.RETINANET_ON are both False"),
        (["MODEL.RETINANET.ANCHOR_STRIDES", "(8, 16, 32)"], "MODEL.RETINANET.ANCHOR_STRIDES"),
        (["MODEL.RETINANET.BG_IOU_THRESHOLD", "0.6"], "MODEL.RETINANET.BG_IOU_THRESHOLD"),
    ],
)
def test_contradictory_or_out_of_range_keys_are_one_line_errors_naming_them(opts, message):
    with pytest.raises(FadError) as info:
        load_config(CONFIG, opts)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_num_classes_smaller_than_the_data_names_the_retinanet_key():
    with pytest.raises(FadError, match="MODEL.RETINANET.NUM_CLASSES 4 .* set it to 6"):
        _detector("MODEL.RETINANET.NUM_CLASSES", "4", num_classes=5)


def test_the_originals_two_stage_keys_of_its_retinanet_configs_load():
    cfg = load_config(
        CONFIG,
        [
            "MODEL.RPN.USE_FPN", "True",
            "MODEL.RPN.ANCHOR_STRIDE", "(4, 8, 16, 32, 64)",
            "MODEL.ROI_BOX_HEAD.POOLER_SCALES", "(0.25, 0.125, 0.0625, 0.03125)",
            "MODEL.RETINANET.STRADDLE_THRESH", "-1",
        ],
    )  # fmt: skip
    assert cfg.MODEL.RETINANET_ON and not cfg.MODEL.FCOS_ON
