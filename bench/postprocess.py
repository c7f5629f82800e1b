"""COCO AP of one trained FCOS weights file under two candidate filters, side by side.

The original FCOS keeps the (location, class) pairs whose class probability exceeds
INFERENCE_TH, then scores them sqrt(probability x centerness) (fad's `FCOSDetector`);
torchvision's FCOS thresholds sqrt(probability x centerness) itself. Same weights, same images,
same NMS: the difference is the filter alone (docs/fidelity.md, item 2).

    python bench/postprocess.py WEIGHTS [--dataset shapes_val] [--threshold 0.05]
"""

from __future__ import annotations

import argparse
import types

import torch
from torchvision.models.detection.fcos import FCOS

from fad.data.build import build_datasets, build_test_loader
from fad.engine.evaluate import dataset_results, infer, score_dataset
from fad.engine.trained_model import TrainedModel


def torchvision_filter(self, head_outputs, anchors, image_shapes):
    """torchvision's FCOS candidate selection on fad's detector (labels made 1..K)."""
    detections = FCOS.postprocess_detections(self, head_outputs, anchors, image_shapes)
    for detection in detections:
        detection["labels"] = detection["labels"] + 1
    return detections


def coco_ap(model, dataset, loader) -> dict[str, float]:
    results = dataset_results(dataset, infer(model, loader, torch.device("cpu")))
    return {**score_dataset(dataset, results).stats, "detections": len(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--dataset", default="shapes_val")
    parser.add_argument("--threshold", type=float, default=None, help="INFERENCE_TH override")
    args = parser.parse_args()
    trained = TrainedModel.read(args.weights)
    opts = [] if args.threshold is None else ["MODEL.FCOS.INFERENCE_TH", str(args.threshold)]
    model = trained.build(trained.config(opts=opts))
    dataset = build_datasets([args.dataset], train=False)[0]
    loader = build_test_loader(dataset, images_per_batch=8)
    rows = {"original (fad)": coco_ap(model, dataset, loader)}
    model.postprocess_detections = types.MethodType(torchvision_filter, model)
    rows["torchvision"] = coco_ap(model, dataset, loader)
    print(f"{args.weights} on {args.dataset}, INFERENCE_TH {model.score_thresh}")
    print("| candidate filter | AP | AP50 | AP75 | detections |\n|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['AP']:.4f} | {row['AP50']:.4f} | {row['AP75']:.4f} | {row['detections']} |"
        )


if __name__ == "__main__":
    main()
