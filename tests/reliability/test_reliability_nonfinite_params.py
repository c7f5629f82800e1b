"""Fail closed on non-finite numbers: a non-finite hyper-parameter is a one-line config error;
weights (or alphas) that turn non-finite in an optimizer step stop the run before they are
saved; and the one checkpoint writer never writes a file holding a non-finite tensor."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from fad.cli import main
from fad.config import load_config
from fad.config.defaults import get_default_config
from fad.config.validate import validate_config
from fad.errors import FadError
from fad.runtime.checkpoint import find_resume_checkpoint, save_checkpoint

NON_FINITE = [
    (["SOLVER.BASE_LR", "1e999"], "override SOLVER.BASE_LR: SOLVER.BASE_LR must be finite"),
    (["SOLVER.WEIGHT_DECAY", "-1e999"], "SOLVER.WEIGHT_DECAY must be finite, got -inf"),
    (["SOLVER.MOMENTUM", "nan"], "SOLVER.MOMENTUM must be a number, got 'nan'"),
    (
        ["INPUT.PIXEL_STD", "(1e999, 1.0, 1.0)"],
        "INPUT.PIXEL_STD must be finite, got (inf, 1.0, 1.0)",
    ),
    (["MODEL.FCOS.LOSS_GAMMA", "1e400"], "MODEL.FCOS.LOSS_GAMMA must be finite"),
    (["SOLVER.GAMMA", "1" + "0" * 400], "SOLVER.GAMMA must be finite, got a huge number"),
]


@pytest.mark.parametrize(("override", "expected"), NON_FINITE, ids=[o[0] for o, _ in NON_FINITE])
def test_non_finite_hyper_parameters_are_one_line_errors_before_any_output(
    override, expected, shapes_config, fast_opts, tmp_path, capsys
):
    code = main(["train", "--config-file", str(shapes_config), *fast_opts, *override])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_non_finite_value_in_the_yaml_names_file_and_line(shapes_config, tmp_path):
    text = Path(shapes_config).read_text().replace("  BASE_LR:", "  BASE_LR: .inf #", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = 1 + next(i for i, x in enumerate(text.splitlines()) if "BASE_LR: .inf" in x)
    with pytest.raises(FadError, match=f"{bad}:{line}: SOLVER.BASE_LR must be finite, got inf"):
        load_config(bad)


def test_validation_refuses_non_finite_floats_set_in_code():
    cfg = get_default_config()
    cfg.MODEL.FCOS.NMS_TH = float("nan")
    with pytest.raises(FadError, match="MODEL.FCOS.NMS_TH must be finite, got nan"):
        validate_config(cfg)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_weights_that_turn_non_finite_in_a_step_stop_the_run_unsaved(
    shapes_config, fast_opts, tmp_path
):
    from fad.engine.train import run_training

    out = tmp_path / "out"
    steps = {"n": 0, "hashes": None}

    def poison(optimizer, args, kwargs):  # the 2nd step leaves a weight at NaN
        steps["n"] += 1
        if steps["n"] == 2:
            steps["hashes"] = {p.name: _sha(p) for p in out.glob("model_*.pth")}
            optimizer.param_groups[0]["params"][0].data.view(-1)[0] = float("nan")

    cfg = load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", "4"])
    handle = register_optimizer_step_post_hook(poison)
    try:
        with pytest.raises(FadError) as err:
            run_training(cfg, skip_test=True)
    finally:
        handle.remove()
    message = str(err.value)
    assert "non-finite weights after the optimizer step of iteration 2" in message, message
    assert re.search(r"\(e\.g\. [\w.]+\)", message) and "\n" not in message
    assert sorted(p.name for p in out.glob("model_*.pth")) == ["model_0000001.pth"]
    assert {p.name: _sha(p) for p in out.glob("model_*.pth")} == steps["hashes"]
    path, ckpt = find_resume_checkpoint(out)
    assert path.name == "model_0000001.pth" and ckpt["iteration"] == 1


def test_alphas_that_turn_non_finite_in_the_alpha_step_stop_the_search_unsaved(
    shapes_config, search_opts, tmp_path
):
    from fad.search.searcher import run_search

    out = tmp_path / "out"
    config = shapes_config.parent / "search_fad_R_18_FPN.yaml"
    opts = [*search_opts, "MODEL.FAD.NUM_NODES_BOX", "1", "MODEL.FAD.NUM_NODES_CLS", "1"]
    cfg = load_config(config, opts + ["SOLVER.MAX_ITER", "3"])
    adam_steps = {"n": 0}

    def poison(optimizer, args, kwargs):  # the 2nd alpha step leaves an alpha at inf
        if isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW):
            adam_steps["n"] += 1
            if adam_steps["n"] == 2:
                optimizer.param_groups[0]["params"][0].data.view(-1)[0] = float("inf")

    handle = register_optimizer_step_post_hook(poison)
    try:
        with pytest.raises(FadError) as err:
            run_search(cfg)
    finally:
        handle.remove()
    message = str(err.value)
    assert "non-finite alphas after the alpha step of iteration 2" in message, message
    assert sorted(p.name for p in out.glob("model_*.pth")) == ["model_0000001.pth"]


def test_the_checkpoint_writer_refuses_non_finite_tensors_and_keeps_the_previous_one(tmp_path):
    good = {"model": {"w": torch.ones(3)}, "iteration": 1}
    save_checkpoint(tmp_path, "model_0000001.pth", good)
    before = _sha(tmp_path / "model_0000001.pth")
    momentum = torch.ones(2)
    momentum[1] = float("-inf")
    bad = {
        "model": {"w": torch.ones(3)},
        "optimizer": {"state": {0: {"momentum_buffer": momentum}}},
        "iteration": 2,
    }
    with pytest.raises(FadError) as err:
        save_checkpoint(tmp_path, "model_0000002.pth", bad)
    assert str(err.value) == (
        f"not saving {tmp_path / 'model_0000002.pth'}: optimizer.state.0.momentum_buffer holds "
        "non-finite values; the last checkpoint is intact"
    )
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_0000001.pth"
    assert _sha(tmp_path / "model_0000001.pth") == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
