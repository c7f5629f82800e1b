"""The embedded default dataset "shapes": filled shapes on textured backgrounds, in COCO format.

Layout written by `generate_shapes(out_dir)`:
    out_dir/train/000000.jpg ...           out_dir/annotations/instances_train.json
    out_dir/val/000000.jpg ...             out_dir/annotations/instances_val.json

Each image (sides drawn in [min_size, max_size]) holds 1-8 shapes of 5 classes whose category ids
are deliberately non-contiguous (1, 3, 5, 7, 9). Shape sizes are log-uniform from 10 px to 90 % of
the short side, so every FPN level (strides 8..128) gets targets. Shapes are drawn roughly large
first, so later (mostly smaller) ones occlude earlier ones. The annotated box is the tight box of
the shape's *visible* pixels (as COCO boxes come from visible masks), `area` is the visible pixel
count, and shapes with more than 70 % of their pixels hidden are not annotated. Boxes are in pixel
edges: a shape covering columns 3..7 has x = 3, w = 5.

Every image comes from its own RNG, `np.random.default_rng([seed, split, index])`, so a dataset is
a pure function of its arguments (same seed => byte-identical json and images), and
`render_sample` reproduces any single image with its masks. The dataset is written to a temporary
folder beside `out_dir` and renamed into place at the end: a killed run never leaves a half
dataset at `out_dir` (at most a `.shapes.tmp-*` folder beside it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fad.errors import FadError

CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "circle"),
    (3, "square"),
    (5, "triangle"),
    (7, "star"),
    (9, "cross"),
)
SPLITS: tuple[str, ...] = ("train", "val")
MIN_OBJECT_SIZE = 10.0
MAX_OBJECT_FRACTION = 0.9
MAX_OCCLUDED_FRACTION = 0.7
JPEG_QUALITY = 90


@dataclass
class ShapeObject:
    """One annotated shape: COCO category id, tight xyxy box of its visible pixels, masks."""

    category_id: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixel edges (x1 exclusive)
    visible: np.ndarray  # bool[H, W], the shape's pixels left visible
    occluded_fraction: float  # share of the shape's pixels hidden by later shapes


@dataclass
class ShapesSample:
    """A rendered image (uint8[H, W, 3], before JPEG) and its annotated shapes."""

    image: np.ndarray
    objects: list[ShapeObject]


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a shape of circumradius `r` centred at (cx, cy), rotated by `angle`."""
    if kind == "square":
        radii, count = [r], 4
    elif kind == "triangle":
        radii, count = [r], 3
    elif kind == "star":
        radii, count = [r, 0.45 * r], 10
    elif kind == "cross":
        tip = r / math.hypot(1.0, 0.35)  # the bar ends' corners lie on the circumcircle
        arm = 0.35 * tip  # half-width of each bar
        corners = [(arm, tip), (arm, arm), (tip, arm), (tip, -arm), (arm, -arm), (arm, -tip)]
        corners += [(-x, -y) for x, y in corners]
        cos, sin = math.cos(angle), math.sin(angle)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in corners]
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    step = 2 * math.pi / count
    return [
        (
            cx + radii[k % len(radii)] * math.cos(angle + k * step),
            cy + radii[k % len(radii)] * math.sin(angle + k * step),
        )
        for k in range(count)
    ]


def _shape_mask(
    kind: str, width: int, height: int, cx: float, cy: float, r: float, angle: float
) -> np.ndarray:
    """bool[H, W] mask of one filled shape (not anti-aliased, so the mask is what gets drawn)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=255)
    return np.asarray(canvas) > 0


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """uint8[H, W, 3]: a random linear colour gradient, Gaussian noise and a few random lines."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32) * math.cos(theta)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32) * math.sin(theta)
    ramp = ys[:, None] + xs[None, :]  # [H, W]
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    noise_std = np.float32(rng.uniform(0, 25))
    bg = c0 + ramp[:, :, None] * (c1 - c0)
    bg += rng.standard_normal((height, width, 3), dtype=np.float32) * noise_std
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 7))):
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 4)))
    return np.array(canvas)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """float32[3]: a random colour at least ~60 (L2, 0..255) away from the mean of `under`."""
    mean = under.reshape(-1, 3).mean(axis=0) if under.size else np.zeros(3)
    colour = rng.uniform(0, 255, 3)
    for _ in range(8):
        if np.linalg.norm(colour - mean) >= 60:
            break
        colour = rng.uniform(0, 255, 3)
    return colour.astype(np.float32)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """xyxy box in pixel edges of the true pixels of a non-empty bool[H, W] mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The RNG that renders image `index` of `split` for dataset seed `seed`."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def render_sample(
    seed: int, split: str, index: int, *, min_size: int = 256, max_size: int = 320
) -> ShapesSample:
    """Render image `index` of `split` exactly as `generate_shapes` does (before JPEG)."""
    rng = sample_rng(seed, split, index)
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    image = _background(rng, width, height)
    count = int(rng.integers(1, 9))
    max_extent = MAX_OBJECT_FRACTION * min(width, height)
    extents = np.exp(rng.uniform(math.log(MIN_OBJECT_SIZE), math.log(max_extent), count))
    order = np.argsort(-(np.log(extents) + rng.normal(0, 0.5, count)), kind="stable")

    owner = np.full((height, width), -1, dtype=np.int16)
    drawn: list[tuple[int, np.ndarray]] = []
    for k in order:
        category_id, kind = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        extent = float(extents[k])
        cx = rng.uniform(extent / 2, width - extent / 2)
        cy = rng.uniform(extent / 2, height - extent / 2)
        mask = _shape_mask(kind, width, height, cx, cy, extent / 2, rng.uniform(0, 2 * math.pi))
        if not mask.any():
            continue
        colour = _contrasting_colour(rng, image[mask])
        shade = rng.normal(0, 4, (int(mask.sum()), 3)).astype(np.float32)
        image[mask] = np.clip(colour + shade, 0, 255).astype(np.uint8)
        owner[mask] = len(drawn)
        drawn.append((category_id, mask))

    objects = []
    for slot, (category_id, mask) in enumerate(drawn):
        visible = owner == slot
        hidden = 1.0 - float(visible.sum()) / float(mask.sum())
        if hidden > MAX_OCCLUDED_FRACTION:
            continue
        objects.append(ShapeObject(category_id, _tight_box(visible), visible, hidden))
    return ShapesSample(image=image, objects=objects)


def _write_split(
    out: Path, split: str, count: int, seed: int, min_size: int, max_size: int
) -> None:
    """Write `count` JPEGs to out/split and the COCO json to out/annotations."""
    (out / split).mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        sample = render_sample(seed, split, index, min_size=min_size, max_size=max_size)
        file_name = f"{index:06d}.jpg"
        Image.fromarray(sample.image, mode="RGB").save(
            out / split / file_name, quality=JPEG_QUALITY
        )
        height, width = sample.image.shape[:2]
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
        for obj in sample.objects:
            x0, y0, x1, y1 = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": obj.category_id,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": int(obj.visible.sum()),
                    "iscrowd": 0,
                }
            )
    dataset = {
        "info": {"description": f"fad shapes, split {split}, seed {seed}", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "shape"} for i, n in CATEGORIES],
    }
    (out / "annotations").mkdir(exist_ok=True)
    with open(out / "annotations" / f"instances_{split}.json", "w", encoding="utf-8") as f:
        json.dump(dataset, f, separators=(",", ":"))


def _check_arguments(seed: int, counts: dict[str, int], min_size: int, max_size: int) -> None:
    if seed < 0:
        raise FadError(f"shapes: seed must be >= 0, got {seed}")
    for split, count in counts.items():
        if count < 1:
            raise FadError(f"shapes: the {split} split needs at least 1 image, got {count}")
    if min_size < 32 or max_size < min_size:
        raise FadError(
            f"shapes: need 32 <= min_size <= max_size, got min_size={min_size} max_size={max_size}"
        )


def _is_complete(out: Path) -> bool:
    return all((out / "annotations" / f"instances_{s}.json").is_file() for s in SPLITS)


def generate_shapes(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    num_train: int = 2000,
    num_val: int = 200,
    min_size: int = 256,
    max_size: int = 320,
) -> None:
    """Write the shapes dataset (JPEGs + COCO json, see the module docstring) to `out_dir`.

    Raises FadError if `out_dir` already holds files or the arguments are out of range.
    """
    out = Path(out_dir)
    counts = {"train": num_train, "val": num_val}
    _check_arguments(seed, counts, min_size, max_size)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FadError(f"shapes: {out} already exists and is not empty; remove it or pick another")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for split, count in counts.items():
            _write_split(tmp, split, count, seed, min_size, max_size)
        os.rename(tmp, out)  # atomic; replaces an empty `out`, fails on a non-empty one
    except OSError as exc:
        if out.is_dir() and any(out.iterdir()):
            raise FadError(f"shapes: {out} was created by another process meanwhile") from exc
        raise FadError(f"shapes: cannot write {out}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_shapes(root: str | os.PathLike[str]) -> Path:
    """Return `root/shapes`, generating it with the default arguments on first use.

    Safe when several processes call it at once: each generates privately, the first rename
    wins and the others discard their copy.
    """
    out = Path(root) / "shapes"
    if not _is_complete(out):
        try:
            generate_shapes(out)
        except FadError:
            if not _is_complete(out):
                raise
    return out
