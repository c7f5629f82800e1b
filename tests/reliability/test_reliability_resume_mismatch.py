"""Promise 6 (mismatches): `fad train` on an OUTPUT_DIR whose checkpoint was written by a different
architecture stops with an error listing the missing, unexpected and wrong-shape keys, instead of
silently starting afresh; the checkpoint is left as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.config import load_config
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.modeling.backbone import build_resnet
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import save_checkpoint


def _foreign_checkpoint(shapes_config, opts, *changes) -> Path:
    """A checkpoint in OUTPUT_DIR from the same config with `changes` applied."""
    cfg = load_config(shapes_config, list(opts) + list(changes))
    model = build_detector(cfg, 5, load_weights=False)
    payload = {"model": model.state_dict(), "iteration": 2}
    return save_checkpoint(Path(cfg.OUTPUT_DIR), "model_0000002.pth", payload)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (("MODEL.FCOS.NUM_CONVS", "2"), ["unexpected: head.box_tower", "head.cls_tower"]),
        (
            ("MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "96"),
            ["wrong shape: ", "(96, ", "vs (64, "],
        ),
    ],
    ids=["more_tower_convs", "other_fpn_width"],
)
def test_resume_with_another_architecture_lists_the_keys(
    changes, expected, shapes_config, fast_opts
):
    path = _foreign_checkpoint(shapes_config, fast_opts, *changes)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    cfg = load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", "3"])
    with pytest.raises(FadError) as err:
        train(cfg, skip_test=True)
    message = str(err.value)
    assert message.startswith(f"{path} does not match the model")
    for part in expected:
        assert part in message
    out = Path(cfg.OUTPUT_DIR)
    assert sorted(p.name for p in out.glob("*.pth")) == ["model_0000002.pth"]  # no fresh start
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_fewer_tower_convs_in_the_run_than_in_the_checkpoint_via_the_cli(
    shapes_config, fast_opts, capsys
):
    path = _foreign_checkpoint(shapes_config, fast_opts, "MODEL.FCOS.NUM_CONVS", "1")
    opts = fast_opts + ["MODEL.FCOS.NUM_CONVS", "2", "SOLVER.MAX_ITER", "3"]
    assert main(["train", "--config-file", str(shapes_config), *opts]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "missing: head.box_tower" in err


def test_backbone_weights_with_missing_keys_are_listed_in_the_run_log(
    shapes_config, fast_opts, tmp_path
):
    state = {k: v.clone() for k, v in build_resnet(18, norm="BN").state_dict().items()}
    state.pop("layer4.1.bn2.weight")
    state["layer5.extra"] = torch.zeros(2)
    state["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    cfg = load_config(
        shapes_config, fast_opts + ["MODEL.WEIGHT", str(path), "SOLVER.MAX_ITER", "1"]
    )
    train(cfg, skip_test=True)
    log = (Path(cfg.OUTPUT_DIR) / "log.txt").read_text()
    (warning,) = [line for line in log.splitlines() if " WARNING backbone weights " in line]
    assert "missing keys ['conv1.weight', 'layer4.1.bn2.weight']" in warning
    assert (
        "1 unexpected keys ['layer5.extra']" in warning
        and "1 wrong shapes ['conv1.weight']" in warning
    )
