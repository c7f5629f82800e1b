"""`fad predict`: a trained detector on images; pictures with the detections and one json."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from fad.data.image_io import read_image, to_tensor
from fad.engine.trained import TrainedModel
from fad.errors import FadError
from fad.evaluation.results import detections_to_coco_results
from fad.runtime.atomic import atomic_write_text
from fad.viz.draw import draw_detections

log = logging.getLogger("fad")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(source: Path) -> list[Path]:
    """`source` itself, or the images in the folder `source` (sorted, not recursive)."""
    if source.is_file():
        return [source]
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FadError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        return images
    raise FadError(f"image or folder not found: {source}")


def predict(
    checkpoint: str,
    source: str,
    out_dir: str,
    *,
    score_threshold: float = 0.3,
    config_file: str | None = None,
    opts: Sequence[str] = (),
    batch_size: int = 4,
) -> list[dict]:
    """Detect objects in `source`; write `<stem>.jpg` pictures and `predictions.json` in `out_dir`.

    The config and class names come from the weights file; `config_file` / `opts` override it.
    Returns the COCO-style records written (plus `file_name` and `category_name`).
    """
    trained = TrainedModel.read(checkpoint)
    cfg = trained.config(config_file, opts)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda") else "cpu"
    )
    model = trained.build(cfg).to(device)
    class_names = trained.class_names
    names = dict(zip(trained.category_ids, class_names))
    images = list_images(Path(source))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    for start in range(0, len(images), batch_size):
        paths = images[start : start + batch_size]
        pictures = [read_image(p) for p in paths]
        with torch.no_grad():
            detections = model([to_tensor(p).to(device) for p in pictures])
        for offset, (path, picture, det) in enumerate(zip(paths, pictures, detections)):
            det = {k: v.cpu() for k, v in det.items()}
            drawn = draw_detections(
                picture,
                det["boxes"],
                det["labels"],
                det["scores"],
                class_names,
                score_threshold=score_threshold,
            )
            drawn.save(out / f"{path.stem}.jpg", quality=92)
            found = detections_to_coco_results(
                start + offset,
                det["boxes"],
                det["scores"],
                det["labels"],
                trained.label_to_category_id,
            )
            records += [
                {**r, "file_name": str(path), "category_name": names[r["category_id"]]}
                for r in found
            ]
            kept = sum(1 for s in det["scores"].tolist() if s >= score_threshold)
            log.info("%s: %d detections >= %.2f", path.name, kept, score_threshold)
    atomic_write_text(out / "predictions.json", json.dumps(records, indent=1))
    log.info("wrote %d pictures and %s", len(images), out / "predictions.json")
    return records
