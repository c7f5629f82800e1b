"""`fad export`: a weights file as an ONNX or TorchScript file, verified before it is written.

The detector is traced once, as `FixedSizeDetector` (one image of a fixed size, see
`fad.modeling.deploy`), with `torch.jit.trace`; the trace is the TorchScript file, or is converted
to ONNX (opset 18, ONNX's NonMaxSuppression) by the TorchScript-based exporter, the faster of
the two on this graph (docs/performance.md, Export). The fixed size makes every
shape but the number of candidates a constant, so the resize, padding and location grid are
exactly the eager detector's; a dynamic size would have to redo the resize's rounding in the graph.

The file is built in memory, read back through `ExportedDetector` (onnxruntime for ONNX) and run
on sample images next to the PyTorch detector; only when every image gives the same detections
is it written, with `FILE.json` beside it. Nothing is written otherwise. The two files are
written to temporaries first (both complete and checked), then renamed into place, the json
first: a kill between the renames leaves a json whose `model_sha256` does not match the model,
which readers warn about (`fad.engine.export_format.check_sidecar`). Temporary files of a killed
export are removed by the next export to the same file.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from fad.data.image_io import read_image, to_tensor
from fad.data.shapes import render_sample
from fad.engine.export_format import (
    FORMATS,
    INPUT_NAME,
    META_KEY,
    OUTPUT_NAMES,
    ExportedDetector,
    ExportMeta,
    first_line,
    sidecar_text,
    torchscript_extra_files,
)
from fad.engine.trained_model import TrainedModel
from fad.errors import FadError
from fad.modeling.deploy import CategoryDetector, FixedSizeDetector
from fad.modeling.speed import set_compute_path
from fad.runtime.atomic import (
    atomic_write_files,
    check_writable_folder,
    remove_stale_temporaries,
)
from fad.runtime.limits import MAX_INPUT_SIDE
from fad.runtime.version import __version__

log = logging.getLogger("fad")
OPSET = 18
BOX_TOLERANCE = 1e-3  # px, relative to the coordinate (absolute below 1 px)
SCORE_TOLERANCE = 1e-4
SIDE_RANGE = (32, MAX_INPUT_SIDE)  # px, the sides of an export size (`--size`)


@dataclass(frozen=True)
class ExportReport:
    """What `export_detector` wrote and what its check compared."""

    path: Path
    meta_path: Path
    seconds: float
    file_bytes: int
    images: int
    detections: int
    max_box_error: float
    max_score_error: float


def check_destination(weights: Path, out: Path, fmt: str) -> None:
    """Refuse, before any work, what export could not write or should not overwrite."""
    if fmt not in FORMATS:
        raise FadError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx" and out.suffix.lower() != ".onnx":
        raise FadError(f"--out {out}: an ONNX file must end in .onnx (fad predict goes by it)")
    if fmt != "onnx" and out.suffix.lower() == ".onnx":
        raise FadError(f"--out {out}: a {fmt} file must not end in .onnx")
    if out.exists() and weights.exists() and out.resolve() == weights.resolve():
        raise FadError(f"--out {out} is the weights file itself; choose another name")
    if out.is_dir():
        raise FadError(f"--out {out} is a folder; give a file name")
    check_writable_folder(out.parent, "the folder of --out")
    missing = [m for m in ("onnx", "onnxruntime") if fmt == "onnx" and not find_spec(m)]
    if missing:
        raise FadError(
            f"exporting to ONNX needs {' and '.join(missing)}: pip install 'fad[export]'"
        )


def sample_images(
    size: tuple[int, int], paths: Sequence[Path] = (), count: int = 2
) -> list[Tensor]:
    """Images of `size` to check an export on: `paths` resized, else rendered shapes scenes,
    plus a plain grey image (which usually gives no detection)."""
    height, width = size
    if paths:
        pictures = [read_image(p) for p in paths]
    else:
        pictures = [Image.fromarray(render_sample(0, "val", i).image) for i in range(count)]
    images = [to_tensor(p.resize((width, height), Image.BILINEAR)) for p in pictures]
    return [*images, torch.full((3, height, width), 0.5)]


def trace(module: torch.nn.Module, image: Tensor) -> torch.jit.ScriptModule:
    """`torch.jit.trace` of the fixed-size detector (its tracer warnings are what the check is for)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return torch.jit.trace(module, (image,), check_trace=False)


def to_bytes(traced: torch.jit.ScriptModule, image: Tensor, meta: ExportMeta) -> bytes:
    """The file's contents: the TorchScript archive, or the ONNX model with `meta` inside."""
    buffer = io.BytesIO()
    if meta.format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated
            torch.jit.save(traced, buffer, _extra_files=torchscript_extra_files(meta))
        return buffer.getvalue()
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            traced,
            (image,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
        )
    model = onnx.load_model_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, {META_KEY: meta.to_json()})
    return model.SerializeToString()


def compare(expected: dict[str, Tensor], got: tuple[Tensor, Tensor, Tensor]) -> tuple[float, float]:
    """(max box error, max score error) of matched detections; a FadError when they differ.

    Detections are matched one to one (same label, boxes and scores within the tolerances), so
    near-ties that NMS orders differently still match; the counts must be equal.
    """
    boxes, scores, labels = (t.float() if t.is_floating_point() else t for t in got)
    if len(boxes) != len(expected["boxes"]):
        raise FadError(f"{len(boxes)} detections instead of {len(expected['boxes'])}")
    box_error = (expected["boxes"][:, None] - boxes[None]).abs()
    limit = BOX_TOLERANCE * expected["boxes"].abs().clamp(min=1.0)[:, None]
    score_error = (expected["scores"][:, None] - scores[None]).abs()
    fits = (box_error <= limit).all(-1) & (score_error <= SCORE_TOLERANCE)
    fits &= expected["labels"][:, None] == labels[None]
    free = torch.ones(len(boxes), dtype=torch.bool)
    worst_box = worst_score = 0.0
    for row in expected["scores"].argsort(descending=True).tolist():
        candidates = (fits[row] & free).nonzero().flatten()
        if not len(candidates):
            box = expected["boxes"][row].tolist()
            raise FadError(
                f"no match for the detection {box} of label {int(expected['labels'][row])}"
            )
        col = int(candidates[0])
        free[col] = False
        worst_box = max(worst_box, float(box_error[row, col].max()))
        worst_score = max(worst_score, float(score_error[row, col]))
    return worst_box, worst_score


def export_detector(
    weights: str | Path,
    fmt: str,
    out: str | Path,
    size: tuple[int, int] | None = None,
    check_images: Sequence[Path] = (),
) -> ExportReport:
    """Export `weights` to `out` as `fmt` ('onnx' or 'torchscript') for images of `size` (H, W;
    default the config's MIN_SIZE_TEST x MAX_SIZE_TEST), verified on sample images first."""
    start = time.perf_counter()
    weights, out = Path(weights), Path(out)
    check_destination(weights, out, fmt)
    trained = TrainedModel.read(weights)
    cfg = trained.config()
    if cfg.MODEL.RETINANET_ON:
        raise FadError(
            f"{weights} is a RetinaNet (MODEL.RETINANET_ON): fad export writes FCOS detectors "
            "only so far; use the weights file with fad predict or fad.load"
        )
    size = size or (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    samples = sample_images(size, check_images)
    detector = trained.build(cfg)
    set_compute_path(detector, "plain")  # a trace of the canvas would fix its layout to one size
    meta = ExportMeta(
        format=fmt,
        size=size,
        class_names=tuple(trained.class_names),
        category_ids=tuple(trained.category_ids),
        pixel_mean=tuple(cfg.INPUT.PIXEL_MEAN),
        pixel_std=tuple(cfg.INPUT.PIXEL_STD),
        to_bgr255=bool(cfg.INPUT.TO_BGR255),
        genotypes={role: str(g) for role, g in trained.genotypes.items()},
        fad_version=__version__,
    )
    try:
        traced = trace(FixedSizeDetector(detector, meta.category_ids, size), samples[0])
        data = to_bytes(traced, samples[0], meta)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FadError(f"cannot export {weights} to {fmt}: {first_line(exc)}") from None
    exported = ExportedDetector.from_bytes(data, fmt, f"the {fmt} export of {weights}")
    reference = CategoryDetector(detector, meta.class_names, meta.category_ids)
    worst, count = [0.0, 0.0], 0
    for index, image in enumerate(samples):
        expected = reference([image])[0]
        try:
            errors = compare(expected, exported.run(image))
        except FadError as exc:
            raise FadError(
                f"the {fmt} export of {weights} differs from the PyTorch detector on sample "
                f"image {index}: {exc}; nothing written to {out}"
            ) from None
        worst = [max(w, e) for w, e in zip(worst, errors)]
        count += len(expected["boxes"])
    if not count:
        log.warning("the sample images gave no detections: the check compared only empty outputs")
    meta_path = out.with_name(out.name + ".json")
    for stale in remove_stale_temporaries(out.parent, {out.name, meta_path.name}):
        log.info("removed %s, left by an interrupted export", stale)
    atomic_write_files([(meta_path, sidecar_text(meta, data).encode("utf-8")), (out, data)])
    seconds = time.perf_counter() - start
    return ExportReport(out, meta_path, seconds, len(data), len(samples), count, *worst)
