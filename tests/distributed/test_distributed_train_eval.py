"""2 processes on CPU (gloo) under torchrun: training, evaluation and resume across world sizes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from fad.runtime.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def _torchrun(args: list[str], nproc: int, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "fad",
        *args,
    ]
    if nproc == 1:
        cmd = [sys.executable, "-m", "fad", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _ap(stdout: str) -> float:
    match = re.search(
        r"Average Precision  \(AP\) @\[ IoU=0.50:0.95 \| area=   all \| maxDets=100 \] = (-?[\d.]+)",
        stdout,
    )
    assert match, stdout[-2000:]
    return float(match.group(1))


def test_two_process_training_checkpoint_resumes_in_one_process_and_eval_agrees(
    shapes_config, tiny_opts, tmp_path
):
    out = tmp_path / "out"
    train = [
        "train",
        "--config-file",
        str(shapes_config),
        *tiny_opts,
        "SOLVER.MAX_ITER",
        "2",
        "--skip-test",
    ]
    done = _torchrun(train, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(out / "model_final.pth")
    assert ckpt["iteration"] == 2
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert len(list(out.glob("*.pth"))) == 1  # written once, by rank 0
    resumed = _torchrun(train[:-1] + ["SOLVER.MAX_ITER", "3", "--skip-test"], 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        "resuming from" in resumed.stdout
        and load_checkpoint(out / "model_final.pth")["iteration"] == 3
    )

    weights = str(out / "model_final.pth")
    evaluate = [
        "eval",
        "--config-file",
        str(shapes_config),
        *tiny_opts,
        "MODEL.WEIGHT",
        weights,
        "MODEL.FCOS.INFERENCE_TH",
        "0.0",
        "TEST.IMS_PER_BATCH",
        "2",
    ]
    one = _torchrun(evaluate, 1)
    two = _torchrun(evaluate, 2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert _ap(one.stdout) == _ap(two.stdout)
    assert (
        two.stdout.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 1
    )  # rank 0 only


def test_legacy_local_rank_argument_is_accepted(shapes_config, tiny_opts):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "fad",
        "config",
        "--config-file",
        str(shapes_config),
        "--local_rank=0",
        *tiny_opts,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
