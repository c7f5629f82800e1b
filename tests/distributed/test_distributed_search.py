"""`fad search` under torchrun (2 processes, gloo): alphas stay in lockstep; the lockstep check
itself catches ranks that drift apart."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scratch_search import SCRATCH_SEARCH

from fad.errors import FadError
from fad.runtime.checkpoint import load_checkpoint
from fad.runtime.distributed import check_same_across_processes
from fad.search_space.genotype import read_genotype_file

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
TINY = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",  # P7 of 2x2: GroupNorm needs > 1 value per group
    "INPUT.MAX_SIZE_TRAIN", "192",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.MAX_ITER", "4",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "DATALOADER.NUM_WORKERS", "0",
    *SCRATCH_SEARCH,  # the config searches on a pretrained, frozen backbone
    "MODEL.FCOS.NUM_CLASSES", "6",  # the tests' tiny set has five classes
]  # fmt: skip


METHODS = {
    "darts_1st": [],
    "gdas": ["SOLVER.SEARCH.METHOD", "gdas"],  # sampled ops: DDP sees unused parameters
    "one-level": ["SOLVER.SEARCH.ONE_LEVEL", "True"],  # alpha gradients reduced by DDP
    "pcdarts": [
        "SOLVER.SEARCH.METHOD", "pcdarts",
        "MODEL.FAD.PARTIAL_CHANNELS", "2",
        "MODEL.FAD.EDGE_NORMALIZATION", "True",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_process_search_keeps_alphas_in_lockstep(tiny_shapes, tmp_path, method):
    out = tmp_path / "search"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fad",
        "search",
        "--config-file",
        str(CONFIG),
        *TINY,
        "DATASETS.TRAIN",
        f"('{tiny_shapes['train']}',)",
        "OUTPUT_DIR",
        str(out),
        *METHODS[method],
    ]
    done = subprocess.run(
        cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    genotypes = read_genotype_file(out / "genotype.log")
    assert set(genotypes) == {"box", "cls"}
    final = load_checkpoint(out / "model_final.pth")
    start = load_checkpoint(out / "model_0000002.pth")
    moved = [
        k
        for k, v in final["model"].items()
        if ("alphas" in k or "betas" in k) and not torch.equal(v, start["model"][k])
    ]
    assert moved, "the alphas did not move"


def _worker(rank: int, port: int, perturb: bool, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        alpha = torch.ones(3, 4)
        if perturb and rank == 1:
            alpha[0, 0] += 1e-6
        check_same_across_processes([alpha], "the alphas")
        results[rank] = "same"
    except FadError as exc:
        results[rank] = str(exc)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("perturb", [False, True])
def test_lockstep_check_detects_drift(perturb):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(port, perturb, results), nprocs=2, join=True)
    if perturb:
        assert all("the alphas differ across processes" in results[r] for r in (0, 1))
    else:
        assert dict(results) == {0: "same", 1: "same"}
