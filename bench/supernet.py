"""Benchmark one search cell: RepShare on the fused and plain compute paths, and the naive mixed op.

Times forward + backward of a search cell (3 nodes, C=96 inside W=256, batch 2, 52x52 by default)
for three variants side by side in one process (warmup, then interleaved repeats, median):

- ``fused``: the RepShare cell on the fused path (``fad.search_space.fused.search``: its
  edges batched by wave, on a one-level canvas);
- ``plain``: the same cell, same parameters, as its plain modules (``SearchCell.forward``);
- ``naive``: the naive mixed op (every op its own module, plain DARTS), plain modules.

Each round also times a large fp32 matrix product, whose median rate is the machine's measured
peak; the floor of a variant is its true FLOPs (``fad.modeling.cost``) at that rate. Peak memory:
on CUDA the peak allocated during one step above what the cell and its input hold; on CPU the
rise of the peak RSS (VmHWM) during one step, in a fresh subprocess per variant. The outputs and
the gradients (inputs, weights, alphas) of the fused path are compared with the plain one's.

    python bench/supernet.py [--device cpu|cuda] [--repeats 7] [--warmup 2] [--threads 0]
        [--compile reduce-overhead]
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

from fad.modeling.cost import count_flops, count_parameters
from fad.search_space.cells import SearchCell
from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow
from fad.search_space.fused.path import reach
from fad.search_space.fused.search import search_cell
from fad.search_space.ops import space_ops

VARIANTS = ("fused", "plain", "naive")
COMPILED = "fused, compiled"  # with --compile MODE: timed beside the others
MATMUL = 4096  # side of the square fp32 product that measures the peak rate


class Setup:
    """A variant's cell, alphas and inputs, and its forward."""

    def __init__(
        self, args: argparse.Namespace, variant: str, device: str | None = None, mode: str = ""
    ) -> None:
        device = torch.device(device or args.device)
        torch.manual_seed(0)
        self.op_names = space_ops(args.space)
        w = args.node_channels
        self.cell = SearchCell(
            args.nodes, (w, w), w, args.channels, self.op_names, repshare=variant != "naive"
        ).to(device)
        self.alphas = [
            (1e-3 * torch.randn(2 + k, len(self.op_names), device=device)).requires_grad_()
            for k in range(args.nodes)
        ]
        shape = (args.batch, w, args.size, args.size)
        self.inputs = [torch.randn(shape, device=device), torch.randn(shape, device=device)]
        self.forward = fused_cell if variant == "fused" else SearchCell.__call__
        if mode:  # the cell compiled in torch.compile mode ``mode`` (its backward too)
            self.forward = torch.compile(self.forward, mode=mode)

    def output(self) -> torch.Tensor:
        weights = [a.softmax(dim=-1) for a in self.alphas]
        return self.forward(self.cell, *self.inputs, weights)

    def step(self) -> None:
        """One forward + backward (the loss: mean of the squared output)."""
        self.cell.zero_grad(set_to_none=True)
        self.output().square().mean().backward()
        if self.inputs[0].is_cuda:
            torch.cuda.synchronize()


def fused_cell(cell: SearchCell, s0: torch.Tensor, s1: torch.Tensor, weights) -> torch.Tensor:
    """The cell on the fused path: one level on a canvas."""
    canvas = Canvas.for_levels([s0], reach(cell))
    states = (Flow(canvas.pack([s]), True) for s in (s0, s1))
    return canvas.unpack(search_cell(cell, *states, weights, canvas).x)[0]


def count(args: argparse.Namespace, variant: str) -> tuple[int, int]:
    """(parameters, FLOPs of one step), on the meta device (shapes only)."""
    setup = Setup(args, variant, device="meta")
    return count_parameters(setup.cell), count_flops(setup.step)


def matmul_step(device: str) -> Callable[[], float]:
    """A closure timing one MATMUL^3 fp32 product; returns its rate in FLOP/s."""
    a, b = (torch.randn(MATMUL, MATMUL, device=device) for _ in range(2))

    def run() -> float:
        start = time.perf_counter()
        a @ b
        if a.is_cuda:
            torch.cuda.synchronize()
        return 2 * MATMUL**3 / (time.perf_counter() - start)

    return run


def time_steps(args: argparse.Namespace) -> tuple[dict[str, float], float]:
    """Median seconds per step of each variant, and the median matmul rate (FLOP/s)."""
    steps = {name: Setup(args, name).step for name in VARIANTS}
    if args.compile:
        steps[COMPILED] = Setup(args, "fused", mode=args.compile).step
    peak = matmul_step(args.device)
    for _ in range(args.warmup):
        peak()
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    rates = []
    for _ in range(args.repeats):
        rates.append(peak())
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, statistics.median(rates)


def max_differences(args: argparse.Namespace) -> tuple[float, float]:
    """Max |fused - plain| over the output, and over every gradient (inputs too)."""
    results = []
    for variant in ("fused", "plain"):
        setup = Setup(args, variant)
        for x in setup.inputs:
            x.requires_grad_()
        out = setup.output()
        out.square().mean().backward()
        tensors = [*setup.inputs, *setup.alphas, *setup.cell.parameters()]
        results.append((out.detach(), [t.grad for t in tensors]))
    (out, grads), (ref_out, ref_grads) = results
    worst_grad = max((g - r).abs().max().item() for g, r in zip(grads, ref_grads, strict=True))
    return (out - ref_out).abs().max().item(), worst_grad


def cuda_peak(args: argparse.Namespace, variant: str) -> int:
    """Peak bytes allocated by one step on CUDA above the cell, its input and its alphas."""
    torch.cuda.empty_cache()
    setup = Setup(args, variant)
    setup.step()  # gradients allocated once, as in training
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    setup.step()
    return torch.cuda.max_memory_allocated() - base


def cpu_peak_in_subprocess(variant: str) -> int:
    """Rise of max RSS (bytes) during one step, in a fresh process for this variant alone."""
    command = [sys.executable, __file__, *sys.argv[1:], "--rss-of", variant]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_of(args: argparse.Namespace, variant: str) -> int:
    """Child process: peak RSS rise (bytes) during one step of one variant (Linux).

    ``ru_maxrss`` survives fork + exec (it starts at the parent's RSS), so the peak is reset
    through ``/proc/self/clear_refs`` and read back as VmHWM.
    """
    setup = Setup(args, variant)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    setup.step()
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
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--compile", default="", help="also time the fused cell through torch.compile in this "
        "mode (e.g. reduce-overhead: CUDA graphs); compiled in the warmup",
    )  # fmt: skip
    parser.add_argument("--rss-of", choices=VARIANTS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def report(
    args: argparse.Namespace,
    counts: dict[str, tuple[int, int]],
    times: dict[str, float],
    rate: float,
    peaks: dict[str, int],
    differences: tuple[float, float],
) -> None:
    """Print the markdown tables."""
    on_cuda = args.device.startswith("cuda")
    device = torch.cuda.get_device_name() if on_cuda else f"CPU, {torch.get_num_threads()} threads"
    memory = "peak CUDA memory (MiB)" if on_cuda else "peak RSS rise (MiB)"
    floor = counts["plain"][1] / rate
    print(
        f"search cell: {args.nodes} nodes, C={args.channels}, W={args.node_channels}, "
        f"batch {args.batch}, {args.size}x{args.size}, space {args.space}, on {device}; "
        f"median of {args.repeats} interleaved after {args.warmup} warmup; "
        f"fp32 {MATMUL}^3 matmul: {rate / 1e9:.1f} GFLOP/s"
    )
    print()
    print(f"| variant | fwd+bwd (ms) | / fused | / floor | GFLOP | parameters | {memory} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in VARIANTS:
        params, flops = counts[name]
        print(
            f"| {name} | {times[name] * 1e3:.1f} | {times[name] / times['fused']:.2f}x "
            f"| {times[name] / floor:.2f}x | {flops / 1e9:.1f} | {params:,} "
            f"| {peaks[name] / 2**20:.1f} |"
        )
    if COMPILED in times:
        t = times[COMPILED]
        print(
            f"| {COMPILED} ({args.compile}) | {t * 1e3:.1f} | {t / times['fused']:.2f}x "
            f"| {t / floor:.2f}x | | | |"
        )
    print()
    print("| figure | value | target |")
    print("|---|---:|---:|")
    rows = [
        ("fused speed-up over plain", times["plain"] / times["fused"], ""),
        ("fused time / floor", times["fused"] / floor, ""),
        ("naive time / fused time", times["naive"] / times["fused"], ""),
        ("peak memory, fused / naive", peaks["fused"] / max(peaks["naive"], 1), ""),
        ("peak memory, fused / plain", peaks["fused"] / max(peaks["plain"], 1), ""),
        ("FLOPs, RepShare / naive", counts["plain"][1] / counts["naive"][1], ""),
        ("parameters, RepShare / naive", counts["plain"][0] / counts["naive"][0], ""),
    ]
    for label, value, target in rows:
        print(f"| {label} | {value:.2f}x | {target} |")
    print(f"| max abs difference fused - plain, output | {differences[0]:.1e} | <= 1e-4 |")
    print(f"| max abs difference fused - plain, gradients | {differences[1]:.1e} | <= 1e-4 |")
    print()
    print(f"floor: the cell's {counts['plain'][1] / 1e9:.1f} GFLOP at the matmul rate")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_of:
        print(rss_of(args, args.rss_of))
        return 0
    counts = {name: count(args, name) for name in VARIANTS}
    differences = max_differences(args)
    times, rate = time_steps(args)
    if args.device.startswith("cuda"):
        peaks = {name: cuda_peak(args, name) for name in VARIANTS}
    else:
        peaks = {name: cpu_peak_in_subprocess(name) for name in VARIANTS}
    report(args, counts, times, rate, peaks, differences)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
