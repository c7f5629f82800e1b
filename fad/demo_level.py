"""The demo's levels: which shapes set the whole pipeline runs on, as config overrides.

`easy` (the default) is the embedded default, `shapes_train` / `shapes_val`: fast, and flat for
the search (docs/search.md E12-E17: every member of the space trains to the same AP there).
`hard` is `shapes_hard` (5 classes, small and occluded shapes on clutter) with a stage 0 trained
4x longer (1200 iterations; at 300 it reaches AP 0.03 there): the level on which genotypes differ
and a search can be judged (docs/search.md E18-E21), at about 2.5x the easy level's time.

A level is two lists of KEY VALUE overrides: one for every stage, one for stage 0 only. The
user's own overrides come after both and win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fad.errors import FadError


@dataclass(frozen=True)
class DemoLevel:
    """Overrides of the demo's packaged configs: `opts` for every stage, `stage0_opts` for the
    backbone's training only."""

    name: str
    opts: tuple[str, ...] = ()
    stage0_opts: tuple[str, ...] = ()


LEVELS: dict[str, DemoLevel] = {
    "easy": DemoLevel("easy"),
    "hard": DemoLevel(
        "hard",
        opts=(
            "DATASETS.TRAIN", "('shapes_hard_train',)",
            "DATASETS.TEST", "('shapes_hard_val',)",
            "MODEL.FCOS.NUM_CLASSES", "6",  # 5 shapes + background
        ),
        stage0_opts=("SOLVER.MAX_ITER", "1200", "SOLVER.STEPS", "(960, 1140)"),
    ),
}  # fmt: skip
DEFAULT_LEVEL = "easy"


def demo_level(name: str) -> DemoLevel:
    """The level called `name` (a FadError listing the levels otherwise)."""
    if name not in LEVELS:
        raise FadError(f"--level {name!r}: unknown; the levels are {', '.join(LEVELS)}")
    return LEVELS[name]


def stage_opts(level: DemoLevel, opts: Sequence[str]) -> list[str]:
    """The overrides of the search and both trainings: the level's, then the user's `opts`."""
    return [*level.opts, *opts]
