"""`fad predict`: a trained detector on images; pictures with the detections and one json.

One unreadable image never costs the others their results: it is reported and skipped (counted
in `predictions.json` and in the summary), every readable image gets its picture and its
entries, and every file is written atomically (its size checked before the rename). So is an
image too elongated for the detector's resize (`fad.data.transforms.degenerate_reason`).
`detect_images` runs any detector callable over image paths: a weights file's detector or an
exported `.onnx` file's (`check_detector`).

Nothing is ever written over an input: `--out` may not be the images' folder, each picture is
named `<stem>.jpg` (`<name>.jpg` for images that share a stem, `a.jpg` and `a.png`), and a
picture whose path would be an input's is refused before any work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from fad.data.image_io import read_image, to_tensor
from fad.data.transforms import degenerate_reason
from fad.engine.exported import ExportedDetector
from fad.engine.run import inference_resize
from fad.engine.trained import TrainedModel
from fad.errors import FadError
from fad.evaluation.results import detections_to_coco_results, write_predictions_json
from fad.runtime.atomic import atomic_write, check_writable_folder
from fad.viz.draw import draw_detections

log = logging.getLogger("fad")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# images (FloatTensor[3, H, W] in [0, 1]) -> per image {"boxes" [N, 4] xyxy, "scores", "labels"}
Detector = Callable[[list[Tensor]], list[dict[str, Tensor]]]


@dataclass
class ImageOutcome:
    """One image's result: its picture and detections (on the CPU), or why it could not be read."""

    path: Path
    picture: Image.Image | None = None
    detections: dict[str, Tensor] | None = None
    error: str = ""


def list_images(source: Path) -> list[Path]:
    """`source` itself, or the images in the folder `source` (sorted, not recursive). Entries
    that are not regular files (a named pipe called `x.jpg`) are listed too: reading them is
    refused, so they are reported and skipped like unreadable images."""
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FadError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        return images
    if source.exists():
        return [source]
    raise FadError(f"image or folder not found: {source}")


def picture_paths(paths: Sequence[Path], out: Path) -> list[Path]:
    """Where the drawn copy of each image goes: `out/<stem>.jpg`, or `out/<name>.jpg` for the
    images that share a stem. A FadError when `out` is the images' folder or a picture would
    land on an input or on another picture: nothing may be written over an input."""
    folders = {p.parent.resolve() for p in paths}
    if out.resolve() in folders:
        raise FadError(
            f"--out {out} is the folder of the images: their drawn copies would replace them; "
            "choose another folder"
        )
    stems = [p.stem for p in paths]
    names = [f"{p.stem if stems.count(p.stem) == 1 else p.name}.jpg" for p in paths]
    inputs = {p.resolve() for p in paths}
    seen: dict[Path, Path] = {}
    pictures = []
    for path, name in zip(paths, names):
        picture = out / name
        if picture.resolve() in inputs or picture in seen:
            other = seen.get(picture, picture)
            raise FadError(
                f"--out {out}: the picture of {path} would be written over {other}; rename one"
            )
        seen[picture] = path
        pictures.append(picture)
    return pictures


def check_score_threshold(value: float) -> float:
    if not 0 <= value <= 1:  # NaN fails both comparisons
        raise FadError(f"--score-threshold {value}: must be a number in [0, 1]")
    return value


OpenedDetector = tuple[Detector, list[str], list[int], torch.device, tuple[int, int] | None]


def check_detector(
    checkpoint: str, config_file: str | None, opts: Sequence[str]
) -> Callable[[], OpenedDetector]:
    """Check a weights file (its meta and resolved config) or an exported `.onnx` file, and
    return what opens it: (detector giving labels 1..K, class names, category ids, device, the
    resize (min_size, max_size) it applies, None for an exported file, which stretches images
    to its size). The checks are cheap; the detector is built only when the returned function
    is called."""
    if Path(checkpoint).suffix.lower() == ".onnx":
        if config_file or opts:
            raise FadError(f"{checkpoint} is an exported model: config overrides do not apply")
        exported = ExportedDetector.open(checkpoint)
        model = partial(exported, category_ids=False)
        cpu = torch.device("cpu")
        return lambda: (model, exported.class_names, exported.category_ids, cpu, None)
    trained = TrainedModel.read(checkpoint)
    cfg = trained.config(config_file, opts)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda") else "cpu"
    )
    return lambda: (
        trained.build(cfg).to(device),
        trained.class_names,
        trained.category_ids,
        device,
        inference_resize(cfg),
    )


def _read(path: Path, resize: tuple[int, int] | None) -> ImageOutcome:
    try:
        picture = read_image(path)
    except FadError as exc:
        return ImageOutcome(path, error=str(exc))
    reason = degenerate_reason(*picture.size, resize)
    if reason:
        return ImageOutcome(path, error=f"degenerate image {path}: {reason}")
    return ImageOutcome(path, picture=picture)


def detect_images(
    detector: Detector,
    paths: Sequence[Path],
    *,
    batch_size: int = 4,
    resize: tuple[int, int] | None = None,
) -> Iterator[ImageOutcome]:
    """Run `detector` on the images at `paths`, a batch of up to `batch_size` at a time; yield
    one outcome per path, in order. An unreadable image, or one too elongated for the
    detector's `resize` (min_size, max_size), is an outcome with `error` set, and the detector
    never sees it."""
    for start in range(0, len(paths), batch_size):
        outcomes = [_read(path, resize) for path in paths[start : start + batch_size]]
        readable = [o for o in outcomes if not o.error]
        if readable:
            with torch.no_grad():
                found = detector([to_tensor(o.picture) for o in readable])
            for outcome, det in zip(readable, found, strict=True):
                outcome.detections = {k: v.detach().cpu() for k, v in det.items()}
        yield from outcomes


def predict(
    checkpoint: str,
    source: str,
    out_dir: str,
    *,
    score_threshold: float = 0.3,
    config_file: str | None = None,
    opts: Sequence[str] = (),
    batch_size: int = 4,
) -> dict:
    """Detect objects in `source`; write a picture per image (`picture_paths`) and
    `predictions.json` in `out_dir`.

    The config and class names come from the weights file; `config_file` / `opts` override it.
    `checkpoint` may also be a `.onnx` file written by `fad export` (run in onnxruntime).
    Everything is checked (threshold, weights, config, images, `out_dir` writable and apart
    from the inputs) before anything is written. Returns what predictions.json holds (see
    `write_predictions_json`); a FadError when no image could be read (after writing the json
    that lists them).
    """
    check_score_threshold(score_threshold)
    open_detector = check_detector(checkpoint, config_file, opts)
    paths = list_images(Path(source))
    out = Path(out_dir)
    check_writable_folder(out, "--out")
    pictures = dict(zip(paths, picture_paths(paths, out)))
    model, class_names, category_ids, device, resize = open_detector()
    label_to_category_id = dict(enumerate(category_ids, start=1))
    names = dict(zip(category_ids, class_names))
    records: list[dict] = []
    skipped: list[dict[str, str]] = []

    def detector(images: list[Tensor]) -> list[dict[str, Tensor]]:
        return model([image.to(device) for image in images])

    outcomes = detect_images(detector, paths, batch_size=batch_size, resize=resize)
    for index, outcome in enumerate(outcomes):
        if outcome.error:
            log.warning("skipping %s", outcome.error)
            skipped.append({"file_name": str(outcome.path), "error": outcome.error})
            continue
        det = outcome.detections
        _draw(outcome, class_names, score_threshold, pictures[outcome.path])
        found = detections_to_coco_results(
            index, det["boxes"], det["scores"], det["labels"], label_to_category_id
        )
        file_name = str(outcome.path)
        records += [
            {**r, "file_name": file_name, "category_name": names[r["category_id"]]} for r in found
        ]
        kept = sum(1 for s in det["scores"].tolist() if s >= score_threshold)
        log.info("%s: %d detections >= %.2f", outcome.path.name, kept, score_threshold)
    return _finish(out, records, paths, skipped)


def _draw(outcome: ImageOutcome, class_names: list[str], threshold: float, path: Path) -> None:
    det = outcome.detections
    drawn = draw_detections(
        outcome.picture,
        det["boxes"],
        det["labels"],
        det["scores"],
        class_names,
        score_threshold=threshold,
    )
    atomic_write(path, partial(drawn.save, format="JPEG", quality=92))


def _finish(out: Path, records: list[dict], paths: list[Path], skipped: list[dict]) -> dict:
    result = write_predictions_json(
        out / "predictions.json", records, images=len(paths), skipped=skipped
    )
    log.info(
        "%d of %d images predicted, %d skipped (unreadable or degenerate); wrote %s",
        result["predicted"],
        len(paths),
        len(skipped),
        out / "predictions.json",
    )
    if not result["predicted"]:
        raise FadError(f"none of the {len(paths)} images could be read, e.g. {skipped[0]['error']}")
    return result
