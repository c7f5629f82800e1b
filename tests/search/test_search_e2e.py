"""`fad search` end to end on a tiny shapes set: outputs, exact resume after a crash or Ctrl-C,
second order with a held-out alpha stream, SIGTERM on a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from scratch_search import SCRATCH_SEARCH

from fad.cli import main
from fad.config import load_config
from fad.errors import FadError
from fad.runtime.checkpoint import find_resume_checkpoint
from fad.search import searcher
from fad.search_space.genotype import derive_genotype, read_genotype_file
from fad.search_space.ops import space_ops

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
TINY = [
    "MODEL.DEVICE", "cpu",
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FAD.NUM_NODES_BOX", "2",
    "MODEL.FAD.NUM_NODES_CLS", "2",
    "INPUT.MIN_SIZE_TRAIN", "(48, 64)",  # multi-scale: steps draw from the global RNG
    "INPUT.MAX_SIZE_TRAIN", "64",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "2",
    "SOLVER.MAX_ITER", "3",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "DATALOADER.NUM_WORKERS", "0",
    *SCRATCH_SEARCH,  # the config searches on a pretrained, frozen backbone
    "MODEL.FCOS.NUM_CLASSES", "6",  # the tests' tiny set has five classes
    "MODEL.RETINANET.NUM_CLASSES", "6",
]  # fmt: skip


def _opts(tiny_shapes, out: Path, *extra: str) -> list[str]:
    return [*TINY, "DATASETS.TRAIN", f"('{tiny_shapes['train']}',)", "OUTPUT_DIR", str(out), *extra]


def _search(tiny_shapes, out: Path, *extra: str) -> dict:
    return searcher.run_search(load_config(str(CONFIG), _opts(tiny_shapes, out, *extra)))


@pytest.fixture(scope="module")
def reference(tiny_shapes, tmp_path_factory) -> Path:
    """An uninterrupted 3-iteration search through the command line, with TensorBoard."""
    out = tmp_path_factory.mktemp("reference") / "out"
    args = ["search", "--config-file", str(CONFIG), "--use-tensorboard", "--skip-test"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args + _opts(tiny_shapes, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _final(out: Path) -> dict:
    return torch.load(out / "model_final.pth", weights_only=True)


def _assert_same_search(a: Path, b: Path) -> None:
    ca, cb = _final(a), _final(b)
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    for key, value in ca["alpha_optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, cb["alpha_optimizer"]["state"][key][name]), name
    assert ca["alpha_history"] == cb["alpha_history"]
    for name in ("genotype.log", "alpha_history.json", "alphas.log"):
        assert (a / name).read_text() == (b / name).read_text(), name


def _fail_at(monkeypatch, iteration: int, error: type[BaseException]) -> None:
    """Make the search step raise `error` when it reaches `iteration` (0-based)."""
    real = searcher.make_search_step

    def make(*args, **kwargs):
        step = real(*args, **kwargs)

        def failing(i, batch):
            if i == iteration:
                raise error()
            return step(i, batch)

        return failing

    monkeypatch.setattr(searcher, "make_search_step", make)


def test_cli_writes_genotype_pictures_history_and_report(reference):
    out = reference
    genotypes = read_genotype_file(out / "genotype.log")
    ckpt = _final(out)
    ops = space_ops("released")
    for role in ("box", "cls"):
        rows = [v for k, v in ckpt["model"].items() if k.startswith(f"head.{role}_tower.alphas.")]
        assert len(rows) == 2
        assert genotypes[role] == derive_genotype(rows, ops)  # derived as specified
        # graphviz's pictures, or matplotlib's where `dot` is missing: always all three files
        for name in ("iter_0000002", "iter_0000003", "final"):
            for suffix in (".gv", ".png", ".svg"):
                assert (out / "plots" / role / (name + suffix)).stat().st_size > 0
        assert (out / "plots" / f"alpha_history_{role}.png").stat().st_size > 0
    history = json.loads((out / "alpha_history.json").read_text())
    assert [s["iteration"] for s in history["snapshots"]] == [0, 2, 3]
    first, last = history["snapshots"][0], history["snapshots"][-1]
    assert first["weights"]["box"] != last["weights"]["box"]  # the alphas moved
    assert last["genotypes"] == {role: str(g) for role, g in genotypes.items()}
    assert "== iteration 2 ==" in (out / "alphas.log").read_text()
    report = json.loads((out / "search_report.json").read_text())
    assert report["iterations_this_run"] == 3 and report["images_per_iteration"] == 4
    assert report["it_per_s"] > 0 and report["images_per_s"] > 0 and report["wall_seconds"] > 0
    assert report["peak_memory_kind"] == "cpu_peak_rss" and report["peak_memory_mib"] > 10
    assert report["gpu_hours"] is None
    assert report["genotypes"]["cls"] == str(genotypes["cls"])
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert ckpt["meta"]["kind"] == "search" and ckpt["iteration"] == 3
    # the meta of training's checkpoints: the category ids of the classes too
    assert len(ckpt["meta"]["category_ids"]) == len(ckpt["meta"]["class_names"]) == 5


def test_crash_after_a_checkpoint_then_resume_is_bit_identical(
    tiny_shapes, tmp_path, reference, monkeypatch
):
    out = tmp_path / "out"
    _fail_at(monkeypatch, 2, RuntimeError)
    with pytest.raises(RuntimeError):
        _search(tiny_shapes, out)
    assert not (out / "model_final.pth").exists()
    assert find_resume_checkpoint(out)[1]["iteration"] == 2
    monkeypatch.undo()
    report = _search(tiny_shapes, out)
    assert report["start_iteration"] == 2 and report["iterations_this_run"] == 1
    _assert_same_search(reference, out)


def test_ctrl_c_checkpoints_then_resume_flag_is_bit_identical(
    tiny_shapes, tmp_path, reference, monkeypatch
):
    out = tmp_path / "out"
    _fail_at(monkeypatch, 1, KeyboardInterrupt)
    with pytest.raises(FadError, match="interrupted at iteration 1; checkpoint .*resume"):
        _search(tiny_shapes, out)
    monkeypatch.undo()
    args = ["search", "--config-file", str(CONFIG), "--resume"]
    assert main(args + _opts(tiny_shapes, out)) == 0
    assert json.loads((out / "search_report.json").read_text())["start_iteration"] == 1
    _assert_same_search(reference, out)


def test_resume_flag_without_a_checkpoint_and_foreign_checkpoints_are_errors(
    tiny_shapes, tmp_path, reference
):
    with pytest.raises(FadError, match="--resume: no loadable checkpoint"):
        searcher.run_search(
            load_config(str(CONFIG), _opts(tiny_shapes, tmp_path / "a")), resume=True
        )
    ckpt = _final(reference)
    ckpt["meta"]["kind"] = "train"
    (tmp_path / "b").mkdir()
    torch.save(ckpt, tmp_path / "b" / "model_final.pth")
    with pytest.raises(FadError, match="is a train checkpoint, not a search one"):
        _search(tiny_shapes, tmp_path / "b")


def test_search_needs_search_towers(tiny_shapes, tmp_path):
    with pytest.raises(FadError, match="MODEL.FAD.SEARCH True"):
        _search(tiny_shapes, tmp_path / "a", "MODEL.FAD.SEARCH", "False")
    with pytest.raises(FadError, match="no cls search tower"):
        _search(tiny_shapes, tmp_path / "b", "MODEL.FAD.CLSTOWER", "False")


def test_second_order_with_held_out_alpha_images(tiny_shapes, tmp_path):
    out = tmp_path / "out"
    extra = ("SOLVER.SEARCH.FIRST_ORDER", "False", "SOLVER.SEARCH.ALPHA_HOLDOUT", "0.25")
    with pytest.raises(
        FadError, match="SOLVER.SEARCH.FIRST_ORDER False needs SOLVER.OPTIMIZER SGD"
    ):
        _search(tiny_shapes, out, "SOLVER.OPTIMIZER", "AdamW", *extra)
    extra += ("SOLVER.OPTIMIZER", "SGD")  # the second-order step mirrors SGD
    report = _search(tiny_shapes, out, "SOLVER.MAX_ITER", "2", *extra)
    assert report["first_order"] is False and report["alpha_holdout"] == 0.25
    history = json.loads((out / "alpha_history.json").read_text())
    assert history["snapshots"][0]["weights"] != history["snapshots"][-1]["weights"]
    read_genotype_file(out / "genotype.log")


@pytest.mark.slow
def test_sigterm_on_a_real_process_leaves_a_resumable_checkpoint(tiny_shapes, tmp_path):
    out = tmp_path / "out"
    opts = _opts(tiny_shapes, out, "SOLVER.MAX_ITER", "200", "SOLVER.CHECKPOINT_PERIOD", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fad", "search", "--config-file", str(CONFIG), *opts]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / "model_0000001.pth").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    assert "run the same command again to resume" in stderr
    path, ckpt = find_resume_checkpoint(out)
    done = int(ckpt["iteration"])
    assert done >= 1 and path.name == f"model_{done:07d}.pth"
    report = _search(tiny_shapes, out, "SOLVER.MAX_ITER", str(done + 1))
    assert report["start_iteration"] == done and report["iterations_this_run"] == 1
