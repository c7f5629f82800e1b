"""What every run does first (device and process group, output folder, logger, seed, config), and
what training and search share at the start: the training sets, loader options, TensorBoard.

A run owns its OUTPUT_DIR (`fad.runtime.lock`: a second run into it is refused) and writes
nothing there until every check has passed: `start_run` takes the folder and keeps the log in
memory; `RunContext.start_writing`, called once the model is built and any checkpoint loaded,
moves unreadable checkpoints aside, removes fad's own stale temporary files, saves config.yaml
and opens log.txt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from yacs.config import CfgNode as CN

from fad.config import save_config
from fad.data.build import TrainLoaderOptions, build_datasets
from fad.data.detection import DetectionDataset
from fad.errors import FadError
from fad.modeling.build import train_min_sizes
from fad.runtime.checkpoint import ResumePoint, remove_partial_writes
from fad.runtime.distributed import get_rank, get_world_size, init_from_env
from fad.runtime.lock import FolderOwner, own_folder
from fad.runtime.logger import open_log_file, setup_logger
from fad.runtime.seeding import seed_everything


@dataclass
class RunContext:
    device: torch.device
    rank: int
    world_size: int
    output_dir: Path
    log: logging.Logger
    owner: FolderOwner | None = None
    config: CN | None = None  # saved as config.yaml by start_writing (None: not saved)
    log_name: str = "log.txt"
    resume_point: ResumePoint | None = None
    writing: bool = field(default=False, repr=False)

    def start_writing(self) -> None:
        """Every check has passed: from now on the run writes into OUTPUT_DIR (main process:
        unreadable checkpoints moved aside, stale temporary files removed, config.yaml saved,
        log.txt opened with the records so far). Idempotent."""
        if self.writing:
            return
        self.writing = True
        if self.rank != 0:
            return
        open_log_file(self.log, self.output_dir, self.log_name)
        if self.resume_point is not None:
            self.resume_point.set_aside()
        remove_partial_writes(self.output_dir)
        if self.config is not None:
            save_config(self.config, self.output_dir / "config.yaml")

    def release(self) -> None:
        """Give OUTPUT_DIR back (also done when the context is garbage-collected)."""
        if self.owner is not None:
            self.owner.release()


def pick_device(requested: str, fallback: torch.device) -> torch.device:
    """MODEL.DEVICE 'cpu', or 'cuda' / 'cuda:N' (this process's GPU, `fallback`); 'cuda' without
    CUDA runs on the CPU with a warning, a GPU index that does not exist is a FadError."""
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        logging.getLogger("fad").warning(
            "MODEL.DEVICE %s: no CUDA device on this machine; running on the CPU", requested
        )
        return torch.device("cpu")
    index = requested.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        raise FadError(
            f"MODEL.DEVICE {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return fallback


def start_run(
    cfg: CN, *, local_rank: int | None = None, log_name: str = "log.txt", write_config: bool = True
) -> RunContext:
    """Join the process group, take OUTPUT_DIR (main process; another run holding it is a
    FadError), log to the console (the file waits for `start_writing`), seed (per rank)."""
    fallback = init_from_env(local_rank)
    rank, world = get_rank(), get_world_size()
    out = Path(cfg.OUTPUT_DIR)
    log = setup_logger(out, rank, log_name, defer=True)
    device = pick_device(cfg.MODEL.DEVICE, fallback)
    owner = own_folder(out) if rank == 0 else None
    seed_everything(cfg.SEED + rank)
    log.info("fad on %s, %d process(es), output in %s", device, world, out)
    config = cfg if write_config else None
    return RunContext(device, rank, world, out, log, owner, config, log_name)


def start_from(point: ResumePoint, ctx: RunContext, fresh: bool) -> None:
    """Note where the run starts: the checkpoints that could not be read are moved aside (main
    process; logged) by `RunContext.start_writing`, before the run writes one; and note a fresh
    start asked for with `--fresh`."""
    ctx.resume_point = point
    if fresh and point.path is None:
        ctx.log.info("starting afresh (--fresh) from iteration 0")


def prepare_training_data(cfg: CN, ctx: RunContext) -> list[DetectionDataset]:
    """The training sets (data report logged)."""
    datasets = build_datasets(cfg.DATASETS.TRAIN, train=True, flip_prob=0.0)
    for dataset in datasets:
        ctx.log.info("data report: %s", dataset.report_text())
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
        resize=train_resize(cfg),
    )


def train_resize(cfg: CN) -> tuple[int, int]:
    """(smallest min_size, max_size) of the detector's resize in training."""
    return min(train_min_sizes(cfg)), cfg.INPUT.MAX_SIZE_TRAIN


def inference_resize(cfg: CN) -> tuple[int, int]:
    """(min_size, max_size) of the detector's resize in evaluation and prediction."""
    return cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST


def open_tensorboard(ctx: RunContext, enabled: bool):
    """A SummaryWriter in OUTPUT_DIR/tensorboard on the main process (None elsewhere or if off)."""
    if not enabled or ctx.rank != 0:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(ctx.output_dir / "tensorboard"))
