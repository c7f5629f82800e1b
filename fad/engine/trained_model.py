"""A weights file as one object: the detector it holds, its config, classes and genotypes.

Every command that uses a trained model (eval, predict, the demo, `fad.load`) reads the file once
through `TrainedModel.read`; training and search describe what they save with `checkpoint_meta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from yacs.config import CfgNode as CN

from fad.config import load_config
from fad.errors import FadError
from fad.modeling.build import build_detector, head_section
from fad.modeling.speed import set_compute_path
from fad.runtime.checkpoint import (
    CheckpointMeta,
    load_checkpoint,
    load_model_state,
    non_finite_entry,
)
from fad.search_space.genotype import Genotype, parse_genotype


def checkpoint_meta(
    cfg: CN,
    class_names: Sequence[str],
    genotypes: dict[str, Genotype] | None,
    kind: str,
    category_ids: Sequence[int] | None = None,
) -> CheckpointMeta:
    """What a run stores next to the weights (`category_ids[k]`: the id of label k + 1), in the
    checkpoint's meta (`fad.runtime.checkpoint.CheckpointMeta`, which adds fad's version): the
    config and genotypes as text, which `TrainedModel` reads back."""
    return CheckpointMeta(
        kind=kind,
        config=cfg.dump(),
        class_names=tuple(class_names),
        category_ids=tuple(int(c) for c in category_ids or ()),
        genotypes={role: str(g) for role, g in (genotypes or {}).items()},
    )


def check_genotypes_match(
    given: dict[str, Genotype], stored: dict[str, Genotype], source: str
) -> None:
    """A genotype given on the command line must be the one the weights were trained with."""
    for role in sorted(set(given) | set(stored)):
        if role in given and role in stored and str(given[role]) != str(stored[role]):
            raise FadError(
                f"the {role} tower of the given genotype differs from the one {source} was trained "
                f"with: given {given[role]} vs trained {stored[role]}"
            )
        if role in given and role not in stored:
            raise FadError(f"{source} has a standard {role} tower, but a {role} genotype was given")


@dataclass
class TrainedModel:
    """A fad weights file, read once: its state dict, meta, and parsed genotypes."""

    path: Path
    state: dict[str, torch.Tensor]
    meta: CheckpointMeta
    genotypes: dict[str, Genotype]

    @classmethod
    def read(cls, path: str | Path) -> TrainedModel:
        """Read and check a weights file written by `fad train` (a FadError otherwise)."""
        if not str(path):
            raise FadError(
                "MODEL.WEIGHT is empty: give the weights file to evaluate, "
                "e.g. MODEL.WEIGHT out/model_final.pth"
            )
        path = Path(path)
        if not path.is_file():
            raise FadError(f"MODEL.WEIGHT {path}: file not found")
        ckpt = load_checkpoint(path)
        meta = CheckpointMeta.from_checkpoint(ckpt, str(path))
        if not meta.class_names:
            raise FadError(f"{path} has no class names; was it written by fad train?")
        bad = [k for k, v in ckpt["model"].items() if not torch.is_tensor(v)]
        if bad:
            raise FadError(f"{path}: model.{bad[0]} is not a tensor")
        bad = non_finite_entry(ckpt["model"])
        if bad is not None:
            raise FadError(f"{path}: model.{bad} holds non-finite values (NaN or Inf)")
        genotypes = {
            role: parse_genotype(text, source=f"{path}[{role}]")
            for role, text in meta.genotypes.items()
        }
        trained = cls(path, ckpt["model"], meta, genotypes)
        key, head = head_section(trained.config())
        if len(meta.class_names) > head.NUM_CLASSES - 1:
            raise FadError(
                f"{path}: stored meta field 'class_names' has {len(meta.class_names)} names for "
                f"a head of {head.NUM_CLASSES - 1} classes ({key}.NUM_CLASSES in its config)"
            )
        return trained

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @property
    def category_ids(self) -> list[int]:
        """The dataset's category id of each contiguous label 1..K (1..K when not stored)."""
        return list(self.meta.category_ids) or list(range(1, len(self.class_names) + 1))

    @property
    def label_to_category_id(self) -> dict[int, int]:
        return {label: c for label, c in enumerate(self.category_ids, start=1)}

    def config(self, config_file: str | None = None, opts: Sequence[str] = ()) -> CN:
        """The stored config, then `config_file` and `opts` merged over it."""
        return load_config(
            config_file, opts, text=self.meta.config, text_source=f"{self.path}[config]"
        )

    def build(
        self, cfg: CN | None = None, genotypes: dict[str, Genotype] | None = None
    ) -> nn.Module:
        """The detector in eval mode with the stored weights (`cfg`: default the stored one),
        its towers on `cfg`'s MODEL.COMPUTE_PATH (the fused path unless the run chose plain:
        the same outputs to float32 rounding, 2x faster for FAD heads at the demo's size).

        `genotypes` given by the user must match the stored ones.
        """
        if genotypes:
            check_genotypes_match(genotypes, self.genotypes, str(self.path))
        cfg = cfg if cfg is not None else self.config()
        model = build_detector(
            cfg, len(self.class_names), self.genotypes or None, load_weights=False
        )
        load_model_state(model, self.state, str(self.path))
        set_compute_path(model, cfg.MODEL.COMPUTE_PATH)
        return model.eval()
