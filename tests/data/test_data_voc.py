"""VOCDetection: difficult objects, box convention, groundtruth flags, COCO ground truth."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from PIL import Image
from pycocotools.cocoeval import COCOeval

from fad.data.voc import VOC_CLASSES, VOCDetection
from fad.errors import FadError


def _obj(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x0, y0, x1, y1 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
        f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


def _write_voc(root, images: dict[str, list[str]]):
    """A VOC2012 folder whose `train` split lists `images` (name -> object xml snippets)."""
    data_dir = root / "VOC2012"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (data_dir / sub).mkdir(parents=True)
    for name, objects in images.items():
        Image.new("RGB", (50, 40)).save(data_dir / "JPEGImages" / f"{name}.jpg")
        xml = (
            f"<annotation><filename>{name}.jpg</filename><size><width>50</width>"
            f"<height>40</height><depth>3</depth></size>{''.join(objects)}</annotation>"
        )
        (data_dir / "Annotations" / f"{name}.xml").write_text(xml)
    (data_dir / "ImageSets" / "Main" / "train.txt").write_text("\n".join(images) + "\n")
    return data_dir


@pytest.fixture
def voc_dir(tmp_path):
    return _write_voc(
        tmp_path,
        {
            "2008_000001": [
                _obj("dog", (1, 1, 10, 20)),
                _obj("cat", (5, 5, 30, 30), difficult=1),
                _obj("unicorn", (2, 2, 8, 8)),
                _obj("person", (40, 30, 60, 45)),  # clipped to the 50x40 image
            ],
            "2008_000002": [_obj("bird", (3, 3, 9, 9), difficult=1)],
        },
    )


def test_training_excludes_difficult_and_skips_images_left_empty(voc_dir):
    ds = VOCDetection(voc_dir, "train", train=True)
    assert ds.class_names == list(VOC_CLASSES) and len(ds.class_names) == 20
    assert len(ds) == 1 and ds.image_ids == [0]
    image, target = ds[0]
    assert image.shape == (3, 40, 50)
    assert target["boxes"].tolist() == [[0, 0, 10, 20], [39, 29, 50, 40]]  # xmin - 1 ... xmax
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog") + 1, 15]
    r = ds.report
    assert (r["difficult"], r["unknown_category"], r["clipped"], r["empty_images"]) == (2, 1, 1, 1)
    assert "2 difficult" in ds.report_text()
    assert ds.get_img_info(0) == {
        "height": 40,
        "width": 50,
        "id": 0,
        "file_name": "2008_000001.jpg",
    }


def test_groundtruth_flags_difficult_objects(voc_dir):
    ds = VOCDetection(voc_dir, "train", train=False)
    assert len(ds) == 2 and ds.image_ids == [0, 1]
    gt = ds.get_groundtruth(0)
    assert gt["labels"].tolist() == [12, 8, 15]
    assert gt["difficult"].tolist() == [False, True, False]
    assert gt["boxes"][1].tolist() == [4, 4, 30, 30]
    assert ds[1][1]["boxes"].shape == (0, 4)  # the difficult bird is no target
    assert gt["difficult"].dtype == torch.bool


def test_coco_ground_truth_ignores_difficult(voc_dir):
    ds = VOCDetection(voc_dir, "train", train=False)
    anns = ds.coco.loadAnns(ds.coco.getAnnIds())
    assert sorted((a["image_id"], a["category_id"], a["iscrowd"]) for a in anns) == [
        (0, 8, 1),
        (0, 12, 0),
        (0, 15, 0),
        (1, 3, 1),
    ]
    dets = [
        {"image_id": 0, "category_id": 12, "bbox": [0, 0, 10, 20], "score": 0.9},
        {"image_id": 0, "category_id": 15, "bbox": [39, 29, 11, 11], "score": 0.9},  # clipped
        {"image_id": 1, "category_id": 3, "bbox": [2, 2, 7, 7], "score": 0.95},  # on difficult
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(ds.coco, ds.coco.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("xml_object", "expected"),
    [
        ("<object><name>dog</name></object>", "object 0.*bndbox"),
        ("<object><bndbox/></object>", "object 0.*<name>"),
        (_obj("dog", (1, 1, 5, 5)).replace("<xmax>5", "<xmax>five"), "xmax.*not a number"),
        ("<object><name>dog</name", "invalid XML"),
    ],
)
def test_malformed_xml_names_the_file(tmp_path, xml_object, expected):
    data_dir = _write_voc(tmp_path, {"bad": [xml_object]})
    with pytest.raises(FadError, match=expected) as info:
        VOCDetection(data_dir, "train", train=True)
    assert "bad.xml" in str(info.value)


def test_missing_annotation_and_split(voc_dir):
    (voc_dir / "Annotations" / "2008_000002.xml").unlink()
    with pytest.raises(FadError, match="2008_000002.xml"):
        VOCDetection(voc_dir, "train", train=True)
    with pytest.raises(FadError, match="val.txt"):
        VOCDetection(voc_dir, "val", train=True)
