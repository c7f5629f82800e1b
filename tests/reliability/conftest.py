"""Fixtures for the reliability tests: one torch thread, the fastest tiny training config, a
private copy of the tiny shapes set (to corrupt), a fad weights file for `fad eval`, and a
launcher of two-process (gloo) runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from scratch_search import SCRATCH_SEARCH

FAST = ["MODEL.FCOS.NUM_CONVS", "1", "SOLVER.CHECKPOINT_PERIOD", "1"]


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models run faster on one thread than with OpenMP threads fighting over busy cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fast_opts(tiny_opts) -> list[str]:
    """`tiny_opts` with a one-conv head and a checkpoint after every iteration."""
    return tiny_opts + FAST


@pytest.fixture
def search_opts(fast_opts) -> list[str]:
    """`fast_opts` for the shipped search config, made to search from scratch: the config
    searches on the demo's pretrained, frozen backbone, which the tests do not have."""
    return fast_opts + SCRATCH_SEARCH


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if data is loaded or generated, or a model is built: the checks under test
    must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started before the input was checked")

    for target in (
        "fad.data.build.build_datasets",
        "fad.engine.run.build_datasets",
        "fad.engine.evaluate.build_datasets",
        "fad.data.catalog.ensure_shapes",
        "fad.modeling.build.build_detector",
        "fad.engine.trainer.build_detector",
        "fad.engine.trained_model.build_detector",
    ):
        monkeypatch.setattr(target, forbidden)


@pytest.fixture
def shapes_copy(tiny_shapes, tmp_path) -> dict[str, Path | str]:
    """A private copy of the tiny shapes set: folders, json files and '@' names."""
    root = tmp_path / "shapes_copy"
    shutil.copytree(tiny_shapes["root"], root)
    ann = root / "annotations"
    return {
        "root": root,
        "train_dir": root / "train",
        "val_dir": root / "val",
        "train_json": ann / "instances_train.json",
        "val_json": ann / "instances_val.json",
        "train": f"{root / 'train'}@{ann / 'instances_train.json'}",
        "val": f"{root / 'val'}@{ann / 'instances_val.json'}",
    }


@pytest.fixture
def tiny_weights(fast_opts, shapes_config, tmp_path) -> Path:
    """An untrained tiny detector saved as `fad train` saves it (meta with class names)."""
    from fad.config import load_config
    from fad.engine.trained_model import checkpoint_meta
    from fad.modeling.build import build_detector
    from fad.runtime.checkpoint import save_checkpoint

    cfg = load_config(shapes_config, fast_opts)
    names = ["circle", "square", "triangle", "star", "cross"]
    model = build_detector(cfg, len(names), load_weights=False)
    meta = checkpoint_meta(cfg, names, None, "train", [1, 3, 5, 7, 9])
    return save_checkpoint(
        tmp_path / "weights",
        "model_final.pth",
        {"model": model.state_dict(), "meta": meta.to_dict()},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_ranks():
    """`run(args)` starts `python *args` as ranks 0 and 1 of a gloo group on this machine and
    returns [(exit code, stdout, stderr)] per rank."""

    def run(args: list[str], timeout: float = 300) -> list[tuple[int, str, str]]:
        port = str(_free_port())
        procs = []
        for rank in range(2):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "CUDA_VISIBLE_DEVICES": "",
                "OMP_NUM_THREADS": "1",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, *args],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        try:
            outputs = [p.communicate(timeout=timeout) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]

    return run
