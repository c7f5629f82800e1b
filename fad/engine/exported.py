"""An exported detector file (`fad export`): ONNX or TorchScript, and its metadata.

The graph takes one RGB image [3, H, W] in [0, 1] of the export size (H, W) and returns `boxes`
[N, 4] (xyxy, input pixels), `scores` [N] and `labels` [N] (the dataset's category ids). Its
metadata (`ExportMeta`) travels inside the file (ONNX `metadata_props["fad"]`, TorchScript extra
file `fad.json`) and beside it as `FILE.json`; the copy inside is the one read back.
`ExportedDetector` runs either format as `fad.load`'s model is called.
"""

from __future__ import annotations

import io
import json
import logging
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
        """Parse the metadata of `source`; a missing or malformed field is a one-line FadError."""
        try:
            data: dict[str, Any] = json.loads(text)
            meta = cls(
                format=str(data["format"]),
                size=(int(data["size"][0]), int(data["size"][1])),
                class_names=tuple(str(n) for n in data["class_names"]),
                category_ids=tuple(int(c) for c in data["category_ids"]),
                pixel_mean=tuple(float(v) for v in data["pixel_mean"]),
                pixel_std=tuple(float(v) for v in data["pixel_std"]),
                to_bgr255=bool(data["to_bgr255"]),
                genotypes={str(k): str(v) for k, v in (data.get("genotypes") or {}).items()},
                fad_version=str(data.get("fad_version", "")),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise FadError(
                f"{source}: malformed fad metadata ({type(exc).__name__}: {exc})"
            ) from None
        if len(meta.class_names) != len(meta.category_ids) or not meta.class_names:
            raise FadError(f"{source}: fad metadata needs as many class_names as category_ids")
        return meta


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
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FadError(f"cannot read exported model {path}: {exc.strerror or exc}") from None
        fmt = "onnx" if path.suffix.lower() == ".onnx" else "torchscript"
        return cls.from_bytes(data, fmt, str(path))

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
        meta = ExportMeta.from_json(extra[META_FILE], source)

        def run(image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            with torch.no_grad():
                return module(image)

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
        meta = ExportMeta.from_json(text, source)

        def run(image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image.numpy()})
            return tuple(torch.from_numpy(o) for o in outputs)

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
        return self._run(image.detach().to("cpu", torch.float32).contiguous())

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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
