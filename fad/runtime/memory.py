"""This process's peak resident memory, resettable between the stages of a run (Linux).

`reset_peak_rss` writes "5" to /proc/self/clear_refs, which sets the peak (VmHWM) back to the
current resident size; `peak_rss_mib` reads VmHWM. Where /proc is missing (macOS) the reset does
nothing and the peak is the process's lifetime peak (`resource.getrusage`).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start measuring the peak from now; False where the platform cannot."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """The peak resident set size since the last reset (or the process start), in MiB."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 1024)
