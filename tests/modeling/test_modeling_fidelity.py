"""The detector computes what the original FCOS / FAD code computes (docs/fidelity.md)."""

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.modeling.fcos.locations import LocationGrid
from fad.modeling.fcos.loss import iou_loss, match_locations

STRIDES = (8, 16, 32, 64, 128)


def _detector(shapes_config, *opts: str, num_classes: int = 5):
    cfg = load_config(shapes_config, ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", *opts])
    return build_detector(cfg, num_classes, load_weights=False)


@pytest.mark.parametrize("height, width", [(800, 1088), (100, 150), (96, 160)])
def test_locations_sit_on_the_nominal_grid_for_any_input_size(shapes_config, height, width):
    model = _detector(shapes_config).eval()
    seen = {}
    model.anchor_generator.register_forward_hook(lambda m, a, out: seen.update(anchors=out[0]))
    images, _ = model.transform([torch.rand(3, height, width)])
    padded = images.tensors.shape[-2:]
    features = list(model.backbone(images.tensors).values())
    model.anchor_generator(images, features)
    anchors = seen["anchors"]
    start = 0
    for feature, stride in zip(features, STRIDES):
        h, w = feature.shape[-2:]
        level = anchors[start : start + h * w]
        start += h * w
        centers = (level[:, :2] + level[:, 2:]) / 2
        assert torch.equal(
            centers[:, 0], (torch.arange(w) * stride + stride // 2).repeat(h).float()
        )
        assert torch.equal(
            centers[:, 1], (torch.arange(h) * stride + stride // 2).repeat_interleave(w).float()
        )
        assert torch.equal(level[:, 2] - level[:, 0], torch.full((h * w,), float(stride)))
    assert start == anchors.shape[0]
    if padded == (800, 1088):  # the example: the last P7 row at 832 px, not 684
        assert centers[-1, 1] == 6 * 128 + 64


def _level(model, logits, ctrness, regression, anchors):
    """The detector's candidates of one level: boxes, scores, labels (1..K), best first."""
    outputs = {"cls_logits": logits, "bbox_ctrness": ctrness, "bbox_regression": regression}
    return model.level_detections(outputs, anchors)


def test_candidates_are_filtered_on_class_probability_then_scored_by_the_geometric_mean(
    shapes_config,
):
    model = _detector(shapes_config, "MODEL.FCOS.INFERENCE_TH", "0.05", num_classes=2)
    logit = torch.logit
    # location 0: p = 0.04, centerness 0.9: sqrt(p * c) = 0.19 > 0.05 but p < 0.05 -> dropped
    # location 1: p = 0.10, centerness 0.01: sqrt(p * c) = 0.03 < 0.05 but p > 0.05 -> kept
    # location 2: p = 0.60 (class 2), centerness 0.5 -> kept with score sqrt(0.3)
    probs = torch.tensor([[0.04, 0.0], [0.10, 0.0], [0.0, 0.60]]).clamp(min=1e-6)
    ctr = torch.tensor([[0.9], [0.01], [0.5]])
    anchors = LocationGrid((8,)).anchors([(1, 3)])
    regression = torch.ones(3, 4)  # 1 stride on each side: disjoint 16 px boxes
    boxes, scores, labels = _level(model, logit(probs), logit(ctr), regression, anchors)
    assert labels.tolist() == [2, 1]  # best first
    assert torch.allclose(scores, torch.tensor([0.60 * 0.5, 0.10 * 0.01]).sqrt())
    assert torch.equal(boxes[1], torch.tensor([4.0, -4.0, 20.0, 12.0]))  # x = 12, y = 4, +-8 px


def test_candidates_are_capped_per_level_by_the_product(shapes_config):
    model = _detector(shapes_config, "MODEL.FCOS.PRE_NMS_TOP_N", "2", num_classes=1)
    probs = torch.tensor([[0.9], [0.8], [0.7], [0.6]])
    ctr = torch.tensor([[0.1], [0.9], [0.9], [0.9]])
    anchors = LocationGrid((8,)).anchors([(1, 4)])
    _, scores, _ = _level(model, torch.logit(probs), torch.logit(ctr), torch.ones(4, 4), anchors)
    assert torch.allclose(scores, torch.tensor([0.72, 0.63]).sqrt())


def test_extra_class_logits_of_num_classes_are_never_reported(shapes_config):
    model = _detector(shapes_config, "MODEL.FCOS.NUM_CLASSES", "9", num_classes=5)
    assert model.head.cls_logits.out_channels == 8
    probs = torch.full((2, 8), 1e-6)
    probs[0, 6] = 0.99  # a logit beyond the dataset's 5 classes
    probs[1, 1] = 0.5
    anchors = LocationGrid((8,)).anchors([(1, 2)])
    ctr = torch.zeros(2, 1)
    _, _, labels = _level(model, torch.logit(probs), ctr, torch.ones(2, 4), anchors)
    assert labels.tolist() == [2]


def test_num_classes_smaller_than_the_data_is_an_error_naming_the_key(shapes_config):
    with pytest.raises(FadError, match="MODEL.FCOS.NUM_CLASSES 4 .* set it to 6"):
        _detector(shapes_config, "MODEL.FCOS.NUM_CLASSES", "4", num_classes=5)


def test_radius_zero_means_every_location_inside_a_box_is_positive():
    anchors = LocationGrid(STRIDES).anchors([(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)])
    per_level = [64, 16, 4, 1, 1]
    box = torch.tensor([[3.0, 3.0, 45.0, 45.0]])  # extent up to 42 px: a P3 box
    matched = match_locations(anchors, box, per_level, center_sampling_radius=0.0)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    inside = ((centers > 3) & (centers < 45)).all(dim=1)
    inside[per_level[0] :] = False  # only P3's range holds this box
    assert inside.sum() == 36  # x, y in 4, 12, ..., 44
    assert torch.equal(matched >= 0, inside)
    sampled = match_locations(anchors, box, per_level, center_sampling_radius=1.5)
    assert 0 < (sampled >= 0).sum() < inside.sum()


def test_level_ranges_are_inclusive_as_the_original():
    anchors = LocationGrid(STRIDES).anchors([(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)])
    per_level = [256, 64, 16, 4, 1]
    # the location (36, 36) of P3 sees this box's largest distance as exactly 64
    box = torch.tensor([[20.0, 20.0, 100.0, 100.0]])
    matched = match_locations(anchors, box, per_level, center_sampling_radius=0.0)
    p3 = ((anchors[:, 0] + anchors[:, 2]) / 2 == 36) & ((anchors[:, 1] + anchors[:, 3]) / 2 == 36)
    assert matched[p3.nonzero()[0, 0]] == 0


def _original_iou_loss(pred, target, loss_type):
    """The original FCOS IOULoss, written out for one pair of ltrb rows."""
    pl, pt, pr, pb = pred
    tl, tt, tr, tb = target
    target_area = (tl + tr) * (tt + tb)
    pred_area = (pl + pr) * (pt + pb)
    w_int = min(pl, tl) + min(pr, tr)
    h_int = min(pb, tb) + min(pt, tt)
    g_w = max(pl, tl) + max(pr, tr)
    g_h = max(pb, tb) + max(pt, tt)
    enclosing = g_w * g_h + 1e-7
    inter = w_int * h_int
    union = target_area + pred_area - inter
    iou = (inter + 1.0) / (union + 1.0)
    if loss_type == "iou":
        return -torch.log(torch.tensor(iou)).item()
    if loss_type == "linear_iou":
        return 1 - iou
    return 1 - (iou - (enclosing - union) / enclosing)


@pytest.mark.parametrize("loss_type", ["iou", "linear_iou", "giou"])
def test_iou_loss_is_the_originals_with_its_smoothing(loss_type):
    pred = torch.tensor([[1.0, 2.0, 0.5, 1.5], [0.2, 0.1, 0.3, 0.2], [3.0, 3.0, 3.0, 3.0]])
    target = torch.tensor([[1.5, 1.0, 1.0, 1.0], [0.4, 0.4, 0.4, 0.4], [3.0, 3.0, 3.0, 3.0]])
    got = iou_loss(pred.double(), target.double(), loss_type)
    want = [_original_iou_loss(p.tolist(), t.tolist(), loss_type) for p, t in zip(pred, target)]
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-9)
    assert got[2].abs() < 1e-8  # identical boxes (the 1e-7 of the enclosing area aside)


def test_plain_fcos_options_change_the_head_and_train(shapes_config):
    torch.manual_seed(0)
    model = _detector(
        shapes_config,
        "MODEL.FCOS.NORM_REG_TARGETS",
        "False",
        "MODEL.FCOS.CENTERNESS_ON_REG",
        "False",
        "MODEL.FCOS.CENTER_SAMPLING_RADIUS",
        "0.0",
        "MODEL.FCOS.IOU_LOSS_TYPE",
        "iou",
    ).train()
    images = [torch.rand(3, 128, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 70.0, 90.0]]), "labels": torch.tensor([2])}]
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss_centerness"].backward()
    cls_grad = [p.grad for p in model.head.cls_tower.parameters() if p.grad is not None]
    box_grad = [p.grad for p in model.head.box_tower.parameters() if p.grad is not None]
    assert cls_grad and any(g.abs().sum() > 0 for g in cls_grad)  # centerness on the cls branch
    assert not any(g.abs().sum() > 0 for g in box_grad)
    model.eval()
    with torch.no_grad():
        features = list(model.backbone(model.transform(images)[0].tensors).values())
        regression = model.head(features)["bbox_regression"]
    assert (regression > 0).all()  # exp(): pixels, strictly positive


@pytest.mark.parametrize(
    "key, value",
    [
        ("MODEL.MASK_ON", "True"),
        ("MODEL.FCOS.USE_DCN_IN_TOWER", "True"),
        ("MODEL.RESNETS.STAGE_WITH_DCN", "(False, True, True, True)"),
        ("MODEL.FPN.USE_GN", "True"),
        ("MODEL.RESNETS.RES5_DILATION", "2"),
    ],
)
def test_keys_fad_cannot_honour_are_refused_in_one_line_naming_them(key, value):
    with pytest.raises(FadError) as info:
        load_config(None, [key, value])
    message = str(info.value)
    assert key in message and "\n" not in message


def test_to_bgr255_is_honoured_with_caffe2_statistics_and_refused_otherwise(shapes_config):
    with pytest.raises(FadError, match="INPUT.TO_BGR255 True feeds BGR pixels in 0..255"):
        load_config(None, ["INPUT.TO_BGR255", "True"])
    caffe2 = [
        "INPUT.TO_BGR255",
        "True",
        "INPUT.PIXEL_MEAN",
        "(102.9801, 115.9465, 122.7717)",
        "INPUT.PIXEL_STD",
        "(1.0, 1.0, 1.0)",
    ]
    with pytest.raises(FadError, match="MODEL.WEIGHT 'catalog://ImageNetPretrained/MSRA/R-50'"):
        load_config(None, caffe2 + ["MODEL.WEIGHT", "catalog://ImageNetPretrained/MSRA/R-50"])
    model = _detector(shapes_config, *caffe2)
    image = torch.rand(3, 4, 4)
    expected = image[[2, 1, 0]] * 255 - torch.tensor([102.9801, 115.9465, 122.7717])[:, None, None]
    assert torch.allclose(model.transform.normalize(image), expected)
