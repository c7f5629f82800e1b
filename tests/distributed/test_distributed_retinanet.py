"""RetinaNet under torchrun on CPU (gloo): 2-process training, and 2-process evaluation gives the
AP of 1 process."""

from __future__ import annotations

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
    evaluate = ["eval", *common, "MODEL.WEIGHT", str(weights), "TEST.IMS_PER_BATCH", "2"]
    evaluate += ["MODEL.RETINANET.INFERENCE_TH", "0.0"]  # detections from an untrained head
    one = _torchrun(evaluate, 1)
    two = _torchrun(evaluate, 2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert _ap(one.stdout) == _ap(two.stdout)
    assert two.stdout.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 1
