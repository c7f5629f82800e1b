"""An exported detector file (`fad export`): ONNX or TorchScript, and its metadata.

The graph takes one RGB image [3, H, W] in [0, 1] of the export size (H, W) and returns `boxes`
[N, 4] (xyxy, input pixels), `scores` [N] and `labels` [N] (the dataset's category ids). Its
metadata (`ExportMeta`) travels inside the file (ONNX `metadata_props["fad"]`, TorchScript extra
file `fad.json`) and beside it as `FILE.json`; the copy inside is the one read back. The copy
beside it also holds `model_sha256`, the digest of FILE: `fad export` renames the json into place
first and the model right after, so a json left by an interrupted export is told by its digest
(`check_sidecar`). `ExportedDetector` runs either format as `fad.load`'s model is called.

Everything read from such a file is checked: the metadata field by field (the input size within
`MAX_INPUT_SIDE`, as many unique class names as unique category ids), the graph's input and
output names, and every output's shape, type and values (labels among the category ids, finite
boxes and scores); anything else is a one-line FadError naming the file and the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.transform import resize_boxes

from fad.errors import FadError
from fad.runtime.limits import MAX_INPUT_SIDE, check_regular_file, shown

FORMATS = ("onnx", "torchscript")
META_KEY = "fad"  # ONNX metadata_props key
META_FILE = "fad.json"  # TorchScript extra file
OUTPUT_NAMES = ("boxes", "scores", "labels")
INPUT_NAME = "image"
log = logging.getLogger("fad")
Runner = Callable[[Tensor], tuple[Tensor, ...]]  # one image of the export size -> the outputs


@dataclass(frozen=True)
class ExportMeta:
    """What a user of an exported file needs besides the graph (input as `size` = (H, W))."""

    format: str
    size: tuple[int, int]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    to_bgr255: bool
    genotypes: dict[str, str] = field(default_factory=dict)
    fad_version: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["inputs"] = {INPUT_NAME: f"float32 [3, {self.size[0]}, {self.size[1]}], RGB in [0, 1]"}
        data["outputs"] = list(OUTPUT_NAMES)
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str) -> ExportMeta:
        """Parse the metadata of `source`; a missing or malformed field is a one-line FadError
        naming it."""
        try:
            data: Any = json.loads(text)
        except (ValueError, RecursionError):
            raise FadError(f"{source}: malformed fad metadata (not json)") from None
        if not isinstance(data, dict):
            raise FadError(f"{source}: malformed fad metadata (not a json object)")
        field_ = _MetaField(data, source)
        meta = cls(
            format=field_.choice("format", FORMATS),
            size=field_.size(),
            class_names=field_.texts("class_names"),
            category_ids=field_.ints("category_ids"),
            pixel_mean=field_.floats("pixel_mean", 3),
            pixel_std=field_.floats("pixel_std", 3),
            to_bgr255=field_.boolean("to_bgr255"),
            genotypes=field_.genotypes(),
            fad_version=str(data.get("fad_version", ""))[:40],
        )
        if len(meta.class_names) != len(meta.category_ids):
            raise FadError(f"{source}: fad metadata needs as many class_names as category_ids")
        if min(meta.pixel_std) <= 0:
            raise FadError(f"{source}: fad metadata field 'pixel_std' must be > 0")
        return meta


class _MetaField:
    """Reads one field of export metadata; a bad one is a FadError naming `source` and it."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise FadError(f"{self.source}: fad metadata has no field {key!r}")
        value = self.data[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.fail(key, f"got {shown(value)}")
        return value

    def fail(self, key: str, problem: str) -> None:
        raise FadError(f"{self.source}: fad metadata field {key!r}: {problem}")

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in options:
            self.fail(key, f"expected one of {options}, got {shown(value)}")
        return value

    def size(self) -> tuple[int, int]:
        size = self.ints("size", 2, unique=False)
        if not all(32 <= side <= MAX_INPUT_SIDE for side in size):
            self.fail("size", f"each side must be in [32, {MAX_INPUT_SIDE}], got {list(size)}")
        return size

    def ints(self, key: str, count: int | None = None, *, unique: bool = True) -> tuple[int, ...]:
        values = self.get(key, list)
        ok = all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63 for v in values)
        if not ok or (count is not None and len(values) != count) or not values:
            self.fail(key, f"expected {count or 'some'} integers, got {shown(values)}")
        if unique and len(set(values)) != len(values):
            self.fail(key, f"repeated values in {shown(values)}")
        return tuple(values)

    def floats(self, key: str, count: int) -> tuple[float, ...]:
        values = self.get(key, list)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numbers or len(values) != count or not all(map(math.isfinite, values)):
            self.fail(key, f"expected {count} finite numbers, got {shown(values)}")
        return tuple(float(v) for v in values)

    def texts(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list)
        if not values or not all(isinstance(v, str) and v for v in values):
            self.fail(key, f"expected non-empty names, got {shown(values)}")
        if len(set(values)) != len(values):
            self.fail(key, f"repeated names in {shown(values)}")
        return tuple(values)

    def boolean(self, key: str) -> bool:
        return self.get(key, bool)

    def genotypes(self) -> dict[str, str]:
        value = self.data.get("genotypes") or {}
        if not isinstance(value, dict):
            self.fail("genotypes", f"expected an object, got {shown(value)}")
        return {str(k): str(v) for k, v in value.items()}


def sidecar_text(meta: ExportMeta, data: bytes) -> str:
    """`FILE.json`: the metadata plus `model_sha256`, the digest of FILE's bytes `data`."""
    described = json.loads(meta.to_json())
    described["model_sha256"] = hashlib.sha256(data).hexdigest()
    return json.dumps(described, indent=1) + "\n"


def check_sidecar(path: Path, data: bytes) -> None:
    """Warn when `path.json` (if any) describes another model than `path`'s bytes `data` (an
    export interrupted between its two renames): run fad export again to put them in step."""
    sidecar = path.with_name(path.name + ".json")
    try:
        described = json.loads(sidecar.read_text(encoding="utf-8"))
        digest = described.get("model_sha256")
    except (OSError, ValueError, AttributeError, RecursionError):
        return
    if digest and digest != hashlib.sha256(data).hexdigest():
        log.warning(
            "%s describes another model than %s (an interrupted fad export?): the metadata "
            "inside the model is used; export again to renew the json",
            sidecar,
            path,
        )


def torchscript_extra_files(meta: ExportMeta) -> dict[str, str]:
    return {META_FILE: meta.to_json()}


class ExportedDetector:
    """An exported file, run on the CPU: `detector([image, ...])` -> one dict per image.

    Images [3, h, w] RGB in [0, 1] of another size than the export size are resized to it
    (bilinear, so stretched when their aspect differs) and the boxes scaled back: export at your
    images' size for the detections of the weights file. Labels are the dataset's category ids.
    """

    def __init__(self, run: Runner, meta: ExportMeta, source: str) -> None:
        self._run = run
        self.meta = meta
        self.source = source
        self._warned = False

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.class_names)

    @property
    def category_ids(self) -> list[int]:
        return list(self.meta.category_ids)

    @classmethod
    def open(cls, path: str | Path) -> ExportedDetector:
        """Read an exported file (ONNX by its `.onnx` suffix, else TorchScript)."""
        path = Path(path)
        check_regular_file(path, "exported model")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FadError(f"cannot read exported model {path}: {exc.strerror or exc}") from None
        fmt = "onnx" if path.suffix.lower() == ".onnx" else "torchscript"
        detector = cls.from_bytes(data, fmt, str(path))
        check_sidecar(path, data)
        return detector

    @classmethod
    def from_bytes(cls, data: bytes, fmt: str, source: str) -> ExportedDetector:
        if fmt == "onnx":
            return cls._onnx(data, source)
        extra = {META_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated
                module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
        except RuntimeError as exc:
            raise FadError(f"{source} is not a TorchScript file: {first_line(exc)}") from None
        if not extra[META_FILE]:
            raise FadError(f"{source} has no {META_FILE}: was it written by fad export?")
        meta = _format_checked(ExportMeta.from_json(extra[META_FILE], source), fmt, source)

        def run(image: Tensor) -> tuple[Tensor, ...]:
            with torch.no_grad():
                outputs = module(image)
            if not isinstance(outputs, (tuple, list)) or not all(map(torch.is_tensor, outputs)):
                raise FadError(f"{source}: the graph returns {type(outputs).__name__}, not tensors")
            return tuple(outputs)

        return cls(run, meta, source)

    @classmethod
    def _onnx(cls, data: bytes, source: str) -> ExportedDetector:
        try:
            import onnxruntime
        except ImportError:
            raise FadError(
                "running an ONNX file needs onnxruntime: pip install 'fad[export]'"
            ) from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise FadError(f"{source} is not a valid ONNX model: {first_line(exc)}") from None
        text = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if not text:
            raise FadError(f"{source} has no '{META_KEY}' metadata: was it written by fad export?")
        meta = _format_checked(ExportMeta.from_json(text, source), fmt="onnx", source=source)
        _check_graph_names(session, source)

        def run(image: Tensor) -> tuple[Tensor, ...]:
            try:
                outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image.numpy()})
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise FadError(f"{source} failed to run: {shown(first_line(exc))[1:-1]}") from None
            return tuple(torch.as_tensor(o) for o in outputs)

        return cls(run, meta, source)

    def run(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The graph on one image of exactly the export size: (boxes, scores, labels)."""
        expected = (3, *self.meta.size)
        if not image.is_floating_point():
            raise FadError(f"{self.source} takes float images in [0, 1], got {image.dtype}")
        if tuple(image.shape) != expected:
            raise FadError(
                f"{self.source} takes images of shape {list(expected)}, got {list(image.shape)}"
            )
        outputs = self._run(image.detach().to("cpu", torch.float32).contiguous())
        return checked_outputs(outputs, self.meta, self.source)

    def __call__(
        self, images: list[Tensor], *, category_ids: bool = True
    ) -> list[dict[str, Tensor]]:
        """Detections per image; `category_ids=False` gives labels 1..K (the K classes' order)."""
        lookup = {c: k for k, c in enumerate(self.meta.category_ids, start=1)}
        detections = []
        for image in images:
            size = tuple(image.shape[-2:])
            if size != self.meta.size and image.is_floating_point():
                if not self._warned:
                    log.warning(
                        "%s takes %dx%d images: resizing a %dx%d one to it (export at your "
                        "images' size for the weights file's detections)",
                        self.source,
                        *self.meta.size,
                        *size,
                    )
                    self._warned = True
                image = F.interpolate(
                    image[None], size=self.meta.size, mode="bilinear", align_corners=False
                )[0]
            boxes, scores, labels = self.run(image)
            if size != self.meta.size:
                boxes = resize_boxes(boxes, list(self.meta.size), list(size))
            if not category_ids:
                labels = torch.tensor([lookup[c] for c in labels.tolist()], dtype=torch.int64)
            detections.append({"boxes": boxes, "scores": scores, "labels": labels})
        return detections


def _format_checked(meta: ExportMeta, fmt: str, source: str) -> ExportMeta:
    if meta.format != fmt:
        raise FadError(f"{source}: its fad metadata says format {meta.format!r}, the file is {fmt}")
    return meta


def _check_graph_names(session: Any, source: str) -> None:
    """The ONNX graph takes one `image` [3, H, W] and returns `boxes`, `scores`, `labels`."""
    inputs = [(i.name, len(i.shape or ())) for i in session.get_inputs()]
    if inputs != [(INPUT_NAME, 3)]:
        raise FadError(
            f"{source}: the graph's inputs are {shown(inputs)}, expected one {INPUT_NAME!r} "
            "of 3 dimensions"
        )
    names = [o.name for o in session.get_outputs()]
    missing = [n for n in OUTPUT_NAMES if n not in names]
    if missing:
        raise FadError(
            f"{source}: the graph has no output {missing[0]!r} (outputs: {shown(names)})"
        )


def checked_outputs(
    outputs: tuple[Tensor, ...], meta: ExportMeta, source: str
) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes float [N, 4], scores float [N], labels int64 [N] among the category ids), or a
    FadError naming the output that is not so."""
    if len(outputs) != len(OUTPUT_NAMES):
        raise FadError(f"{source}: the graph returns {len(outputs)} outputs, expected 3")
    boxes, scores, labels = outputs
    count = boxes.shape[0] if boxes.dim() == 2 else -1
    for name, tensor, shape in (
        ("boxes", boxes, [count, 4]),
        ("scores", scores, [count]),
        ("labels", labels, [count]),
    ):
        if count < 0 or list(tensor.shape) != shape:
            raise FadError(
                f"{source}: output {name!r} has shape {list(tensor.shape)}, expected "
                f"{['N', 4] if name == 'boxes' else ['N']} with the same N for every output"
            )
    if not boxes.is_floating_point() or not scores.is_floating_point():
        raise FadError(f"{source}: outputs 'boxes' and 'scores' must be floating point")
    if not torch.isfinite(boxes).all() or not torch.isfinite(scores).all():
        raise FadError(f"{source}: outputs 'boxes' or 'scores' hold non-finite values")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise FadError(f"{source}: output 'labels' must hold integers, got {labels.dtype}")
    unknown = sorted(set(labels.tolist()) - set(meta.category_ids))
    if unknown:
        raise FadError(
            f"{source}: output 'labels' holds {shown(unknown)}, not among the category ids of "
            "its metadata"
        )
    return boxes, scores, labels.to(torch.int64)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
