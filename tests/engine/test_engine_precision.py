"""SOLVER.AMP in the weight step: bf16 and fp16 autocast on CPU, the fp16 loss scaler's skipped
steps and its floor, and exact resume of a mixed-precision run (the scaler in the checkpoint)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fad.config import load_config
from fad.engine.train import run_training
from fad.engine.weight_step import MIN_LOSS_SCALE, NonFiniteLossError, WeightStep
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import load_checkpoint
from fad.runtime.precision import Precision

pytestmark = pytest.mark.usefixtures("single_thread")
CPU = torch.device("cpu")
SMALL = ["INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64"]
NARROW = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FCOS.NUM_CONVS", "1"]


class TinyNet(nn.Module):
    """A conv and a GroupNorm with the detector interface; `grad_factor` multiplies the gradient
    that flows back into them (inf: an overflow)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.grad_factor = 1.0

    def forward(self, images, targets):
        out = self.norm(self.conv(torch.stack(images)))
        if self.grad_factor != 1.0:
            out.register_hook(lambda grad: grad * self.grad_factor)
        return {"loss_mse": ((out.float() - torch.stack(targets)) ** 2).mean()}


def _tiny_step(mode: str) -> tuple[TinyNet, WeightStep]:
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    step = WeightStep(net, optimizer, scheduler, CPU, clip_grad=0, precision=Precision(mode))
    return net, step


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    return list(torch.rand(2, 3, 8, 8, generator=g)), list(torch.randn(2, 8, 8, 8, generator=g))


def _params(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_detector_step_moves_float32_weights(mode):
    opts = [*NARROW, *SMALL, "MODEL.FCOS.NUM_CLASSES", "6", "MODEL.BACKBONE.NORM", "BN"]
    cfg = load_config(None, opts)
    torch.manual_seed(0)
    model = build_detector(cfg, 5, load_weights=False).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    step = WeightStep(model, optimizer, scheduler, CPU, clip_grad=0, precision=Precision(mode))
    before = _params(model)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]])
    targets = [
        {"boxes": boxes, "labels": torch.tensor([1, 3])},
        {"boxes": boxes[:1], "labels": torch.tensor([2])},
    ]
    losses = step(0, (images, targets))
    assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
    assert all(
        v.dtype == torch.float32 and math.isfinite(float(v.detach())) for v in losses.values()
    )
    after = list(model.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert all(s["momentum_buffer"].dtype == torch.float32 for s in optimizer.state.values())
    assert sum(not torch.equal(a, b) for a, b in zip(before, after)) > len(after) // 2


def test_fp16_overflow_skips_the_step_and_halves_the_scale_then_steps():
    net, step = _tiny_step("fp16")
    scale = step.precision.loss_scale()
    before = _params(net)
    net.grad_factor = math.inf
    losses = step(0, _batch(1))  # no error: the scaler skips the step
    assert math.isfinite(float(losses["loss_mse"].detach()))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert step.precision.loss_scale() == scale / 2
    net.grad_factor = 1.0
    step(1, _batch(2))
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert step.precision.loss_scale() == scale / 2


def test_infinite_gradient_stops_a_float32_or_bf16_step():
    for mode in ("", "bf16"):
        net, step = _tiny_step(mode)
        net.grad_factor = math.inf
        with pytest.raises(NonFiniteLossError, match="gradient norm at iteration 4"):
            step(3, _batch(1))


def test_fp16_non_finite_loss_still_stops_the_run():
    net, step = _tiny_step("fp16")
    images, targets = _batch(1)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at iteration 1"):
        step(0, (images, [t * math.nan for t in targets]))


def test_fp16_scale_falling_to_the_floor_stops_the_run_in_one_line():
    net, step = _tiny_step("fp16")
    step.precision.load_state_dict({**step.precision.state_dict(), "scale": 2 * MIN_LOSS_SCALE})
    before = _params(net)
    net.grad_factor = math.inf
    with pytest.raises(NonFiniteLossError) as err:
        step(6, _batch(1))
    assert "at every step up to iteration 7 under SOLVER.AMP fp16" in str(err.value)
    assert "\n" not in str(err.value)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_training_resumes_bit_identically(shapes_config, tiny_opts, tmp_path, mode):
    opts = [*tiny_opts, *NARROW, *SMALL, "INPUT.MIN_SIZE_TRAIN", "(48,)", "SOLVER.AMP", mode]

    def train(out: str, iterations: int) -> dict:
        extra = ["OUTPUT_DIR", str(tmp_path / out), "SOLVER.MAX_ITER", str(iterations)]
        run_training(load_config(shapes_config, [*opts, *extra]), skip_test=True)
        return load_checkpoint(tmp_path / out / "model_final.pth")

    straight = train("a", 2)
    first = train("b", 1)
    resumed = train("b", 2)
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    if mode == "fp16":  # the scaler's state round-trips: scale and clean-step count
        assert first["scaler"]["_growth_tracker"] == 1
        assert resumed["scaler"] == straight["scaler"]
        assert straight["scaler"]["_growth_tracker"] == 2
    else:
        assert "scaler" not in straight and "scaler" not in resumed


def test_amp_key_is_checked_before_any_work(shapes_config, tiny_opts, tmp_path):
    with pytest.raises(FadError) as err:
        load_config(shapes_config, [*tiny_opts, "SOLVER.AMP", "float16"])
    message = str(err.value)
    assert "SOLVER.AMP must be one of ('', 'off', 'bf16', 'fp16'), got 'float16'" in message
    assert not (tmp_path / "out").exists()
