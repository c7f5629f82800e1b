"""`fad search` of RetinaNet's towers on a tiny shapes set: exact resume after a crash, and the
genotype.log it writes trains a FAD RetinaNet through `fad train --genotype-file`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_search_e2e import TINY, _assert_same_search, _fail_at

from fad.cli import main
from fad.config import load_config
from fad.runtime.checkpoint import find_resume_checkpoint
from fad.search import searcher
from fad.search_space.genotype import read_genotype_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "shapes"
SEARCH = CONFIGS / "search_fad_retinanet_R_18_FPN.yaml"


def _search(tiny_shapes, out: Path) -> dict:
    opts = [*TINY, "DATASETS.TRAIN", f"('{tiny_shapes['train']}',)", "OUTPUT_DIR", str(out)]
    return searcher.run_search(load_config(str(SEARCH), opts))


@pytest.fixture(scope="module")
def reference(tiny_shapes, tmp_path_factory) -> Path:
    """An uninterrupted 3-iteration search of RetinaNet's towers."""
    out = tmp_path_factory.mktemp("retinanet_reference") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _search(tiny_shapes, out)
    finally:
        torch.set_num_threads(threads)
    return out


def test_crash_after_a_checkpoint_then_resume_is_bit_identical(
    tiny_shapes, tmp_path, reference, monkeypatch
):
    ckpt = torch.load(reference / "model_final.pth", weights_only=True)
    assert any(k.startswith("head.cls_tower.alphas.") for k in ckpt["model"])
    assert ckpt["model"]["head.cls_logits.weight"].shape[0] == 9 * 5  # 9 anchors x 5 classes
    out = tmp_path / "out"
    _fail_at(monkeypatch, 2, RuntimeError)
    with pytest.raises(RuntimeError):
        _search(tiny_shapes, out)
    assert find_resume_checkpoint(out)[1]["iteration"] == 2
    monkeypatch.undo()
    report = _search(tiny_shapes, out)
    assert report["start_iteration"] == 2 and report["iterations_this_run"] == 1
    _assert_same_search(reference, out)


def test_the_searched_genotype_trains_a_fad_retinanet(tiny_shapes, tmp_path, reference):
    genotype = reference / "genotype.log"
    assert set(read_genotype_file(genotype)) == {"box", "cls"}
    out = tmp_path / "train"
    args = ["train", "--config-file", str(CONFIGS / "fad_retinanet_R_18_FPN.yaml")]
    args += ["--genotype-file", str(genotype), "--skip-test", *TINY]
    args += ["MODEL.FAD.NUM_CELLS_BOX", "1", "MODEL.FAD.NUM_CELLS_CLS", "1"]
    args += ["SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(out)]
    assert main([*args, "DATASETS.TRAIN", f"('{tiny_shapes['train']}',)"]) == 0
    ckpt = torch.load(out / "model_final.pth", weights_only=True)
    assert ckpt["meta"]["genotypes"] == {
        role: str(g) for role, g in read_genotype_file(genotype).items()
    }
    assert "head.box_tower.cells.0.nodes.0.0.0.weight" in ckpt["model"]
