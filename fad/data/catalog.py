"""Dataset catalog: dataset names -> where their images and annotations live.

The datasets root is `$FAD_DATASETS` if set, else `./datasets`. Expected layout under it:
    coco/images/{train2017,val2017,train2014,val2014}/*.jpg   (or all images in coco/images)
    coco/annotations/instances_{train2017,val2017,train2014,val2014,minival2014,
                                valminusminival2014}.json
    voc/VOC2012/{Annotations,ImageSets/Main,JPEGImages}      (and voc/VOC2007/...)
    shapes_easy/, shapes_hard/                                (generated on first use)
Any COCO-format set can also be named as "IMG_DIR@ANN_JSON" (paths relative to the working
directory).

The embedded shapes set comes in levels (see `fad.data.shapes.LEVELS`), each generated on first
use into its own folder `<root>/shapes_<level>` with the default arguments (seed 0, 2000 train /
200 val images of 256-320 px):
    shapes_train, shapes_val             the default level, "easy": 3 classes, 1-4 large
                                         (25-60 % of the short side), non-overlapping shapes on a
                                         flat background; a from-scratch detector learns it in
                                         minutes on a CPU
    shapes_easy_train, shapes_easy_val   the same set, named explicitly
    shapes_hard_train, shapes_hard_val   "hard": 5 classes, 1-8 shapes from 10 px to 90 % of the
                                         short side, occluded up to 70 %, on gradients with noise
                                         and lines (the shapes set of earlier fad versions)
A folder whose json records another level or generator version is refused with an error naming
it, never silently reused.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from fad.data.shapes import DEFAULT_LEVEL, ensure_shapes
from fad.errors import FadError

# name -> (image folder, annotation json), both relative to <root>/coco
_COCO: dict[str, tuple[str, str]] = {
    "coco_2017_train": ("images/train2017", "annotations/instances_train2017.json"),
    "coco_2017_val": ("images/val2017", "annotations/instances_val2017.json"),
    "coco_2014_train": ("images/train2014", "annotations/instances_train2014.json"),
    "coco_2014_val": ("images/val2014", "annotations/instances_val2014.json"),
    "coco_2014_minival": ("images/val2014", "annotations/instances_minival2014.json"),
    "coco_2014_valminusminival": (
        "images/val2014",
        "annotations/instances_valminusminival2014.json",
    ),
}
_VOC_YEARS = ("2007", "2012")
_VOC_SPLITS = ("train", "val", "trainval", "test")
_SHAPES_SPLITS = ("train", "val")
# catalog prefix -> shapes level; names are f"{prefix}_{split}"
_SHAPES: dict[str, str] = {"shapes": DEFAULT_LEVEL, "shapes_easy": "easy", "shapes_hard": "hard"}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives.

    kind "coco": `img_dir` + `ann_file`. kind "voc": `img_dir` (JPEGImages), `data_dir` (the
    VOC<year> folder holding Annotations/ and ImageSets/Main/) and `split`.
    """

    name: str
    kind: str
    img_dir: Path
    ann_file: Path | None = None
    data_dir: Path | None = None
    split: str | None = None


def datasets_root(root: str | os.PathLike[str] | None = None) -> Path:
    """`root` if given, else `$FAD_DATASETS`, else `./datasets`."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("FAD_DATASETS") or "datasets")


def dataset_names() -> list[str]:
    """All catalog names (besides the "IMG_DIR@ANN_JSON" form)."""
    names = list(_COCO)
    names += [f"voc_{year}_{split}" for year in _VOC_YEARS for split in _VOC_SPLITS]
    names += [f"{prefix}_{split}" for prefix in _SHAPES for split in _SHAPES_SPLITS]
    return names


def _require(path: Path, name: str, layout: str, is_dir: bool) -> None:
    exists = path.is_dir() if is_dir else path.is_file()
    if not exists:
        what = (
            "missing" if not path.exists() else "not a " + ("folder" if is_dir else "regular file")
        )
        raise FadError(f"dataset {name!r}: {what} {path} (expected layout: {layout})")


def _coco_spec(name: str, root: Path) -> DatasetSpec:
    img_rel, ann_rel = _COCO[name]
    base = root / "coco"
    img_dir = base / img_rel
    if not img_dir.is_dir():
        img_dir = base / "images"
    layout = f"{base}/{img_rel}/*.jpg (or {base}/images/*.jpg) and {base}/{ann_rel}"
    _require(img_dir, name, layout, is_dir=True)
    _require(base / ann_rel, name, layout, is_dir=False)
    return DatasetSpec(name, "coco", img_dir, ann_file=base / ann_rel)


def _voc_spec(name: str, root: Path) -> DatasetSpec:
    _, year, split = name.split("_")
    data_dir = root / "voc" / f"VOC{year}"
    set_file = data_dir / "ImageSets" / "Main" / f"{split}.txt"
    layout = f"{data_dir}/{{Annotations/*.xml, ImageSets/Main/{split}.txt, JPEGImages/*.jpg}}"
    _require(data_dir / "Annotations", name, layout, is_dir=True)
    _require(data_dir / "JPEGImages", name, layout, is_dir=True)
    _require(set_file, name, layout, is_dir=False)
    return DatasetSpec(name, "voc", data_dir / "JPEGImages", data_dir=data_dir, split=split)


def _shapes_spec(name: str, root: Path) -> DatasetSpec:
    prefix, split = name.rsplit("_", 1)
    base = ensure_shapes(root, _SHAPES[prefix])
    ann_file = base / "annotations" / f"instances_{split}.json"
    return DatasetSpec(name, "coco", base / split, ann_file=ann_file)


def _path_pair_spec(name: str) -> DatasetSpec:
    img_part, _, ann_part = name.partition("@")
    if not img_part or not ann_part:
        raise FadError(f"dataset {name!r}: expected IMG_DIR@ANN_JSON with both parts non-empty")
    layout = "IMG_DIR@ANN_JSON: a folder of images and a COCO-format json"
    img_dir, ann_file = Path(img_part), Path(ann_part)
    _require(img_dir, name, layout, is_dir=True)
    _require(ann_file, name, layout, is_dir=False)
    return DatasetSpec(name, "coco", img_dir, ann_file=ann_file)


def check_name(name: str, root: str | os.PathLike[str] | None = None) -> None:
    """Raise what `resolve(name)` would raise, without generating or reading any data: a shapes
    set is generated on first use, so its name alone is enough (a preflight check)."""
    if name.startswith("shapes_") and name in dataset_names():
        return
    resolve(name, root)


def resolve(name: str, root: str | os.PathLike[str] | None = None) -> DatasetSpec:
    """Look `name` up (or parse "IMG_DIR@ANN_JSON") and check its files exist.

    Raises FadError listing the valid names (and the closest one) for an unknown name, or naming
    the missing path and the expected layout.
    """
    if "@" in name:
        return _path_pair_spec(name)
    base = datasets_root(root)
    if name in _COCO:
        return _coco_spec(name, base)
    if name.startswith("voc_") and name in dataset_names():
        return _voc_spec(name, base)
    if name.startswith("shapes_") and name in dataset_names():
        return _shapes_spec(name, base)
    names = dataset_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise FadError(
        f"unknown dataset {name!r}.{hint} Valid names: {', '.join(names)}, "
        "or IMG_DIR@ANN_JSON for any COCO-format set"
    )
