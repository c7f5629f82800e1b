"""The architect and the search step under SOLVER.AMP on CPU: bf16 and fp16 alpha steps (first
and second order) move the float32 alphas and restore the weights, the finite-difference H v
runs in float32, the fp16 loss scale cancels out of the unrolled gradient, and an overflowing
alpha gradient under fp16 skips the alpha step only."""

from __future__ import annotations

import math

import pytest
import torch
from test_search_architect import (
    _batch,
    _detector_batch,
    _detector_setup,
    _setup,
    _snapshot,
    _weights,
)

from fad.runtime.precision import Precision
from fad.search.architect import detection_loss
from fad.search_space.towers import alphas

F32 = torch.float32


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("first_order", [True, False], ids=["first_order", "second_order"])
def test_mixed_precision_alpha_step_moves_float32_alphas_and_restores_weights(mode, first_order):
    model, _, architect = _setup(first_order, dtype=F32, precision=Precision(mode))
    before = _snapshot(model)
    loss = architect.step(_batch(1, F32), _batch(2, F32))
    assert loss.dtype == F32 and math.isfinite(float(loss))
    after = _snapshot(model)
    alpha_names = {n for n, p in model.named_parameters() if any(p is a for a in alphas(model))}
    for key in before:
        assert torch.equal(before[key], after[key]) == (key not in alpha_names), key
    assert all(a.dtype == F32 and torch.isfinite(a).all() for a in alphas(model))
    assert all(s["exp_avg"].dtype == F32 for s in architect.alpha_optimizer.state.values())


def test_hessian_vector_product_is_computed_in_float32_under_bf16():
    model, optimizer, bf16 = _setup(first_order=False, dtype=F32, precision=Precision("bf16"))
    *_, fp32 = _setup(first_order=False, dtype=F32)
    weights = [p for g in optimizer.param_groups for p in g["params"]]
    g = torch.Generator().manual_seed(5)
    v = [torch.randn(p.shape, generator=g) * 0.1 for p in weights]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside an autocast region
        got = bf16.hessian_vector_product(v, _batch(3, F32))
    expected = fp32.hessian_vector_product(v, _batch(3, F32))
    for a, b in zip(got, expected):
        assert a.dtype == F32 and torch.equal(a, b)


def test_fp16_loss_scale_cancels_out_of_the_unrolled_gradient():
    scaled = Precision("fp16")
    assert scaled.loss_scale() == 2.0**16
    _, _, fp16 = _setup(first_order=False, dtype=F32, precision=scaled, fd_radius=0.01)
    _, _, fp32 = _setup(first_order=False, dtype=F32, fd_radius=0.01)
    for architect in (fp16, fp32):
        architect.backward(_batch(1, F32), _batch(2, F32))
        architect.precision.unscale_(architect.alpha_optimizer)
    for a, b in zip(alphas(fp16.model), alphas(fp32.model)):
        torch.testing.assert_close(a.grad, b.grad, rtol=0.05, atol=1e-4)
        assert float(b.grad.abs().max()) > 1e-3


@pytest.mark.parametrize("first_order", [True, False], ids=["first_order", "second_order"])
def test_bf16_search_step_moves_alphas_then_weights(first_order):
    precision = Precision("bf16")
    model, step, calls = _detector_setup(dtype=F32, precision=precision, first_order=first_order)
    weights, start = _weights(model), [a.detach().clone() for a in alphas(model)]
    losses = step(0, (_detector_batch(1, dtype=F32), _detector_batch(2, dtype=F32)))
    assert math.isfinite(float(losses["loss_mse"].detach())) and math.isfinite(calls[0][1])
    assert all(not torch.equal(a, b) for a, b in zip(start, alphas(model)))
    assert all(not torch.equal(a, b) for a, b in zip(weights, _weights(model)))


def test_fp16_overflowing_alpha_gradient_skips_the_alpha_step_only():
    def overflowing(model, batch):
        loss = detection_loss(model, batch)
        loss.register_hook(lambda grad: grad * math.inf)
        return loss

    precision = Precision("fp16")
    model, step, calls = _detector_setup(dtype=F32, precision=precision, loss_fn=overflowing)
    weights, start = _weights(model), [a.detach().clone() for a in alphas(model)]
    step(0, (_detector_batch(1, dtype=F32), _detector_batch(2, dtype=F32)))  # no error
    assert all(torch.equal(a, b) for a, b in zip(start, alphas(model)))
    assert all(not torch.equal(a, b) for a, b in zip(weights, _weights(model)))
    assert precision.loss_scale() == 2.0**15  # the scaler backed off
