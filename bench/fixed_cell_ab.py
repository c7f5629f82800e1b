"""A/B of the fused genotype cell: another revision's ``fad/search_space/fused/fixed.py`` against
the work tree's, on the same FAD heads, interleaved in one process.

The other revision's module is read with ``git show REV:fad/search_space/fused/fixed.py`` and
swapped in as the fused path's cell executor in turn with the work tree's; the standard head
(fused) runs in the same loop as the reference. Batch 1, eval, eager, random weights, the demo's
configs (see ``bench/head_latency.py``); median of ``--repeats`` after ``--warmup``.

    python bench/fixed_cell_ab.py [--rev 6d1ac8d] [--threads 2] [--genotypes paper FILE random:1]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head_latency  # noqa: E402

import fad.search_space.fused.path as fused_path  # noqa: E402
from fad.search_space.fused.fixed import fixed_cell  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str):
    """The ``fixed_cell`` of revision ``rev``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:fad/search_space/fused/fixed.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "fixed_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fixed_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fixed_cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rev", default="6d1ac8d", help="the revision to compare (default: per edge)"
    )
    parser.add_argument("--genotypes", nargs="+", default=["paper", "random:1"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = head_latency.parse_args(["--size", "128x160"])
    standard = head_latency.build(options.standard_config, None, "fused", options)
    heads = {g: head_latency.build(options.fad_config, g, "fused", options) for g in args.genotypes}
    cells = {args.rev: load_revision(args.rev), "work tree": fixed_cell}
    times: dict[tuple[str, str], list[float]] = {("standard", ""): []}
    times.update({(g, c): [] for g in heads for c in cells})
    with torch.no_grad():
        for i in range(args.warmup + args.repeats):
            for genotype, cell in times:
                model, features = standard if genotype == "standard" else heads[genotype]
                if cell:
                    fused_path.fixed_cell = cells[cell]
                start = time.perf_counter()
                model.head(features)
                if i >= args.warmup:
                    times[genotype, cell].append(time.perf_counter() - start)
    ms = {key: 1000 * statistics.median(v) for key, v in times.items()}
    base = ms["standard", ""]
    print(f"{args.threads} threads, batch 1, 128x160; standard head (fused) {base:.2f} ms\n")
    print(
        f"| head | {args.rev} (ms) | work tree (ms) | work tree / {args.rev} | ratios to standard |"
    )
    print("|---|---:|---:|---:|---|")
    for g in heads:
        old, new = ms[g, args.rev], ms[g, "work tree"]
        print(
            f"| {g} | {old:.2f} | {new:.2f} | {new / old:.3f} | {old / base:.2f}x -> {new / base:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
