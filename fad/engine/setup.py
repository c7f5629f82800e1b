"""What every command does first: device and process group, output folder, logger, seed, config."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode as CN

from fad.config import save_config
from fad.engine.distributed import get_rank, get_world_size, init_from_env
from fad.engine.logger import setup_logger


@dataclass
class RunContext:
    device: torch.device
    rank: int
    world_size: int
    output_dir: Path
    log: logging.Logger


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(requested: str, fallback: torch.device) -> torch.device:
    """MODEL.DEVICE 'cuda' falls back to the CPU when CUDA is absent."""
    if requested.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    return fallback


def start_run(
    cfg: CN, *, local_rank: int | None = None, log_name: str = "log.txt", write_config: bool = True
) -> RunContext:
    """Join the process group, create OUTPUT_DIR, set up logging, seed (per rank), save config."""
    device = pick_device(cfg.MODEL.DEVICE, init_from_env(local_rank))
    rank, world = get_rank(), get_world_size()
    out = Path(cfg.OUTPUT_DIR)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log = setup_logger(out, rank, log_name)
    seed_everything(cfg.SEED + rank)
    if rank == 0 and write_config:
        save_config(cfg, out / "config.yaml")
    log.info("fad on %s, %d process(es), output in %s", device, world, out)
    return RunContext(device, rank, world, out, log)
