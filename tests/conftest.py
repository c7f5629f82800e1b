"""Shared fixtures: a tiny shapes dataset generated once per test session, tiny configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# the tests' tiny set is of the hard level (five classes); the shipped configs are for the easy one
FIVE_CLASSES = ["MODEL.FCOS.NUM_CLASSES", "6", "MODEL.RETINANET.NUM_CLASSES", "6"]
TINY_OVERRIDES = [
    *FIVE_CLASSES,
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS",
    "64",
    "MODEL.FAD.NUM_CHANNELS_BOX",
    "32",
    "MODEL.FAD.NUM_CHANNELS_CLS",
    "32",
    "INPUT.MIN_SIZE_TRAIN",
    "(96,)",
    "INPUT.MAX_SIZE_TRAIN",
    "128",
    "INPUT.MIN_SIZE_TEST",
    "96",
    "INPUT.MAX_SIZE_TEST",
    "128",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.WARMUP_ITERS",
    "2",
    "TEST.IMS_PER_BATCH",
    "4",
    "DATALOADER.NUM_WORKERS",
    "0",
]


@pytest.fixture(autouse=True)
def _fad_logs_reach_caplog(monkeypatch):
    """`fad train` sets up the 'fad' logger without propagation; let pytest's caplog see it."""
    import logging

    monkeypatch.setattr(logging.getLogger("fad"), "propagate", True)


@pytest.fixture
def single_thread():
    """One torch thread: tiny models run faster so than with OpenMP threads fighting over busy
    cores (`pytestmark = pytest.mark.usefixtures("single_thread")` in a test module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> dict[str, str]:
    """A shapes set of 12 train / 6 val images of 96-128 px, of the hard level (five classes,
    small and occluded shapes); dataset names in '@' syntax."""
    from fad.data.shapes import generate_shapes

    root = tmp_path_factory.mktemp("tiny") / "shapes"
    generate_shapes(root, level="hard", seed=3, num_train=12, num_val=6, min_size=96, max_size=128)
    return {
        "root": str(root),
        "train": f"{root / 'train'}@{root / 'annotations' / 'instances_train.json'}",
        "val": f"{root / 'val'}@{root / 'annotations' / 'instances_val.json'}",
    }


@pytest.fixture
def tiny_opts(tiny_shapes, tmp_path) -> list[str]:
    """Overrides for a tiny, fast FCOS run on `tiny_shapes` writing into tmp_path/out."""
    return TINY_OVERRIDES + [
        "DATASETS.TRAIN",
        f"('{tiny_shapes['train']}',)",
        "DATASETS.TEST",
        f"('{tiny_shapes['val']}',)",
        "OUTPUT_DIR",
        str(tmp_path / "out"),
    ]


@pytest.fixture(scope="session")
def shapes_config(tmp_path_factory) -> Path:
    """The shipped stage-0 FCOS config, for the tests' five classes (`FIVE_CLASSES`).

    Its folder holds every shipped shapes config, rewritten the same way, so that tests can
    reach the search and FAD configs beside it.
    """
    shipped = Path(__file__).resolve().parents[1] / "configs" / "shapes"
    folder = tmp_path_factory.mktemp("config")
    for yaml_file in sorted(shipped.glob("*.yaml")):
        text = yaml_file.read_text(encoding="utf-8")
        (folder / yaml_file.name).write_text(
            re.sub(r"NUM_CLASSES: 4\b", "NUM_CLASSES: 6", text), encoding="utf-8"
        )
    path = folder / "fcos_imprv_R_18_FPN.yaml"
    assert "NUM_CLASSES: 6" in path.read_text(encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_trained(tiny_shapes, tmp_path_factory, shapes_config) -> Path:
    """model_final.pth of a 2-iteration standard FCOS run on `tiny_shapes` (shared, read-only)."""
    from fad.config import load_config
    from fad.engine.train import run_training as train

    out = tmp_path_factory.mktemp("trained")
    opts = TINY_OVERRIDES + [
        "DATASETS.TRAIN",
        f"('{tiny_shapes['train']}',)",
        "DATASETS.TEST",
        f"('{tiny_shapes['val']}',)",
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_ITER",
        "2",
        "MODEL.FCOS.INFERENCE_TH",
        "0.0",
    ]
    train(load_config(shapes_config, opts), skip_test=True)
    return out / "model_final.pth"
