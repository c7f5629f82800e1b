"""Rebuild a trained detector from its weights file alone (class names and genotype inside)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from yacs.config import CfgNode as CN

from fad.engine.checkpoint import load_checkpoint, load_model_state
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.search_space.genotype import Genotype, parse_genotype


def stored_genotypes(ckpt: dict, source: str) -> dict[str, Genotype]:
    texts = ckpt.get("meta", {}).get("genotypes", {}) or {}
    return {role: parse_genotype(text, source=f"{source}[{role}]") for role, text in texts.items()}


def check_genotypes_match(
    given: dict[str, Genotype], stored: dict[str, Genotype], weights: str
) -> None:
    """A genotype given on the command line must be the one the weights were trained with."""
    for role in sorted(set(given) | set(stored)):
        if role in given and role in stored and str(given[role]) != str(stored[role]):
            raise FadError(
                f"the {role} tower of the given genotype differs from the one {weights} was trained "
                f"with: given {given[role]} vs trained {stored[role]}"
            )
        if role in given and role not in stored:
            raise FadError(
                f"{weights} has a standard {role} tower, but a {role} genotype was given"
            )


def load_trained_model(
    cfg: CN, weights: str, genotypes: dict[str, Genotype] | None = None
) -> tuple[nn.Module, list[str]]:
    """The detector stored in `weights` (a fad checkpoint), ready for eval; and its class names."""
    if not weights:
        raise FadError(
            "MODEL.WEIGHT is empty: give the weights file to evaluate, e.g. MODEL.WEIGHT out/model_final.pth"
        )
    if not Path(weights).is_file():
        raise FadError(f"MODEL.WEIGHT {weights}: file not found")
    ckpt = load_checkpoint(Path(weights))
    meta = ckpt.get("meta", {})
    class_names = list(meta.get("class_names", []))
    if not class_names:
        raise FadError(f"{weights} has no class names; was it written by fad train?")
    stored = stored_genotypes(ckpt, weights)
    if genotypes:
        check_genotypes_match(genotypes, stored, weights)
    model = build_detector(cfg, len(class_names), stored or None, load_weights=False)
    load_model_state(model, ckpt["model"], weights)
    model.eval()
    return model, class_names
