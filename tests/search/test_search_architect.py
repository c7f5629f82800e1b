"""The architect on a tiny float64 network: first-order gradients, the second-order unrolled
gradient and its Hessian-vector product against exact autograd, non-finite losses, alpha moves;
the search step (alpha step, then clipped weight step)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from fad.engine.step import NonFiniteLossError, check_finite
from fad.search.architect import Architect, detection_loss
from fad.search.methods import MethodOptions
from fad.search.methods.darts import DartsFirstOrder, DartsSecondOrder
from fad.search.step import make_search_step
from fad.search_space.towers import CellTowerSpec, TowerSpec, alphas, build_towers
from fad.solver import build_sgd

W = 32  # GroupNorm needs 32 channels


class TinyNet(nn.Module):
    """conv + BN stem, a box and a cls search tower (1 node: 2 edges each), a 1x1 predictor."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, W, 3, padding=1), nn.BatchNorm2d(W), nn.ReLU())
        tower = CellTowerSpec(num_cells=1, num_nodes=1, edge_channels=W)
        spec = TowerSpec(mode="search", channels=W, box=tower, cls=tower)
        self.box, self.cls = build_towers(spec)
        self.predict = nn.Conv2d(W, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        box = self.box(feature)
        return self.predict(box + self.cls(feature, box))


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _batch(seed: int, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=dtype)
    return x, torch.randn(2, 2, 4, 4, generator=g, dtype=dtype)


def _setup(
    first_order: bool,
    momentum_step: bool = True,
    fd_radius: float = 1e-5,
    dtype: torch.dtype = torch.float64,
    **architect_options,
):
    """A tiny net (float64 by default) and its architect. DARTS's finite-difference radius
    (0.01) is coarse for a net this small (ReLU kinks), so the exactness checks use a smaller one."""
    torch.manual_seed(0)
    model = TinyNet().to(dtype).train()
    with torch.no_grad():  # alphas far from uniform, so gradients are not tiny
        for alpha in alphas(model):
            alpha.normal_(std=0.5)
    alpha_ids = {id(a) for a in alphas(model)}
    optimizer = build_sgd(
        ((n, p) for n, p in model.named_parameters() if id(p) not in alpha_ids),
        base_lr=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        bias_lr_factor=2.0,
    )
    if momentum_step:  # fill the momentum buffers, as after a real weight step
        optimizer.zero_grad()
        loss_fn(model, _batch(9, dtype)).backward()
        optimizer.step()
    alpha_optimizer = torch.optim.Adam(alphas(model), lr=0.01, betas=(0.5, 0.999))
    architect = Architect(
        model,
        alpha_optimizer,
        optimizer,
        first_order=first_order,
        loss_fn=loss_fn,
        fd_radius=fd_radius,
        **architect_options,
    )
    return model, optimizer, architect


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _weight_groups(optimizer):
    return [(p, g) for g in optimizer.param_groups for p in g["params"]]


def _exact_unrolled(model, optimizer, alpha_batch, weight_batch) -> list[torch.Tensor]:
    """d L_alpha(w'(alpha), alpha) / d alpha with w' the SGD step, by double backward."""
    pairs = _weight_groups(optimizer)
    grads = torch.autograd.grad(
        loss_fn(model, weight_batch), [p for p, _ in pairs], create_graph=True
    )
    names = {id(p): n for n, p in model.named_parameters()}
    virtual = {}
    for (p, group), g in zip(pairs, grads):
        buffer = optimizer.state[p]["momentum_buffer"]
        update = group["momentum"] * buffer + g + group["weight_decay"] * p
        virtual[names[id(p)]] = p - group["lr"] * update
    x, y = alpha_batch
    loss = ((functional_call(model, virtual, (x,)) - y) ** 2).mean()
    return list(torch.autograd.grad(loss, alphas(model)))


def test_first_order_gradient_is_the_alpha_batch_gradient_at_current_weights():
    model, optimizer, architect = _setup(first_order=True)
    batch = _batch(1)
    before = _snapshot(model)
    loss = architect.backward(batch)
    after = _snapshot(model)  # weights and BN statistics untouched
    assert all(torch.equal(before[k], after[k]) for k in before)
    direct = loss_fn(model, batch)
    expected = torch.autograd.grad(direct, alphas(model))
    assert float(loss) == float(direct.detach())
    for alpha, grad in zip(alphas(model), expected):
        torch.testing.assert_close(alpha.grad, grad, rtol=0, atol=0)
        assert grad.abs().sum() > 0


def test_first_order_uses_the_current_weights_not_a_stale_copy():
    model, optimizer, architect = _setup(first_order=True)
    batch = _batch(1)
    architect.backward(batch)
    first = [a.grad.clone() for a in alphas(model)]
    optimizer.zero_grad()
    loss_fn(model, _batch(2)).backward()
    optimizer.step()  # the weights move; the next alpha gradient must see them
    architect.backward(batch)
    expected = torch.autograd.grad(loss_fn(model, batch), alphas(model))
    for alpha, grad, old in zip(alphas(model), expected, first):
        torch.testing.assert_close(alpha.grad, grad, rtol=0, atol=0)
        assert not torch.equal(alpha.grad, old)


def test_hessian_vector_product_matches_double_backward():
    model, optimizer, architect = _setup(first_order=False)
    batch = _batch(3)
    weights = [p for p, _ in _weight_groups(optimizer)]
    g = torch.Generator().manual_seed(5)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1 for p in weights]
    before = _snapshot(model)
    approx = architect.hessian_vector_product(v, batch)
    assert all(torch.equal(before[k], p) for k, p in model.named_parameters())
    grads = torch.autograd.grad(loss_fn(model, batch), weights, create_graph=True)
    inner = sum((gw * vw).sum() for gw, vw in zip(grads, v))
    exact = torch.autograd.grad(inner, alphas(model))
    for a, e in zip(approx, exact):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-9)
    assert sum(float(e.abs().sum()) for e in exact) > 0


def test_second_order_gradient_matches_exact_unrolled_gradient():
    model, optimizer, architect = _setup(first_order=False)
    alpha_batch, weight_batch = _batch(1), _batch(2)
    before = _snapshot(model)
    architect.backward(alpha_batch, weight_batch)
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and buffers restored
    exact = _exact_unrolled(model, optimizer, alpha_batch, weight_batch)
    first_order = torch.autograd.grad(loss_fn(model, alpha_batch), alphas(model))
    for alpha, e, f in zip(alphas(model), exact, first_order):
        torch.testing.assert_close(alpha.grad, e, rtol=1e-6, atol=1e-9)
        assert not torch.allclose(e, f, rtol=1e-3, atol=1e-7)  # the unrolled term matters


def test_second_order_needs_the_weight_batch():
    _, _, architect = _setup(first_order=False)
    with pytest.raises(Exception, match="weight batch"):
        architect.backward(_batch(1))


@pytest.mark.parametrize("first_order", [True, False])
def test_alpha_steps_move_the_alphas_and_only_them(first_order):
    model, optimizer, architect = _setup(first_order=first_order)
    before = _snapshot(model)
    alpha_names = {n for n, p in model.named_parameters() if any(p is a for a in alphas(model))}
    for seed in range(3):
        architect.step(_batch(seed), _batch(seed + 10))
    after = _snapshot(model)
    for key in before:
        moved = not torch.equal(before[key], after[key])
        assert moved == (key in alpha_names), key
    assert all(a.grad is None for a in alphas(model))


def test_non_finite_alpha_loss_stops_before_the_adam_step():
    model, optimizer, architect = _setup(first_order=True)
    x, y = _batch(1)
    before = [a.detach().clone() for a in alphas(model)]

    def check(loss, norm):
        check_finite(7, {"loss_alpha": loss}, torch.device("cpu"), what="alpha loss")

    with pytest.raises(NonFiniteLossError, match="alpha loss at iteration 8"):
        architect.step((x, y * math.nan), check=check)
    assert all(torch.equal(b, a) for b, a in zip(before, alphas(model)))


def test_architect_needs_alphas():
    model = nn.Linear(2, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Exception, match="no alphas"):
        Architect(model, sgd, sgd)


def test_second_order_refuses_a_weights_optimizer_it_cannot_mirror():
    model = TinyNet().double()
    adam = torch.optim.Adam(alphas(model), lr=0.01)
    adamw = torch.optim.AdamW(model.parameters(), lr=0.01)
    with pytest.raises(Exception, match="second-order step mirrors SGD.*AdamW"):
        Architect(model, adam, adamw, first_order=False, loss_fn=loss_fn)
    Architect(model, adam, adamw, first_order=True, loss_fn=loss_fn)  # first order is fine


class TinyDetector(TinyNet):
    """TinyNet with the detector interface: (images, targets) -> loss dict."""

    def forward(self, images, targets):  # type: ignore[override]
        out = super().forward(torch.stack(images))
        return {"loss_mse": ((out - torch.stack([t["y"] for t in targets])) ** 2).mean()}


def _detector_setup(
    clip_grad: float = 20.0,
    warmup_iters: int = 0,
    dtype: torch.dtype = torch.float64,
    first_order: bool = True,
    precision=None,
    loss_fn=detection_loss,
):
    torch.manual_seed(0)
    model = TinyDetector().to(dtype).train()
    alpha_ids = {id(a) for a in alphas(model)}
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if id(p) not in alpha_ids], lr=0.1, momentum=0.9
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    alpha_optimizer = torch.optim.Adam(alphas(model), lr=0.01)
    method_cls = DartsFirstOrder if first_order else DartsSecondOrder
    options = MethodOptions(loss_fn=loss_fn)
    method = method_cls(model, alpha_optimizer, optimizer, options, precision)
    calls = []
    step = make_search_step(
        model,
        method,
        optimizer,
        scheduler,
        torch.device("cpu"),
        clip_grad=clip_grad,
        flip_prob=0.0,
        seed=0,
        warmup_iters=warmup_iters,
        after_iteration=lambda i, loss: calls.append((i, None if loss is None else float(loss))),
    )
    return model, step, calls


def _detector_batch(seed: int, poison: bool = False, dtype: torch.dtype = torch.float64):
    x, y = _batch(seed, dtype)
    if poison:
        y = y * math.nan
    return list(x), [{"y": t} for t in y]


def _weights(model) -> list[torch.Tensor]:
    ids = {id(a) for a in alphas(model)}
    return [p.detach().clone() for p in model.parameters() if id(p) not in ids]


def test_search_step_moves_alphas_then_clipped_weights():
    model, step, calls = _detector_setup(clip_grad=1e-6)
    weights, alpha_values = _weights(model), [a.detach().clone() for a in alphas(model)]
    losses = step(3, (_detector_batch(1), _detector_batch(2)))
    assert set(losses) == {"loss_mse"} and calls[0][0] == 3
    assert all(not torch.equal(a, b) for a, b in zip(alpha_values, alphas(model)))
    moved = torch.cat([(a - b).reshape(-1) for a, b in zip(_weights(model), weights)])
    assert 0 < float(moved.norm()) <= 0.1 * 1e-6 * (1 + 1e-6)  # lr x the clipped norm


def test_non_finite_weight_loss_stops_before_the_weight_step():
    model, step, calls = _detector_setup()
    weights = _weights(model)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at iteration 5 .*loss_mse=nan"):
        step(4, (_detector_batch(1, poison=True), _detector_batch(2)))
    assert all(torch.equal(a, b) for a, b in zip(weights, _weights(model)))
    assert calls == []


def test_warmup_trains_the_weights_and_keeps_the_alphas_for_its_iterations():
    model, step, calls = _detector_setup(warmup_iters=2)
    start = [a.detach().clone() for a in alphas(model)]
    weights = _weights(model)
    for iteration in range(2):
        step(iteration, (_detector_batch(2 * iteration), _detector_batch(2 * iteration + 1)))
        assert all(torch.equal(a, b) for a, b in zip(start, alphas(model)))
    assert any(not torch.equal(a, b) for a, b in zip(weights, _weights(model)))
    assert [loss for _, loss in calls] == [None, None]  # no alpha loss while warming up
    step(2, (_detector_batch(4), _detector_batch(5)))
    assert all(not torch.equal(a, b) for a, b in zip(start, alphas(model)))
    assert calls[-1][1] is not None and math.isfinite(calls[-1][1])
