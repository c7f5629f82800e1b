"""The final search report: speed, peak memory, device time; written as search_report.json."""

from __future__ import annotations

import json
import logging
import resource
import sys
from pathlib import Path
from typing import Any

import torch

from fad.runtime.atomic import atomic_write_text

log = logging.getLogger("fad")
REPORT_NAME = "search_report.json"


def reset_peak_memory(device: torch.device) -> None:
    """Start counting CUDA peak memory from now (the CPU peak RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """CUDA max allocated on GPU, this process's peak resident set size on CPU, in MiB."""
    if device.type == "cuda":
        return {
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_kind": "cuda_max_allocated",
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return {"peak_memory_mib": rss * scale / 2**20, "peak_memory_kind": "cpu_peak_rss"}


def build_report(
    *,
    loop_stats: dict[str, float],
    wall_seconds: float,
    start_iter: int,
    max_iter: int,
    images_per_iter: int,
    device: torch.device,
    world_size: int,
    genotypes: dict[str, str],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Plain data: this run's speed, memory, GPU-hours (on GPU) and the final genotypes."""
    report: dict[str, Any] = {
        "iterations": max_iter,
        "start_iteration": start_iter,
        "iterations_this_run": int(loop_stats["iterations"]),
        "wall_seconds": wall_seconds,
        "search_seconds": loop_stats["seconds"],
        "it_per_s": loop_stats["it_per_s"],
        "images_per_iteration": images_per_iter,
        "images_per_s": loop_stats["images_per_s"],
        "device": str(device),
        "world_size": world_size,
        **peak_memory(device),
        "gpu_hours": wall_seconds * world_size / 3600 if device.type == "cuda" else None,
        "genotypes": genotypes,
        **settings,
    }
    return report


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """Write ``search_report.json`` atomically and log a short summary."""
    path = Path(folder) / REPORT_NAME
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    gpu = f", {report['gpu_hours']:.3f} GPU-hours" if report["gpu_hours"] is not None else ""
    log.info(
        "search: %d iterations this run in %.1f s wall (%.2f it/s, %.1f images/s), "
        "peak memory %.0f MiB (%s)%s",
        report["iterations_this_run"],
        report["wall_seconds"],
        report["it_per_s"],
        report["images_per_s"],
        report["peak_memory_mib"],
        report["peak_memory_kind"],
        gpu,
    )
    for role, genotype in report["genotypes"].items():
        log.info("final %s genotype: %s", role, genotype)
    log.info("report written to %s", path)
    return path
