"""Benchmark one search iteration of every search method against one training iteration of the
standard head, side by side at the demo's setting, and what that buys: alpha steps per second.

Config: the demo's search config (configs/shapes/search_fad_R_18_FPN.yaml: frozen ResNet-18 FPN
of width 64, towers of 1 cell, 3 nodes, C=32, batch 4, 128x160); synthetic batches (random images,
1-4 random boxes each). Every variant runs the real step of `fad search` (`make_search_step` with
the method) or of `fad train` (`WeightStep`); interleaved repeats after warm-up; medians.

    python bench/search_methods.py [--weights stage0.pth] [--threads 1] [--repeats 5] [KEY VALUE ...]

Without --weights the backbone is random but frozen all the same (the cost is the same).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fad.config import load_config
from fad.engine.step import WeightStep, prepare_batch
from fad.modeling.build import apply_speed_paths, build_detector
from fad.search.methods import MethodOptions, method_class
from fad.search.state import build_alpha_optimizer, build_param_optimizer
from fad.search.step import make_search_step
from fad.solver import build_optimizer, build_scheduler

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
NUM_CLASSES = 3
TRAIN = "train, standard head"
VARIANTS: dict[str, list[str]] = {
    TRAIN: ["MODEL.FAD.SEARCH", "False", "MODEL.FAD_ON", "False"],
    "darts_1st": ["SOLVER.SEARCH.METHOD", "darts_1st"],
    "darts_2nd": ["SOLVER.SEARCH.METHOD", "darts_2nd", "SOLVER.OPTIMIZER", "SGD"],
    "darts_1st one-level": ["SOLVER.SEARCH.ONE_LEVEL", "True"],
    "gdas": ["SOLVER.SEARCH.METHOD", "gdas"],
    "gdas one-level": ["SOLVER.SEARCH.METHOD", "gdas", "SOLVER.SEARCH.ONE_LEVEL", "True"],
    "pcdarts (K=4)": [
        "SOLVER.SEARCH.METHOD", "pcdarts",
        "MODEL.FAD.PARTIAL_CHANNELS", "4",
        "MODEL.FAD.EDGE_NORMALIZATION", "True",
    ],
}  # fmt: skip


def synthetic_batch(batch: int, height: int, width: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(batch):
        images.append(torch.rand(3, height, width, generator=g))
        n = int(torch.randint(1, 5, (), generator=g))
        xy = torch.rand(n, 2, generator=g) * min(height, width) * 0.6
        wh = 8 + torch.rand(n, 2, generator=g) * min(height, width) * 0.4
        boxes = torch.cat([xy, xy + wh], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, NUM_CLASSES + 1, (n,))})
    return images, targets


def build_step(args: argparse.Namespace, overrides: list[str]) -> Callable[[int], None]:
    weights = ["MODEL.WEIGHT", args.weights] if args.weights else []
    cfg = load_config(str(CONFIG), [*weights, "SOLVER.SEARCH.WARMUP_ITERS", "0", *args.opts,
                                    *overrides])  # fmt: skip
    model = build_detector(cfg, NUM_CLASSES, load_weights=bool(args.weights)).train()
    apply_speed_paths(model, cfg)
    size = (cfg.INPUT.MIN_SIZE_TRAIN[0], cfg.INPUT.MAX_SIZE_TRAIN)
    batches = [synthetic_batch(cfg.SOLVER.IMS_PER_BATCH, *size, seed) for seed in (1, 2)]
    cpu = torch.device("cpu")
    if cfg.MODEL.FAD.SEARCH:
        optimizer = build_param_optimizer(model, cfg.SOLVER)
        search = cfg.SOLVER.SEARCH
        cls = method_class(search.METHOD, search.FIRST_ORDER)
        options = MethodOptions(max_iter=10**6, tau=tuple(search.TAU), one_level=search.ONE_LEVEL)
        method = cls(model, build_alpha_optimizer(model, search), optimizer, options)
        step = make_search_step(
            model, method, optimizer, build_scheduler(optimizer, cfg.SOLVER), cpu,
            clip_grad=search.CLIP_GRAD_NORM, flip_prob=0.5, seed=0,
        )  # fmt: skip
        return lambda i: step(i, batches)
    optimizer = build_optimizer(model.named_parameters(), cfg.SOLVER)
    weight_step = WeightStep(
        model, optimizer, build_scheduler(optimizer, cfg.SOLVER), cpu, clip_grad=10.0
    )
    return lambda i: weight_step(
        i, prepare_batch(batches[0], seed=0, iteration=i, flip_prob=0.5, device=cpu)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="stage-0 weights for the frozen backbone")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = {name: build_step(args, overrides) for name, overrides in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.warmup + args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step(i)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"median of {args.repeats} after {args.warmup} warm-up, {torch.get_num_threads()} "
          f"thread(s), overrides {args.opts}")  # fmt: skip
    print()
    print("| iteration | ms | / train | alpha steps per s |")
    print("|---|---:|---:|---:|")
    for name, seconds in median.items():
        rate = "" if name == TRAIN else f"{1 / seconds:.2f}"
        print(f"| {name} | {seconds * 1e3:.0f} | {seconds / median[TRAIN]:.2f}x | {rate} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
