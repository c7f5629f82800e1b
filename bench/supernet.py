"""Benchmark one search cell with RepShare vs the naive mixed op (every op its own module).

Times forward + backward of a search cell (3 nodes, C=96 inside W=256, batch 2, 52x52 by default)
for both variants side by side (warmup, interleaved repeats, median) and reports the speed,
FLOP, parameter and peak-memory ratios as a markdown table. Peak memory: on CUDA the peak allocated
during one step above what the cell and its input hold; on CPU the rise of the peak RSS
(VmHWM) during one step, measured in a fresh subprocess per variant.

    python bench/supernet.py [--device cpu|cuda] [--repeats 7] [--warmup 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from fad.search_space.cells import SearchCell
from fad.search_space.ops import space_ops

VARIANTS = {"RepShare": True, "naive": False}


def build(args: argparse.Namespace, repshare: bool) -> tuple[SearchCell, Callable[[], None]]:
    """The cell and a closure running one forward + backward step on it."""
    device = torch.device(args.device)
    op_names = space_ops(args.space)
    cell = SearchCell(
        args.nodes,
        (args.node_channels, args.node_channels),
        args.node_channels,
        args.channels,
        op_names,
        repshare=repshare,
    ).to(device)
    alphas = [
        (1e-3 * torch.randn(2 + k, len(op_names), device=device)).requires_grad_()
        for k in range(args.nodes)
    ]
    shape = (args.batch, args.node_channels, args.size, args.size)
    s0, s1 = torch.randn(shape, device=device), torch.randn(shape, device=device)

    def step() -> None:
        cell.zero_grad(set_to_none=True)
        out = cell(s0, s1, [a.softmax(dim=-1) for a in alphas])
        out.square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return cell, step


def count_step(args: argparse.Namespace, repshare: bool) -> tuple[int, int]:
    """(parameters, FLOPs of one forward + backward step), on the meta device (shapes only)."""
    cell, step = build(argparse.Namespace(**{**vars(args), "device": "meta"}), repshare)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return sum(p.numel() for p in cell.parameters()), counter.get_total_flops()


def time_steps(args: argparse.Namespace) -> dict[str, list[float]]:
    """Interleaved timings (seconds) of each variant's step, after warmup."""
    steps = {name: build(args, repshare)[1] for name, repshare in VARIANTS.items()}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def cuda_peak(args: argparse.Namespace, repshare: bool) -> int:
    """Peak bytes allocated by one step on CUDA above the cell, its input and its alphas."""
    torch.cuda.empty_cache()
    _, step = build(args, repshare)
    step()  # gradients allocated once, as in training
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    return torch.cuda.max_memory_allocated() - base


def cpu_peak_in_subprocess(args: argparse.Namespace, name: str) -> int:
    """Rise of max RSS (bytes) during one step, in a fresh process for this variant alone."""
    command = [sys.executable, __file__, *sys.argv[1:], "--rss-of", name]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_of(args: argparse.Namespace, name: str) -> int:
    """Child process: peak RSS rise (bytes) during one step of one variant (Linux).

    ``ru_maxrss`` survives fork + exec (it starts at the parent's RSS), so the peak is reset
    through ``/proc/self/clear_refs`` and read back as VmHWM.
    """
    _, step = build(args, VARIANTS[name])
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels", type=int, default=96, help="edge width C")
    parser.add_argument("--node-channels", type=int, default=256, help="node width W")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=52, help="feature map height and width")
    parser.add_argument("--space", default="released")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--rss-of", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.rss_of:
        print(rss_of(args, args.rss_of))
        return 0
    counts = {name: count_step(args, repshare) for name, repshare in VARIANTS.items()}
    params = {name: count[0] for name, count in counts.items()}
    flops = {name: count[1] for name, count in counts.items()}
    times = {name: statistics.median(t) for name, t in time_steps(args).items()}
    if args.device.startswith("cuda"):
        peaks = {name: cuda_peak(args, repshare) for name, repshare in VARIANTS.items()}
        memory = "peak CUDA memory of one step (MiB)"
    else:
        peaks = {name: cpu_peak_in_subprocess(args, name) for name in VARIANTS}
        memory = "peak RSS rise during one step (MiB)"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"search cell: {args.nodes} nodes, C={args.channels}, W={args.node_channels}, "
        f"batch {args.batch}, {args.size}x{args.size}, space {args.space}, on {device} "
        f"({torch.get_num_threads()} threads); median of {args.repeats} after {args.warmup} warmup"
    )
    print()
    print(f"| variant | fwd+bwd (ms) | fwd+bwd GFLOPs | parameters | {memory} |")
    print("|---|---:|---:|---:|---:|")
    for name in VARIANTS:
        print(
            f"| {name} | {times[name] * 1e3:.1f} | {flops[name] / 1e9:.1f} | {params[name]:,} | {peaks[name] / 2**20:.1f} |"
        )
    print()
    print("| ratio | value |")
    print("|---|---:|")
    print(
        f"| speed-up of RepShare (naive time / RepShare time) | {times['naive'] / times['RepShare']:.2f}x |"
    )
    print(f"| FLOPs (RepShare / naive) | {flops['RepShare'] / flops['naive']:.3f} |")
    print(f"| parameters (RepShare / naive) | {params['RepShare'] / params['naive']:.3f} |")
    print(f"| peak memory (RepShare / naive) | {peaks['RepShare'] / max(peaks['naive'], 1):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
