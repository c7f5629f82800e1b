"""Promise 10 (empty images): a batch of images without boxes gives a finite classification loss and
box and centerness losses of exactly 0, with finite gradients; a batch mixing empty and annotated
images stays finite. Checked for the detector `fad train` builds and the one `fad search` builds."""

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.modeling.build import build_detector

SEARCH = ["MODEL.FAD_ON", "True", "MODEL.FAD.SEARCH", "True"]
SEARCH += ["MODEL.FAD.NUM_NODES_BOX", "1", "MODEL.FAD.NUM_NODES_CLS", "1"]


def _empty() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


def _detector(shapes_config, opts, extra):
    torch.manual_seed(0)
    model = build_detector(load_config(shapes_config, opts + extra), 5, load_weights=False)
    return model.train()


def _losses_and_grads(model, targets):
    images = [torch.rand(3, 96, 112), torch.rand(3, 100, 90)]
    model.zero_grad(set_to_none=True)
    losses = model(images, targets)
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return losses, grads


@pytest.mark.parametrize("towers", ["train", "search"])
def test_images_without_boxes_give_zero_box_losses_and_finite_gradients(
    towers, shapes_config, fast_opts
):
    model = _detector(shapes_config, fast_opts, SEARCH if towers == "search" else [])
    losses, grads = _losses_and_grads(model, [_empty(), _empty()])
    assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
    assert losses["loss_reg"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"].item() > 0
    assert grads and all(torch.isfinite(g).all() for g in grads)

    one_box = {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]), "labels": torch.tensor([2])}
    losses, grads = _losses_and_grads(model, [_empty(), one_box])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_reg"].item() > 0
    assert all(torch.isfinite(g).all() for g in grads)
