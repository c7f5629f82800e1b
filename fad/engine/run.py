"""What every run does first (device and process group, output folder, logger, seed, config), and
what training and search share at the start: the training sets, loader options, TensorBoard."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from yacs.config import CfgNode as CN

from fad.config import save_config
from fad.data.build import TrainLoaderOptions, build_datasets
from fad.data.detection import DetectionDataset
from fad.runtime.checkpoint import remove_partial_writes
from fad.runtime.distributed import get_rank, get_world_size, init_from_env
from fad.runtime.logger import setup_logger
from fad.runtime.seeding import seed_everything


@dataclass
class RunContext:
    device: torch.device
    rank: int
    world_size: int
    output_dir: Path
    log: logging.Logger


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


def prepare_training_data(cfg: CN, ctx: RunContext) -> list[DetectionDataset]:
    """The training sets (data report logged); temp files of a killed writer removed."""
    datasets = build_datasets(cfg.DATASETS.TRAIN, train=True, flip_prob=0.0)
    for dataset in datasets:
        ctx.log.info("data report: %s", dataset.report_text())
    if ctx.rank == 0:
        remove_partial_writes(ctx.output_dir)
    return datasets


def train_loader_options(cfg: CN, ctx: RunContext, start_iter: int) -> TrainLoaderOptions:
    """This process's training loader settings from SOLVER.*, SEED and DATALOADER.*."""
    return TrainLoaderOptions(
        images_per_batch=cfg.SOLVER.IMS_PER_BATCH // ctx.world_size,
        max_iter=cfg.SOLVER.MAX_ITER,
        start_iter=start_iter,
        seed=cfg.SEED,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_bad_fraction=cfg.DATALOADER.MAX_BAD_IMAGE_FRACTION,
    )


def open_tensorboard(ctx: RunContext, enabled: bool):
    """A SummaryWriter in OUTPUT_DIR/tensorboard on the main process (None elsewhere or if off)."""
    if not enabled or ctx.rank != 0:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(ctx.output_dir / "tensorboard"))
