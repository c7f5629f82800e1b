import torch

from fad.modeling.fcos.loss import encode_ltrb, fcos_losses, match_locations


def _anchors(sizes=((4, 4, 8), (2, 2, 16))):
    """Square anchors (side = stride) centred on a grid, level by level."""
    out, per_level = [], []
    for h, w, s in sizes:
        ys, xs = torch.meshgrid(torch.arange(h) * s, torch.arange(w) * s, indexing="ij")
        c = torch.stack([xs.flatten(), ys.flatten()], 1).float()
        out.append(torch.cat([c - s / 2, c + s / 2], 1))
        per_level.append(h * w)
    return torch.cat(out), per_level


def test_small_box_matches_level_one_locations_inside_it_only():
    anchors, per_level = _anchors()
    gt = torch.tensor([[6.0, 6.0, 20.0, 20.0]])
    matched = match_locations(anchors, gt, per_level, 1.5)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    positive = matched >= 0
    assert positive.any()
    assert (matched[positive] == 0).all()
    inside = (centers[:, 0] > 6) & (centers[:, 0] < 20) & (centers[:, 1] > 6) & (centers[:, 1] < 20)
    assert (positive <= inside).all()
    assert not positive[per_level[0] :].any()  # the box is far below the second level's range


def test_overlap_goes_to_the_smaller_box():
    anchors, per_level = _anchors()
    gt = torch.tensor([[0.0, 0.0, 30.0, 30.0], [6.0, 6.0, 18.0, 18.0]])
    matched = match_locations(anchors, gt, per_level, 1.5)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    at = ((centers[:, 0] == 8) & (centers[:, 1] == 8)).nonzero()[0, 0]
    assert matched[at] == 1


def _outputs(n, hw, k, requires_grad=True):
    return {
        "cls_logits": torch.randn(n, hw, k, requires_grad=requires_grad),
        "bbox_regression": torch.rand(n, hw, 4, requires_grad=requires_grad),
        "bbox_ctrness": torch.randn(n, hw, 1, requires_grad=requires_grad),
    }


def test_empty_image_gives_exactly_zero_box_losses_and_finite_cls_loss():
    anchors, per_level = _anchors()
    outputs = _outputs(1, anchors.shape[0], 3)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    matched = [match_locations(anchors, targets[0]["boxes"], per_level)]
    losses = fcos_losses(outputs, [anchors], targets, matched)
    assert losses["loss_reg"].item() == 0.0
    assert losses["loss_centerness"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0
    sum(losses.values()).backward()
    assert outputs["bbox_regression"].grad is not None  # still attached to the graph


def test_perfect_regression_gives_near_zero_box_loss():
    anchors, per_level = _anchors()
    gt = torch.tensor([[6.0, 6.0, 20.0, 20.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([2])}]
    matched = [match_locations(anchors, gt, per_level)]
    regression = encode_ltrb(anchors, gt.expand(anchors.shape[0], 4))
    outputs = _outputs(1, anchors.shape[0], 3)
    outputs["bbox_regression"] = regression[None].clone()
    losses = fcos_losses(outputs, [anchors], targets, matched)
    assert losses["loss_reg"].item() < 1e-5
    shifted = dict(outputs, bbox_regression=regression[None] * 1.5)
    assert fcos_losses(shifted, [anchors], targets, matched)["loss_reg"] > 0.05


def test_cls_targets_use_contiguous_labels():
    anchors, per_level = _anchors()
    gt = torch.tensor([[6.0, 6.0, 20.0, 20.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([3])}]
    matched = [match_locations(anchors, gt, per_level)]
    logits = torch.full((1, anchors.shape[0], 3), -10.0)
    positive = matched[0] >= 0
    logits[0, positive, 2] = 10.0  # label 3 -> channel 2
    outputs = _outputs(1, anchors.shape[0], 3)
    outputs["cls_logits"] = logits
    good = fcos_losses(outputs, [anchors], targets, matched)["loss_cls"]
    logits2 = logits.clone()
    logits2[0, positive, 2], logits2[0, positive, 0] = -10.0, 10.0
    bad = fcos_losses(dict(outputs, cls_logits=logits2), [anchors], targets, matched)["loss_cls"]
    assert good < 1e-3 < bad
