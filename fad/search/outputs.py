"""What a search writes to OUTPUT_DIR at each checkpoint and at the end.

- ``genotype.log``: the derived box line then cls line (atomic; what ``fad train
  --genotype-file`` reads).
- ``alpha_history.json`` and ``alphas.log``: the softmaxed alphas (atomic).
- ``plots/<role>/iter_<iteration>.{gv,png,svg}``: a picture of each derived cell (graphviz, or
  matplotlib where graphviz's ``dot`` is missing)
  (``plots/<role>/final.*`` at the end).
- ``plots/alpha_history_<role>.{png,svg}``: how each op's weight evolved per edge.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from fad.errors import FadError
from fad.search.history import AlphaHistory
from fad.search_space.genotype import ROLES, Genotype, write_genotype_file
from fad.search_space.towers import derive_genotypes
from fad.viz.alpha_plot import plot_alpha_history
from fad.viz.genotype_plot import INSTALL_HINT, dot_available, plot_genotype

log = logging.getLogger("fad")
GENOTYPE_FILE = "genotype.log"
HISTORY_FILE = "alpha_history.json"
ALPHAS_LOG = "alphas.log"
PLOTS = "plots"


def current_genotypes(model: nn.Module) -> dict[str, Genotype]:
    """{"box", "cls"} genotypes of the model's alphas; both towers must be searched."""
    genotypes = derive_genotypes(model)
    missing = [role for role in ROLES if role not in genotypes]
    if missing:
        raise FadError(
            f"the search has no {' or '.join(missing)} search tower; genotype.log needs both "
            "(set MODEL.FAD.BOXTOWER and MODEL.FAD.CLSTOWER True)"
        )
    return genotypes


def write_search_outputs(
    folder: Path, model: nn.Module, history: AlphaHistory, iteration: int, *, final: bool = False
) -> dict[str, Genotype]:
    """Write every output above for the model's current alphas; return the genotypes."""
    folder = Path(folder)
    genotypes = current_genotypes(model)
    write_genotype_file(folder / GENOTYPE_FILE, genotypes["box"], genotypes["cls"])
    history.write_json(folder / HISTORY_FILE)
    history.write_log(folder / ALPHAS_LOG)
    names = [f"iter_{iteration:07d}"] + (["final"] if final else [])
    for role, genotype in genotypes.items():
        log.info("iteration %d, %s genotype: %s", iteration, role, genotype)
        for name in names:
            caption = f"{role} tower, iteration {iteration}"
            plot_genotype(genotype, folder / PLOTS / role / name, caption)
        plot_alpha_history(history.state_dict(), role, folder / PLOTS / f"alpha_history_{role}")
    if not dot_available():
        log.info(INSTALL_HINT)
    return genotypes
