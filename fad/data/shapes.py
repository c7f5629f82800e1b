"""The embedded dataset "shapes": filled shapes on plain or textured backgrounds, in COCO format.

Layout written by `generate_shapes(out_dir, level=...)`:
    out_dir/train/000000.jpg ...           out_dir/annotations/instances_train.json
    out_dir/val/000000.jpg ...             out_dir/annotations/instances_val.json

A *level* (`LEVELS`, one frozen `ShapesLevel` each) sets how hard the set is:
- "easy" (the default): 3 classes (circle 1, square 3, triangle 5); 1-4 shapes whose extents
  (circumscribed diameters) are 25-60 % of the image's short side (box sides >= ~23 px at the
  demo's 128 px input), never overlapping, on a flat colour with mild noise, in a colour far from
  it. A from-scratch detector learns it in minutes on a CPU.
- "hard": 5 classes (circle 1, square 3, triangle 5, star 7, cross 9); 1-8 shapes with
  log-uniform extents from 10 px to 90 % of the short side (every FPN level gets targets, many
  objects are finer than stride 8 at 128 px), drawn roughly large first so later shapes occlude
  earlier ones, on a colour gradient with noise and random lines. Shapes more than 70 % hidden
  are not annotated. It is the set fad generated before levels existed: the same images and
  annotations for the same arguments (only the json `info` is new).
Category ids are deliberately non-contiguous, as COCO's are. The annotated box is the tight box
of the shape's *visible* pixels (as COCO boxes come from visible masks), `area` is the visible
pixel count. Boxes are in pixel edges: a shape covering columns 3..7 has x = 3, w = 5. The json
`info` records the level and its version (`info["level"]`, `info["version"]`), which
`ensure_shapes` checks before reusing a folder.

Every image comes from its own RNG, `np.random.default_rng([seed, split, index])`, so a dataset is
a pure function of its arguments (same arguments => byte-identical json and images), and
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
JPEG_QUALITY = 90
COLOUR_TRIES = 8  # draws of a shape colour before settling for a low-contrast one
PLACEMENT_TRIES = 30  # draws of a shape position before dropping it (levels that limit overlap)


@dataclass(frozen=True)
class ShapesLevel:
    """How hard a shapes set is: every parameter that differs between levels.

    Extents are a shape's circumscribed diameter; its box is 0.7-1x that. A shape's extent is
    log-uniform in [max(min_extent_px, min_extent_fraction * short side),
    max_extent_fraction * short side]. `version` is stored in the json and must be bumped
    whenever this level's output changes.
    """

    name: str
    version: int
    categories: tuple[tuple[int, str], ...]  # (COCO category id, shape kind)
    max_objects: int  # 1..max_objects shapes drawn per image
    min_extent_px: float
    min_extent_fraction: float
    max_extent_fraction: float
    max_overlap: float  # share of a new shape's pixels that may cover earlier shapes (1: any)
    max_occluded_fraction: float  # shapes hidden more than this are not annotated
    gradient: float  # background: strength of the ramp between two random colours (0: flat)
    max_noise_std: float  # background noise std is drawn from U(0, max_noise_std)
    max_lines: int  # 0..max_lines random lines drawn on the background
    min_contrast: float  # wanted L2 distance (0..255 RGB) of a shape from the mean under it


LEVELS: dict[str, ShapesLevel] = {
    level.name: level
    for level in (
        ShapesLevel(
            name="easy",
            version=1,
            categories=CATEGORIES[:3],
            max_objects=4,
            min_extent_px=0.0,
            min_extent_fraction=0.25,
            max_extent_fraction=0.6,
            max_overlap=0.0,
            max_occluded_fraction=0.0,
            gradient=0.0,
            max_noise_std=8.0,
            max_lines=0,
            min_contrast=100.0,
        ),
        ShapesLevel(
            name="hard",
            version=1,
            categories=CATEGORIES,
            max_objects=8,
            min_extent_px=10.0,
            min_extent_fraction=0.0,
            max_extent_fraction=0.9,
            max_overlap=1.0,
            max_occluded_fraction=0.7,
            gradient=1.0,
            max_noise_std=25.0,
            max_lines=6,
            min_contrast=60.0,
        ),
    )
}
DEFAULT_LEVEL = "easy"


def get_level(level: str | ShapesLevel) -> ShapesLevel:
    """The `ShapesLevel` named `level` (a level passes through); FadError lists the names."""
    if isinstance(level, ShapesLevel):
        return level
    if level not in LEVELS:
        raise FadError(f"shapes: unknown level {level!r}; levels: {', '.join(LEVELS)}")
    return LEVELS[level]


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


def _background(
    rng: np.random.Generator, width: int, height: int, level: ShapesLevel
) -> np.ndarray:
    """uint8[H, W, 3]: a linear colour ramp, Gaussian noise and random lines, as `level` says."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32) * math.cos(theta)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32) * math.sin(theta)
    ramp = ys[:, None] + xs[None, :]  # [H, W]
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    noise_std = np.float32(rng.uniform(0, level.max_noise_std))
    bg = c0 + ramp[:, :, None] * ((c1 - c0) * level.gradient)
    bg += rng.standard_normal((height, width, 3), dtype=np.float32) * noise_std
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, level.max_lines + 1))):
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 4)))
    return np.array(canvas)


def _contrasting_colour(
    rng: np.random.Generator, under: np.ndarray, min_contrast: float
) -> np.ndarray:
    """float32[3]: a random colour, redrawn (a few times) while within `min_contrast` of the
    mean of `under` (L2, 0..255)."""
    mean = under.reshape(-1, 3).mean(axis=0) if under.size else np.zeros(3)
    colour = rng.uniform(0, 255, 3)
    for _ in range(COLOUR_TRIES):
        if np.linalg.norm(colour - mean) >= min_contrast:
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


def _place(
    rng: np.random.Generator,
    kind: str,
    extent: float,
    owner: np.ndarray,
    max_overlap: float,
) -> np.ndarray | None:
    """bool[H, W] mask of a shape of `extent` at a random position and angle, redrawn while more
    than `max_overlap` of its pixels cover earlier shapes (`owner` >= 0); None if none fits."""
    height, width = owner.shape
    for _ in range(1 if max_overlap >= 1 else PLACEMENT_TRIES):
        cx = rng.uniform(extent / 2, width - extent / 2)
        cy = rng.uniform(extent / 2, height - extent / 2)
        mask = _shape_mask(kind, width, height, cx, cy, extent / 2, rng.uniform(0, 2 * math.pi))
        if mask.any() and float((owner[mask] >= 0).mean()) <= max_overlap:
            return mask
    return None


def render_sample(
    seed: int,
    split: str,
    index: int,
    *,
    level: str | ShapesLevel = DEFAULT_LEVEL,
    min_size: int = 256,
    max_size: int = 320,
) -> ShapesSample:
    """Render image `index` of `split` exactly as `generate_shapes` does (before JPEG)."""
    spec = get_level(level)
    rng = sample_rng(seed, split, index)
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    image = _background(rng, width, height, spec)
    count = int(rng.integers(1, spec.max_objects + 1))
    short = min(width, height)
    min_extent = max(spec.min_extent_px, spec.min_extent_fraction * short)
    max_extent = spec.max_extent_fraction * short
    extents = np.exp(rng.uniform(math.log(min_extent), math.log(max_extent), count))
    order = np.argsort(-(np.log(extents) + rng.normal(0, 0.5, count)), kind="stable")

    owner = np.full((height, width), -1, dtype=np.int16)
    drawn: list[tuple[int, np.ndarray]] = []
    for k in order:
        category_id, kind = spec.categories[int(rng.integers(len(spec.categories)))]
        mask = _place(rng, kind, float(extents[k]), owner, spec.max_overlap)
        if mask is None:
            continue
        colour = _contrasting_colour(rng, image[mask], spec.min_contrast)
        shade = rng.normal(0, 4, (int(mask.sum()), 3)).astype(np.float32)
        image[mask] = np.clip(colour + shade, 0, 255).astype(np.uint8)
        owner[mask] = len(drawn)
        drawn.append((category_id, mask))

    objects = []
    for slot, (category_id, mask) in enumerate(drawn):
        visible = owner == slot
        hidden = 1.0 - float(visible.sum()) / float(mask.sum())
        if hidden > spec.max_occluded_fraction:
            continue
        objects.append(ShapeObject(category_id, _tight_box(visible), visible, hidden))
    return ShapesSample(image=image, objects=objects)


def _write_split(
    out: Path,
    split: str,
    count: int,
    seed: int,
    level: ShapesLevel,
    min_size: int,
    max_size: int,
) -> None:
    """Write `count` JPEGs to out/split and the COCO json to out/annotations."""
    (out / split).mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        sample = render_sample(
            seed, split, index, level=level, min_size=min_size, max_size=max_size
        )
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
        "info": {
            "description": f"fad shapes {level.name}, split {split}, seed {seed}",
            "version": str(level.version),
            "level": level.name,
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "shape"} for i, n in level.categories],
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
    level: str | ShapesLevel = DEFAULT_LEVEL,
    seed: int = 0,
    num_train: int = 2000,
    num_val: int = 200,
    min_size: int = 256,
    max_size: int = 320,
) -> None:
    """Write the shapes dataset of `level` (JPEGs + COCO json, see the module docstring) to
    `out_dir`.

    Raises FadError if `out_dir` already holds files or the arguments are out of range.
    """
    out = Path(out_dir)
    spec = get_level(level)
    counts = {"train": num_train, "val": num_val}
    _check_arguments(seed, counts, min_size, max_size)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FadError(f"shapes: {out} already exists and is not empty; remove it or pick another")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for split, count in counts.items():
            _write_split(tmp, split, count, seed, spec, min_size, max_size)
        os.rename(tmp, out)  # atomic; replaces an empty `out`, fails on a non-empty one
    except OSError as exc:
        if out.is_dir() and any(out.iterdir()):
            raise FadError(f"shapes: {out} was created by another process meanwhile") from exc
        raise FadError(f"shapes: cannot write {out}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def stored_level(ann_file: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(level, version) recorded in a shapes json's `info`; None for what is not recorded."""
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise FadError(f"shapes: cannot read {ann_file}: {exc}") from exc
    info = data.get("info") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        return None, None
    return info.get("level"), info.get("version")


def _check_level(out: Path, spec: ShapesLevel) -> None:
    """FadError naming `out` unless every split's json was written by `spec`'s level and version."""
    wanted = (spec.name, str(spec.version))
    for split in SPLITS:
        level, version = stored_level(out / "annotations" / f"instances_{split}.json")
        if (level, version) != wanted:
            found = (
                f"level {level!r} version {version}" if level else "no recorded level (older fad)"
            )
            raise FadError(
                f"shapes: {out} holds a set of {found}, not level {spec.name!r} version "
                f"{spec.version}; remove it and it is generated again"
            )


def level_dir(root: str | os.PathLike[str], level: str | ShapesLevel = DEFAULT_LEVEL) -> Path:
    """The folder of `level`'s generated set under the datasets root: `root/shapes_<level>`."""
    return Path(root) / f"shapes_{get_level(level).name}"


def ensure_shapes(root: str | os.PathLike[str], level: str | ShapesLevel = DEFAULT_LEVEL) -> Path:
    """Return `root/shapes_<level>`, generating it with the default arguments on first use.

    A folder whose json records another level or version is refused (FadError naming it), never
    reused. Safe when several processes call it at once: each generates privately, the first
    rename wins and the others discard their copy.
    """
    spec = get_level(level)
    out = level_dir(root, spec)
    if not _is_complete(out):
        try:
            generate_shapes(out, level=spec)
        except FadError:
            if not _is_complete(out):
                raise
    _check_level(out, spec)
    return out
