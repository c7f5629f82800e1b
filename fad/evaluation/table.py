"""Plain-text tables shared by the COCO and VOC evaluators."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_score(value: float) -> str:
    """Format an AP/AR value with 3 decimals; NaN (class without ground truth) shows as '-'."""
    return "-" if math.isnan(value) else f"{value:.3f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align ``rows`` under ``header``: first column left-aligned, the others right-aligned."""
    columns = len(header)
    for row in rows:
        if len(row) != columns:
            raise ValueError(f"table row {list(row)} has {len(row)} cells, header has {columns}")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(columns)]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
