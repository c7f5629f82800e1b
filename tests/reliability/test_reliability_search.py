"""`fad search` shares the loop and the loaders of `fad train`: a NaN loss stops the search before
any optimizer step with the last checkpoint intact, and an unreadable training image is counted
against DATALOADER.MAX_BAD_IMAGE_FRACTION (interrupts and exact resume of the search are pinned
in tests/search/test_search_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scratch_search import SCRATCH_SEARCH
from torch.optim.optimizer import register_optimizer_step_post_hook

import fad.modeling.fcos.detector as fcos_module
from fad.config import load_config
from fad.engine.step import NonFiniteLossError
from fad.errors import FadError
from fad.runtime.checkpoint import find_resume_checkpoint
from fad.search import searcher

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
TINY = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FAD.NUM_NODES_BOX", "1",
    "MODEL.FAD.NUM_NODES_CLS", "1",
    "INPUT.MIN_SIZE_TRAIN", "(64,)",
    "INPUT.MAX_SIZE_TRAIN", "64",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "2",
    "SOLVER.CHECKPOINT_PERIOD", "1",
    "DATALOADER.NUM_WORKERS", "0",
    *SCRATCH_SEARCH,  # the config searches on a pretrained, frozen backbone
    "MODEL.FCOS.NUM_CLASSES", "6",  # the tests' tiny set has five classes
]  # fmt: skip


def _cfg(train: str, out: Path, *extra: str):
    opts = [*TINY, "DATASETS.TRAIN", f"('{train}',)", "OUTPUT_DIR", str(out), *extra]
    return load_config(str(CONFIG), opts)


def test_nan_loss_stops_the_search_and_keeps_the_last_checkpoint(
    tiny_shapes, tmp_path, monkeypatch
):
    real = fcos_module.fcos_losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        losses = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # iteration 2, weight step (each iteration: alpha step, weight step)
            losses = {**losses, "loss_cls": losses["loss_cls"] * float("inf")}
        return losses

    monkeypatch.setattr(fcos_module, "fcos_losses", poisoned)
    out = tmp_path / "out"
    steps = []
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(opt))
    try:
        with pytest.raises(NonFiniteLossError) as err:
            searcher.run_search(_cfg(tiny_shapes["train"], out, "SOLVER.MAX_ITER", "4"))
    finally:
        handle.remove()
    message = str(err.value)
    assert "non-finite loss at iteration 2 (" in message and "loss_cls=inf" in message
    assert "loss_reg=" in message and "loss_centerness=" in message
    weights_optimizer = _cfg(tiny_shapes["train"], out).SOLVER.OPTIMIZER  # alphas: Adam
    weight_steps = [opt for opt in steps if type(opt).__name__ == weights_optimizer]
    assert len(weight_steps) == 1  # iteration 1 only
    assert sorted(p.name for p in out.glob("model_*.pth")) == ["model_0000001.pth"]
    path, ckpt = find_resume_checkpoint(out)
    assert path.name == "model_0000001.pth" and ckpt["iteration"] == 1


def test_an_unreadable_image_counts_against_the_search_budget(shapes_copy, tmp_path):
    path = Path(shapes_copy["train_dir"]) / "000004.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(FadError, match="training images could not be read"):
        searcher.run_search(_cfg(shapes_copy["train"], tmp_path / "out", "SOLVER.MAX_ITER", "12"))
    assert str(path) in (tmp_path / "out" / "log.txt").read_text()
