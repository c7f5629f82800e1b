"""`fad predict`: a trained detector on images; pictures with the detections and one json."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from fad.config import load_config
from fad.data.image_io import read_image, to_tensor
from fad.engine.atomic import atomic_write_text
from fad.engine.checkpoint import load_checkpoint
from fad.engine.inference_model import load_trained_model
from fad.errors import FadError
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
    weights: str,
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
    ckpt_meta = load_checkpoint(Path(weights)).get("meta", {})
    cfg = load_config(
        config_file, opts, text=ckpt_meta.get("config", ""), text_source=f"{weights}[config]"
    )
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda") else "cpu"
    )
    model, class_names = load_trained_model(cfg, weights)
    model.to(device)
    category_ids = ckpt_meta.get("category_ids") or list(range(1, len(class_names) + 1))
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
            for box, label, score in zip(
                det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist()
            ):
                x0, y0, x1, y1 = box
                records.append(
                    {
                        "image_id": start + offset,
                        "file_name": str(path),
                        "category_id": int(category_ids[label - 1]),
                        "category_name": class_names[label - 1],
                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                        "score": round(float(score), 5),
                    }
                )
            kept = sum(1 for s in det["scores"].tolist() if s >= score_threshold)
            log.info("%s: %d detections >= %.2f", path.name, kept, score_threshold)
    atomic_write_text(out / "predictions.json", json.dumps(records, indent=1))
    log.info("wrote %d pictures and %s", len(images), out / "predictions.json")
    return records
