"""RetinaNet under torchrun on CPU (gloo): 2-process training, and 2-process evaluation gives the
detections and the AP of 1 process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_distributed_train_eval import _ap, _torchrun

from fad.runtime.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "retinanet_R_18_FPN.yaml"


def test_two_process_training_and_evaluation_agree_with_one(tiny_opts, tmp_path):
    out = tmp_path / "out"
    common = ["--config-file", str(CONFIG), *tiny_opts]
    done = _torchrun(["train", *common, "SOLVER.MAX_ITER", "2", "--skip-test"], 2)
    assert done.returncode == 0, done.stderr[-3000:]
    weights = out / "model_final.pth"
    assert load_checkpoint(weights)["iteration"] == 2
    evaluate = ["eval", *common, "MODEL.WEIGHT", str(weights)]
    evaluate += ["MODEL.RETINANET.INFERENCE_TH", "0.0"]  # detections from an untrained head
    # one image per batch on every process: the same padding, so the same detections
    one = _torchrun([*evaluate, "TEST.IMS_PER_BATCH", "1", "OUTPUT_DIR", str(tmp_path / "1")], 1)
    two = _torchrun([*evaluate, "TEST.IMS_PER_BATCH", "2", "OUTPUT_DIR", str(tmp_path / "2")], 2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert _ap(one.stdout) == _ap(two.stdout)
    assert two.stdout.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 1
    found = [_detections(tmp_path / n) for n in ("1", "2")]
    assert len(found[0]) == 6 * 100 and found[0] == found[1]  # 100 per image, every image once


def _detections(out: Path) -> list[tuple]:
    """The detections of an evaluation's bbox.json, sorted, scores and boxes to 4 decimals."""
    (path,) = out.glob("inference/*/bbox.json")
    rows = json.loads(path.read_text())
    return sorted(
        (r["image_id"], r["category_id"], round(r["score"], 4), *(round(v, 4) for v in r["bbox"]))
        for r in rows
    )
