"""A matplotlib figure written as ``<stem>.png`` and ``<stem>.svg``, atomically."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import BinaryIO

from matplotlib.figure import Figure

from fad.runtime.atomic import atomic_write

PLOT_FORMATS = ("png", "svg")


def _save(figure: Figure, fmt: str, handle: BinaryIO) -> None:
    figure.savefig(handle, format=fmt, dpi=100)


def write_figure(figure: Figure, path_stem: str | Path) -> list[Path]:
    """Write the figure in every `PLOT_FORMATS` beside `path_stem`; the paths written."""
    stem = Path(path_stem)
    written = []
    for fmt in PLOT_FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write(path, functools.partial(_save, figure, fmt))
        written.append(path)
    return written
