"""Benchmark one first-order search iteration against one plain FCOS training iteration.

Same backbone, batch and input size (the shapes search config by default): a search iteration
(``fad.search.search_step.make_search_step``: an alpha step on one batch, then a clipped weight step
on another) with RepShare and with the naive mixed ops (MODEL.FAD.REPSHARE False), and a training
iteration of the standard FCOS head (``fad.engine.weight_step``: batch preparation, ``WeightStep``); for reference also
a training iteration of the RepShare supernet alone (what the alpha step adds). Batches are synthetic
(random images, 1-4 random boxes each). Interleaved repeats after warmup; medians and ratios are
printed as markdown tables. Search iterations run on both compute paths (MODEL.COMPUTE_PATH
fused, plain) for two-level first-order DARTS, GDAS and PC-DARTS (K=4, edge weights), and fused
for the one-level DARTS of the shapes config (alphas stepped on the weight step's gradient). Target (issue 23):
a first-order DARTS iteration <= 5x a standard-head training iteration. Each variant's FLOPs per
iteration (forward and backward, as `fad.modeling.cost` counts them, one counted iteration after
the timed ones) give its FLOP floor: the ratio its FLOPs alone would set, beside the time's.

    python bench/search_iteration.py [--device cpu|cuda] [--size 128] [--batch 4] [--threads 1]
        [--variants "one level" GDAS ...] [--opts MODEL.COMPILE True ...]

With ``--opts MODEL.COMPILE True MODEL.COMPILE_MODE reduce-overhead`` every variant's towers run
compiled (CUDA graphs on a GPU; the warmup iterations compile them): the launch-free search step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fad.config import load_config
from fad.engine.weight_step import WeightStep, prepare_batch
from fad.modeling.build import apply_speed_paths, build_detector
from fad.modeling.cost import count_flops
from fad.search.methods import MethodOptions, method_class
from fad.search.search_state import build_alpha_optimizer, build_param_optimizer
from fad.search.search_step import make_search_step
from fad.solver import build_optimizer, build_scheduler

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
NUM_CLASSES = 3  # the easy shapes level, as the config (NUM_CLASSES 4 with the background)
TRAIN = "train (standard FCOS head)"
SEARCH = "search, RepShare"
SUPERNET = "train the RepShare supernet (no alpha step)"
PLAIN = ["MODEL.COMPUTE_PATH", "plain"]
FUSED = ["MODEL.COMPUTE_PATH", "fused"]
STANDARD = ["MODEL.FAD.SEARCH", "False", "MODEL.FAD_ON", "False"]
GDAS = ["SOLVER.SEARCH.METHOD", "gdas"]
PC_DARTS = [
    *["SOLVER.SEARCH.METHOD", "pcdarts", "MODEL.FAD.PARTIAL_CHANNELS", "4"],
    *["MODEL.FAD.EDGE_NORMALIZATION", "True"],
]
# variant -> (iteration kind, config overrides on top of the search config)
TWO = ["SOLVER.SEARCH.ONE_LEVEL", "False"]  # full DARTS: an alpha step on its own batch
VARIANTS: dict[str, tuple[str, list[str]]] = {
    TRAIN: ("train", [*STANDARD, *PLAIN]),
    "train (standard FCOS head), fused": ("train", [*STANDARD, *FUSED]),
    SEARCH: ("search", [*TWO, "MODEL.FAD.REPSHARE", "True", *FUSED]),
    "search, RepShare, plain": ("search", [*TWO, "MODEL.FAD.REPSHARE", "True", *PLAIN]),
    "search, naive ops": ("search", [*TWO, "MODEL.FAD.REPSHARE", "False", *PLAIN]),
    "search, one level (the demo's), fused": (
        "search",
        ["SOLVER.SEARCH.ONE_LEVEL", "True", *FUSED],
    ),
    "search, GDAS, fused": ("search", [*TWO, *GDAS, *FUSED]),
    "search, GDAS, plain": ("search", [*TWO, *GDAS, *PLAIN]),
    "search, PC-DARTS (K=4), fused": ("search", [*TWO, *PC_DARTS, *FUSED]),
    "search, PC-DARTS (K=4), plain": ("search", [*TWO, *PC_DARTS, *PLAIN]),
    SUPERNET: ("train", ["MODEL.FAD.REPSHARE", "True", *FUSED]),
}


def synthetic_batch(args: argparse.Namespace, seed: int):
    """(images, targets) of ``args.batch`` random size x size images with 1-4 boxes each."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(args.batch):
        images.append(torch.rand(3, args.size, args.size, generator=g))
        n = int(torch.randint(1, 5, (), generator=g))
        xy = torch.rand(n, 2, generator=g) * args.size * 0.6
        wh = 8 + torch.rand(n, 2, generator=g) * args.size * 0.4
        boxes = torch.cat([xy, (xy + wh).clamp(max=args.size)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, NUM_CLASSES + 1, (n,))})
    return images, targets


def build_step(args: argparse.Namespace, kind: str, overrides: list[str]) -> Callable[[int], None]:
    """A closure running one iteration (``kind`` "train" or "search") at iteration i."""
    size = ["INPUT.MIN_SIZE_TRAIN", f"({args.size},)", "INPUT.MAX_SIZE_TRAIN", str(args.size)]
    every_step = ["SOLVER.SEARCH.WARMUP_ITERS", "0"]  # the alphas move from the first iteration
    opts = [*size, "MODEL.DEVICE", args.device, *every_step, *overrides, *args.opts]
    cfg = load_config(str(CONFIG), opts)
    device = torch.device(args.device)
    model = build_detector(cfg, NUM_CLASSES, load_weights=False).to(device).train()
    apply_speed_paths(model, cfg)
    batches = (synthetic_batch(args, 1), synthetic_batch(args, 2))
    if kind == "search":
        optimizer = build_param_optimizer(model, cfg.SOLVER)
        alpha_optimizer = build_alpha_optimizer(model, cfg.SOLVER.SEARCH)
        method_cls = method_class(cfg.SOLVER.SEARCH.METHOD, cfg.SOLVER.SEARCH.FIRST_ORDER)
        options = MethodOptions(one_level=cfg.SOLVER.SEARCH.ONE_LEVEL)
        method = method_cls(model, alpha_optimizer, optimizer, options)
        step = make_search_step(
            model,
            method,
            optimizer,
            build_scheduler(optimizer, cfg.SOLVER),
            device,
            clip_grad=cfg.SOLVER.SEARCH.CLIP_GRAD_NORM,
            flip_prob=0.5,
            seed=0,
        )
        batch = batches
    else:
        s = cfg.SOLVER
        optimizer = build_optimizer(model.named_parameters(), s)
        weight_step = WeightStep(
            model,
            optimizer,
            build_scheduler(optimizer, s),
            device,
            clip_grad=s.SEARCH.CLIP_GRAD_NORM,
        )

        def step(iteration: int, batch) -> None:
            prepared = prepare_batch(
                batch, seed=0, iteration=iteration, flip_prob=0.5, device=device
            )
            weight_step(iteration, prepared)

        batch = batches[0]

    def run(iteration: int) -> None:
        step(iteration, batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def _chosen(name: str, args: argparse.Namespace) -> bool:
    """Whether ``--variants`` names this variant: a whole name, or a part of names when it is
    no whole name."""
    if args.variants is None:
        return True
    return any(v == name or (v not in VARIANTS and v in name) for v in args.variants)


def time_variants(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds per iteration of each variant (interleaved, after warmup), and the FLOPs
    of one iteration of each (counted after the timed ones)."""
    chosen = {
        name: variant for name, variant in VARIANTS.items() if name == TRAIN or _chosen(name, args)
    }
    steps = {name: build_step(args, *variant) for name, variant in chosen.items()}
    for i in range(args.warmup):
        for step in steps.values():
            step(i)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.warmup, args.warmup + args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step(i)
            times[name].append(time.perf_counter() - start)
    last = args.warmup + args.repeats
    flops = {name: count_flops(lambda step=step: step(last)) for name, step in steps.items()}
    return {name: statistics.median(t) for name, t in times.items()}, flops


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=128, help="input height and width")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--variants", nargs="*", default=None, help="names of the variants to run, whole or "
        "in part (default: all); the training iteration always runs",
    )  # fmt: skip
    parser.add_argument(
        "--opts", nargs="*", default=[], help="KEY VALUE overrides for every variant, e.g. "
        "MODEL.COMPILE True MODEL.COMPILE_MODE reduce-overhead (compilation runs in the warmup)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    times, flops = time_variants(args)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    m = load_config(str(CONFIG)).MODEL
    print(
        f"{CONFIG.name} (R-18 FPN W={m.RESNETS.BACKBONE_OUT_CHANNELS}, towers: 1 cell, "
        f"{m.FAD.NUM_NODES_BOX} nodes, C={m.FAD.NUM_CHANNELS_BOX}), batch {args.batch}, "
        f"{args.size}x{args.size}, on {device} ({torch.get_num_threads()} threads); "
        f"median of {args.repeats} after {args.warmup} warmup"
    )
    print()
    print("| iteration | ms / iteration | ratio to train | GFLOP / iteration | FLOP floor |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in times.items():
        print(
            f"| {name} | {seconds * 1e3:.0f} | {seconds / times[TRAIN]:.2f}x "
            f"| {flops[name] / 1e9:.2f} | {flops[name] / flops[TRAIN]:.2f}x |"
        )
    if not {SEARCH, "search, naive ops", SUPERNET} <= times.keys():
        return 0
    print()
    speedup = times["search, naive ops"] / times["search, RepShare"]
    print("| ratio | value |")
    print("|---|---:|")
    print(f"| search (RepShare) / train | {times['search, RepShare'] / times[TRAIN]:.2f}x |")
    print(f"| search (naive) / train | {times['search, naive ops'] / times[TRAIN]:.2f}x |")
    print(f"| RepShare speed-up of a search iteration (naive / RepShare) | {speedup:.2f}x |")
    alpha_step = times["search, RepShare"] / times[SUPERNET]
    print(f"| search iteration / supernet training iteration (RepShare) | {alpha_step:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
