import copy

import pytest
import torch

from fad.solver import build_scheduler, build_sgd, warmup_multistep_factor


def test_bias_params_get_their_own_lr_and_decay():
    model = torch.nn.Conv2d(3, 4, 3)
    opt = build_sgd(
        model.named_parameters(),
        base_lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        bias_lr_factor=2.0,
        weight_decay_bias=0.0,
    )
    lrs = sorted((g["lr"], g["weight_decay"]) for g in opt.param_groups)
    assert lrs == [(0.1, 1e-4), (0.2, 0.0)]


def test_frozen_params_are_not_optimised():
    model = torch.nn.Linear(2, 2)
    model.weight.requires_grad_(False)
    opt = build_sgd(model.named_parameters(), base_lr=0.1, momentum=0.9, weight_decay=0)
    assert sum(len(g["params"]) for g in opt.param_groups) == 1


@pytest.mark.parametrize("method, first", [("constant", 1 / 3), ("linear", 1 / 3)])
def test_warmup_then_steps(method, first):
    kw = dict(steps=(10, 20), gamma=0.1, warmup_iters=5, warmup_factor=1 / 3, warmup_method=method)
    assert warmup_multistep_factor(0, **kw) == pytest.approx(first)
    assert warmup_multistep_factor(5, **kw) == 1.0
    assert warmup_multistep_factor(10, **kw) == pytest.approx(0.1)
    assert warmup_multistep_factor(25, **kw) == pytest.approx(0.01)
    if method == "linear":
        assert first < warmup_multistep_factor(3, **kw) < 1.0
    else:
        assert warmup_multistep_factor(3, **kw) == pytest.approx(1 / 3)


def test_scheduler_state_round_trips():
    from fad.config import get_default_config

    cfg = get_default_config().SOLVER
    model = torch.nn.Linear(2, 2)
    opt = build_sgd(model.named_parameters(), base_lr=0.1, momentum=0.9, weight_decay=0)
    sched = build_scheduler(opt, cfg)
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = build_sgd(model.named_parameters(), base_lr=0.1, momentum=0.9, weight_decay=0)
    sched2 = build_scheduler(opt2, cfg)
    sched2.load_state_dict(state)
    assert sched2.last_epoch == 7


@pytest.mark.parametrize("name, kind", [("SGD", torch.optim.SGD), ("AdamW", torch.optim.AdamW)])
def test_solver_optimizer_key_picks_the_optimizer_with_the_bias_groups(name, kind):
    from fad.config import load_config
    from fad.solver import build_optimizer

    cfg = load_config(None, ["SOLVER.OPTIMIZER", name, "SOLVER.BASE_LR", "0.002"])
    opt = build_optimizer(torch.nn.Conv2d(3, 4, 3).named_parameters(), cfg.SOLVER)
    assert type(opt) is kind
    lrs = sorted((g["lr"], g["weight_decay"]) for g in opt.param_groups)
    assert lrs == [(0.002, cfg.SOLVER.WEIGHT_DECAY), (0.004, cfg.SOLVER.WEIGHT_DECAY_BIAS)]


def test_unknown_optimizer_is_a_one_line_error_naming_the_key():
    from fad.config import load_config
    from fad.errors import FadError

    with pytest.raises(FadError, match="SOLVER.OPTIMIZER must be one of .*'Adam'"):
        load_config(None, ["SOLVER.OPTIMIZER", "Adam"])


LOOP = ["SOLVER.FUSED_OPTIMIZER", "False"]


def _trajectory(optimizer_factory, steps: int = 12) -> torch.Tensor:
    """The weights of a small conv after ``steps`` steps on fixed gradients."""
    torch.manual_seed(0)
    model = torch.nn.Conv2d(4, 8, 3)
    grads = [[torch.randn_like(p) * 1e-3 for p in model.parameters()] for _ in range(steps)]
    optimizer = optimizer_factory(model)
    for step in grads:
        for p, g in zip(model.parameters(), step):
            p.grad = g.clone()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_the_optimizers_are_fused_on_cpu_and_step_as_the_loop_to_float32_rounding(name):
    from fad.config import load_config
    from fad.solver import build_optimizer

    cfg = load_config(None, ["SOLVER.OPTIMIZER", name, "SOLVER.BASE_LR", "0.01"])
    fused = build_optimizer(torch.nn.Conv2d(4, 8, 3).named_parameters(), cfg.SOLVER)
    assert fused.defaults["fused"] is True

    off = load_config(None, ["SOLVER.OPTIMIZER", name, "SOLVER.BASE_LR", "0.01"] + LOOP)
    assert not build_optimizer(torch.nn.Conv2d(4, 8, 3).named_parameters(), off.SOLVER).defaults[
        "fused"
    ]
    a = _trajectory(lambda m: build_optimizer(m.named_parameters(), cfg.SOLVER))
    b = _trajectory(lambda m: build_optimizer(m.named_parameters(), off.SOLVER))
    start = _trajectory(lambda m: torch.optim.SGD(m.parameters(), lr=0.0))
    assert not torch.equal(a, start)  # the steps moved the weights
    torch.testing.assert_close(a, b, rtol=0, atol=4 * torch.finfo(torch.float32).eps)


def test_a_loop_checkpoint_resumes_with_the_loop_bit_for_bit():
    from fad.config import load_config
    from fad.solver import build_optimizer

    cfg = load_config(None, ["SOLVER.OPTIMIZER", "AdamW", "SOLVER.BASE_LR", "0.01"])
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 5)
    grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(4)]

    def steps(optimizer, chunk):
        for step in chunk:
            for p, g in zip(model.parameters(), step):
                p.grad = g.clone()
            optimizer.step()

    loop = load_config(None, ["SOLVER.OPTIMIZER", "AdamW", "SOLVER.BASE_LR", "0.01"] + LOOP)
    old = build_optimizer(model.named_parameters(), loop.SOLVER)  # as fad saved AdamW before
    steps(old, grads[:2])
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    state = copy.deepcopy(old.state_dict())  # the steps below update it in place
    steps(old, grads[2:])
    expected = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved)
    resumed = build_optimizer(model.named_parameters(), cfg.SOLVER)
    resumed.load_state_dict(state)
    assert not any(g["fused"] for g in resumed.param_groups)  # the loop goes on
    steps(resumed, grads[2:])
    assert all(torch.equal(p, e) for p, e in zip(model.parameters(), expected))
