"""Evaluation: COCO result records, COCO box AP (pycocotools) and Pascal VOC AP."""

from fad.evaluation.coco_eval import CocoEvalResult, evaluate_coco, summary_markdown
from fad.evaluation.results import (
    detections_to_coco_results,
    write_predictions_json,
    write_results_json,
)
from fad.evaluation.voc_eval import VocEvalResult, evaluate_voc

__all__ = [
    "CocoEvalResult",
    "VocEvalResult",
    "detections_to_coco_results",
    "evaluate_coco",
    "evaluate_voc",
    "summary_markdown",
    "write_predictions_json",
    "write_results_json",
]
