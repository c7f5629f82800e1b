"""The optimizer step and the weights' finiteness check: per-parameter loop against fused kernels.

A search supernet holds ~1,000 small parameters (every op's convs and GroupNorms), and a loop
over them in Python costs the search iteration tens of milliseconds. Two parts, interleaved
repeats after warmup, medians printed as markdown tables:

1. On the parameters of the shapes search config's supernet (random gradients): one
   ``optimizer.step()`` of AdamW and SGD with momentum as the per-parameter loop, torch's foreach
   and its fused kernels (what `fad.solver` builds), and the finiteness check of the weights
   after a step as a per-tensor loop and as `fad.engine.weight_step.all_finite` (one foreach
   max-norm).
2. Whole iterations (`bench/search_iteration.py`'s closures: a standard-head training iteration,
   a two-level first-order DARTS iteration and the demo's one-level one) with
   ``SOLVER.FUSED_OPTIMIZER`` False and True.

    python bench/optimizer_step.py [--threads 2] [--repeats 9] [--skip-iterations]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import search_iteration
import torch

from fad.config import load_config
from fad.engine.weight_step import all_finite
from fad.modeling.build import build_detector

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
ITERATIONS = (
    search_iteration.TRAIN,
    search_iteration.SEARCH,
    "search, one level (the demo's), fused",
)
LOOP = ["SOLVER.FUSED_OPTIMIZER", "False"]


def interleaved(fns: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict:
    """Median seconds of each function, run in turn (order reversed every other round)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name in list(fns) if i % 2 else list(fns)[::-1]:
            start = time.perf_counter()
            fns[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def supernet_parameters() -> list[torch.nn.Parameter]:
    cfg = load_config(str(CONFIG), ["SOLVER.SEARCH.ONE_LEVEL", "False"])
    model = build_detector(cfg, search_iteration.NUM_CLASSES, load_weights=False)
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator) * 1e-3
    return params


def loop_check(params: list[torch.Tensor]) -> bool:
    """The check as fad ran it before `all_finite`: one isfinite().all() per tensor."""
    return bool(torch.stack([torch.isfinite(p.detach()).all() for p in params]).all())


def step_table(args: argparse.Namespace) -> str:
    params = supernet_parameters()
    fns: dict[str, Callable[[], object]] = {}
    for impl in ("loop", "foreach", "fused"):
        flags = {"foreach": impl == "foreach", "fused": impl == "fused"} if impl != "loop" else {}
        flags = flags or {"foreach": False}
        adamw = torch.optim.AdamW(params, lr=1e-4, **flags)
        sgd = torch.optim.SGD(params, lr=1e-4, momentum=0.9, **flags)
        fns[f"AdamW step, {impl}"] = adamw.step
        fns[f"SGD step, {impl}"] = sgd.step
    fns["finite check, loop"] = lambda: loop_check(params)
    fns["finite check, all_finite"] = lambda: all_finite(params)
    times = interleaved(fns, args.warmup, args.repeats)
    rows = [
        f"{len(params)} parameters ({sum(p.numel() for p in params):,} values) of the search "
        "supernet\n",
        "| what | ms | vs the loop |",
        "|---|---:|---:|",
    ]
    for name, seconds in times.items():
        base = times[name.rsplit(", ", 1)[0] + ", loop"]
        rows.append(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.2f}x |")
    return "\n".join(rows)


def iteration_table(args: argparse.Namespace) -> str:
    bench_args = search_iteration.parse_args(["--device", "cpu"])
    fns = {}
    for name in ITERATIONS:
        kind, overrides = search_iteration.VARIANTS[name]
        for label, extra in (("loop", LOOP), ("fused", [])):
            torch.manual_seed(0)
            step = search_iteration.build_step(bench_args, kind, [*overrides, *extra])
            counter = iter(range(10**6))
            fns[f"{name}|{label}"] = lambda step=step, counter=counter: step(next(counter))
    times = interleaved(fns, 2, args.repeats)
    train = times[f"{ITERATIONS[0]}|fused"]
    rows = [
        "| iteration | loop optimizer (ms) | fused (ms) | fused / loop | fused, ratio to train |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ITERATIONS:
        loop, fused = times[f"{name}|loop"], times[f"{name}|fused"]
        rows.append(
            f"| {name} | {loop * 1e3:.0f} | {fused * 1e3:.0f} | {fused / loop:.3f} "
            f"| {fused / train:.2f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-iterations", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print(step_table(args))
    if not args.skip_iterations:
        print()
        print(iteration_table(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
