"""Inference over DATASETS.TEST and COCO AP (VOC mAP too for VOC sets), sharded across processes.

Each rank infers on its shard; detections are gathered to rank 0, which checks that every image
was evaluated exactly once and computes AP once. Images too elongated for the model's resize
(`fad.data.transforms.degenerate_reason`) are skipped, logged and counted, and left out of the
scores.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn
from torch.utils.data import Subset
from yacs.config import CfgNode as CN

from fad.data.build import build_datasets, build_test_loader
from fad.data.robust import degenerate_images
from fad.engine.run import RunContext, inference_resize
from fad.errors import FadError
from fad.evaluation import (
    CocoEvalResult,
    detections_to_coco_results,
    evaluate_coco,
    write_results_json,
)
from fad.runtime.atomic import atomic_write_text
from fad.runtime.distributed import all_gather_objects, synchronize

log = logging.getLogger("fad")


def folder_name(dataset_name: str) -> str:
    """A file-system-safe folder name for a dataset ('IMG_DIR@ANN.json' -> 'ANN')."""
    if "@" in dataset_name:
        dataset_name = Path(dataset_name.split("@", 1)[1]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_name).strip("._") or "dataset"


@torch.no_grad()
def infer(model: nn.Module, loader, device: torch.device) -> dict[int, dict[str, torch.Tensor]]:
    """image_id -> detections (`boxes` xyxy in original pixels, `scores`, `labels`), on CPU."""
    model.eval()
    out: dict[int, dict[str, torch.Tensor]] = {}
    for images, targets in loader:
        detections = model([img.to(device) for img in images])
        for target, det in zip(targets, detections):
            out[int(target["image_id"])] = {k: v.detach().cpu() for k, v in det.items()}
    return out


def gather_detections(
    local: dict[int, dict[str, torch.Tensor]], expected_ids: list[int]
) -> dict[int, dict[str, torch.Tensor]] | None:
    """All ranks' detections on rank 0 (None elsewhere); every image exactly once."""
    parts = all_gather_objects(local)
    merged: dict[int, dict[str, torch.Tensor]] = {}
    for part in parts:
        for image_id, det in part.items():
            if image_id in merged:
                raise FadError(f"image {image_id} was evaluated twice")
            merged[image_id] = det
    missing = set(expected_ids) - set(merged)
    if missing:
        raise FadError(f"{len(missing)} images were not evaluated, e.g. {sorted(missing)[:5]}")
    return merged


def dataset_results(dataset, detections: dict[int, dict[str, Tensor]]) -> list[dict]:
    """COCO result dicts of ``detections`` (image id -> boxes, scores, labels 1..K), in image
    order, with the dataset's category ids."""
    results = []
    for image_id in sorted(detections):
        det = detections[image_id]
        results += detections_to_coco_results(
            image_id, det["boxes"], det["scores"], det["labels"], dataset.label_to_category_id
        )
    return results


def score_dataset(
    dataset, results: list[dict], stream: TextIO | None = None, image_ids: list[int] | None = None
) -> CocoEvalResult:
    """pycocotools' evaluation of ``results`` on the images ``image_ids`` (default every image)
    of ``dataset`` (its summary and per-class table printed to ``stream``, if any)."""
    return evaluate_coco(
        dataset.coco,
        results,
        class_names=dataset.class_names,
        label_to_category_id=dataset.label_to_category_id,
        image_ids=list(dataset.image_ids if image_ids is None else image_ids),
        stream=stream,
    )


def usable_images(dataset, resize: tuple[int, int] | None) -> list[int]:
    """The indices of ``dataset``'s images the model can take; degenerate ones logged."""
    skipped = degenerate_images([dataset], resize)
    for reason in list(skipped.values())[:20]:
        log.warning("evaluation skips %s", reason)
    if skipped:
        log.warning(
            "%d degenerate image(s) of %s skipped and left out of the scores",
            len(skipped),
            dataset.source,
        )
    return [i for i in range(len(dataset)) if i not in skipped]


def evaluate_dataset(
    model: nn.Module,
    dataset,
    name: str,
    ctx: RunContext,
    ims_per_batch: int,
    num_workers: int,
    resize: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """Infer on every usable image of ``dataset`` (see `usable_images`), write bbox.json and
    coco_eval.txt, and return the report on rank 0 (None elsewhere)."""
    keep = usable_images(dataset, resize)
    loader = build_test_loader(
        dataset if len(keep) == len(dataset) else Subset(dataset, keep),
        images_per_batch=max(1, ims_per_batch // ctx.world_size),
        num_workers=num_workers,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    t0 = time.perf_counter()
    local = infer(model, loader, ctx.device)
    seconds = time.perf_counter() - t0
    ids = [dataset.image_ids[i] for i in keep]
    merged = gather_detections(local, ids)
    synchronize()
    if ctx.rank != 0:
        return None
    results = dataset_results(dataset, merged)
    folder = ctx.output_dir / "inference" / folder_name(name)
    write_results_json(results, folder / "bbox.json")
    log.info(
        "%s: %d images, %d detections, inference %.1f s -> %s",
        name,
        len(merged),
        len(results),
        seconds,
        folder / "bbox.json",
    )
    print(f"\nCOCO AP on {name} ({len(merged)} images):")
    coco = score_dataset(dataset, results, stream=sys.stdout, image_ids=ids)
    atomic_write_text(folder / "coco_eval.txt", coco.text)
    report: dict[str, Any] = {
        "coco": coco.stats,
        "per_class": coco.per_class,
        "seconds": seconds,
        "images": len(merged),
        "skipped_images": len(dataset) - len(keep),
    }
    if hasattr(dataset, "get_groundtruth"):
        from fad.evaluation import evaluate_voc

        gts = [dataset.get_groundtruth(i) for i in keep]
        dets = [merged[i] for i in ids]
        report["voc"] = evaluate_voc(gts, dets, dataset.class_names, stream=sys.stdout).mAP
    return report


def evaluate_model(
    cfg: CN, model: nn.Module, ctx: RunContext, class_names: list[str]
) -> dict[str, Any]:
    """Evaluate on every DATASETS.TEST set; returns {name: report} on rank 0 ({} elsewhere)."""
    reports: dict[str, Any] = {}
    for name in cfg.DATASETS.TEST:
        dataset = build_datasets([name], train=False)[0]
        log.info("data report: %s", dataset.report_text())
        if list(dataset.class_names) != list(class_names):
            raise FadError(
                f"test set {name} has classes {list(dataset.class_names)[:5]}... but the model was "
                f"trained on {list(class_names)[:5]}..."
            )
        report = evaluate_dataset(
            model,
            dataset,
            name,
            ctx,
            cfg.TEST.IMS_PER_BATCH,
            cfg.DATALOADER.NUM_WORKERS,
            inference_resize(cfg),
        )
        if report is not None:
            reports[name] = report
    return reports
