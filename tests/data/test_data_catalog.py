"""Catalog: $FAD_DATASETS, layouts and fallbacks, IMG_DIR@ANN_JSON, helpful errors."""

from __future__ import annotations

import pytest

from fad.data.catalog import dataset_names, datasets_root, resolve
from fad.data.shapes import generate_shapes
from fad.errors import FadError


def _touch(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_coco_names_resolve_under_fad_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("FAD_DATASETS", str(tmp_path))
    (tmp_path / "coco/images/val2017").mkdir(parents=True)
    _touch(tmp_path / "coco/annotations/instances_val2017.json")
    spec = resolve("coco_2017_val")
    assert spec.kind == "coco" and spec.name == "coco_2017_val"
    assert spec.img_dir == tmp_path / "coco/images/val2017"
    assert spec.ann_file == tmp_path / "coco/annotations/instances_val2017.json"
    assert datasets_root() == tmp_path


def test_coco_falls_back_to_a_flat_image_folder(tmp_path):
    (tmp_path / "coco/images").mkdir(parents=True)
    _touch(tmp_path / "coco/annotations/instances_minival2014.json")
    spec = resolve("coco_2014_minival", root=tmp_path)
    assert spec.img_dir == tmp_path / "coco/images"


def test_missing_files_name_the_path_and_layout(tmp_path):
    (tmp_path / "coco/images/train2017").mkdir(parents=True)
    with pytest.raises(FadError, match="instances_train2017.json.*expected layout"):
        resolve("coco_2017_train", root=tmp_path)
    with pytest.raises(FadError, match="VOC2007.*Annotations"):
        resolve("voc_2007_test", root=tmp_path)


def test_default_root_is_local_datasets(monkeypatch):
    monkeypatch.delenv("FAD_DATASETS", raising=False)
    assert str(datasets_root()) == "datasets"


def test_voc_names_resolve(tmp_path):
    base = tmp_path / "voc/VOC2012"
    (base / "Annotations").mkdir(parents=True)
    (base / "JPEGImages").mkdir()
    _touch(base / "ImageSets/Main/trainval.txt")
    spec = resolve("voc_2012_trainval", root=tmp_path)
    assert (spec.kind, spec.split, spec.data_dir) == ("voc", "trainval", base)
    assert spec.img_dir == base / "JPEGImages"
    with pytest.raises(FadError, match="val.txt"):
        resolve("voc_2012_val", root=tmp_path)


def test_path_pair_syntax(tmp_path):
    (tmp_path / "imgs").mkdir()
    _touch(tmp_path / "a.json")
    spec = resolve(f"{tmp_path}/imgs@{tmp_path}/a.json", root="/nonexistent")
    assert (spec.kind, spec.img_dir, spec.ann_file) == (
        "coco",
        tmp_path / "imgs",
        tmp_path / "a.json",
    )
    with pytest.raises(FadError, match="b.json"):
        resolve(f"{tmp_path}/imgs@{tmp_path}/b.json")
    with pytest.raises(FadError, match="IMG_DIR@ANN_JSON"):
        resolve(f"{tmp_path}/imgs@")


def test_unknown_name_lists_names_and_suggests_the_closest():
    with pytest.raises(FadError, match="Did you mean 'coco_2017_val'") as info:
        resolve("coco_2017_vall")
    message = str(info.value)
    assert all(name in message for name in dataset_names())
    assert "shapes_train" in dataset_names() and "voc_2007_trainval" in dataset_names()


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    """A datasets root holding tiny generated sets of both shapes levels."""
    root = tmp_path_factory.mktemp("datasets")
    for level in ("easy", "hard"):
        generate_shapes(root / f"shapes_{level}", level=level, num_train=2, num_val=1,
                        min_size=40, max_size=48)  # fmt: skip
    return root


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("shapes_train", "shapes_easy"),
        ("shapes_val", "shapes_easy"),
        ("shapes_easy_val", "shapes_easy"),
        ("shapes_hard_train", "shapes_hard"),
        ("shapes_hard_val", "shapes_hard"),
    ],
)
def test_shapes_names_resolve_to_their_level(shapes_root, name, folder):
    split = name.rsplit("_", 1)[1]
    spec = resolve(name, root=shapes_root)
    assert name in dataset_names()
    assert (spec.kind, spec.img_dir) == ("coco", shapes_root / folder / split)
    assert spec.ann_file == shapes_root / folder / f"annotations/instances_{split}.json"


def test_shapes_folder_of_another_level_is_refused(tmp_path):
    generate_shapes(tmp_path / "shapes_easy", level="hard", num_train=1, num_val=1, min_size=40,
                    max_size=40)  # fmt: skip
    with pytest.raises(FadError, match="shapes_easy holds a set of level 'hard'"):
        resolve("shapes_val", root=tmp_path)
