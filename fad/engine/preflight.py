"""The preflight of `fad train`, `fad search` and `fad eval`: everything that can be checked
without loading the data is checked before anything is written.

The config is already validated when it is loaded (types, ranges, finite numbers, the seed);
this adds what depends on the file system: the dataset names resolve in the catalog (without
generating or reading a set), a local pretrained file exists, and OUTPUT_DIR (and the evaluation
folders in it) can be written. `fad predict` checks its weights, images and `--out` the same way
(`fad.engine.predict`); resuming checks its checkpoints (`fad.runtime.checkpoint.find_resume_point`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from yacs.config import CfgNode as CN

from fad.data.catalog import check_name
from fad.engine.evaluate import folder_name
from fad.errors import FadError
from fad.modeling.pretrained import check_pretrained
from fad.runtime.atomic import check_writable_folder


def check_run(cfg: CN, *, train: bool, test: bool) -> None:
    """Raise a one-line FadError before a run writes anything.

    Args:
        train: the run trains (DATASETS.TRAIN must name at least one set; MODEL.WEIGHT is the
            pretrained backbone).
        test: the run evaluates on DATASETS.TEST (each name must resolve; may be empty).
    """
    if train:
        _check_names("DATASETS.TRAIN", cfg.DATASETS.TRAIN, "name at least one training set")
        check_pretrained(cfg.MODEL.WEIGHT)
    if test:
        _check_names("DATASETS.TEST", cfg.DATASETS.TEST)
    out = Path(cfg.OUTPUT_DIR)
    check_writable_folder(out, "OUTPUT_DIR")
    if test:
        for name in cfg.DATASETS.TEST:
            folder = out / "inference" / folder_name(name)
            check_writable_folder(folder, f"the evaluation folder of {name}")


def check_evaluation(cfg: CN) -> None:
    """`fad eval`'s preflight: DATASETS.TEST must name something to evaluate, then `check_run`."""
    if not cfg.DATASETS.TEST:
        raise FadError(
            "DATASETS.TEST is empty: fad eval has nothing to evaluate; name the test sets, "
            "e.g. DATASETS.TEST \"('coco_2017_val',)\""
        )
    check_run(cfg, train=False, test=True)


def _check_names(key: str, names: Sequence[str], required: str = "") -> None:
    if required and not names:
        raise FadError(f"{key} is empty: {required}")
    for name in names:
        try:
            check_name(name)
        except FadError as exc:
            raise FadError(f"{key}: {exc}") from None
