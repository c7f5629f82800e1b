"""evaluate_coco agrees with pycocotools and reports per-class AP."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fad.errors import FadError
from fad.evaluation import evaluate_coco, summary_markdown
from fad.evaluation.coco_eval import STAT_NAMES

CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 12, "name": "bird"}]
# (image_id, category_id, [x, y, w, h], iscrowd): small (< 32^2), medium and large boxes.
GT_BOXES = [
    (1, 3, [10, 10, 200, 150], 0),
    (1, 7, [300, 200, 50, 60], 0),
    (1, 12, [400, 50, 20, 15], 0),
    (2, 3, [50, 60, 40, 50], 0),
    (2, 7, [100, 100, 300, 250], 0),
    (2, 7, [420, 300, 200, 150], 1),
    (3, 12, [20, 30, 60, 40], 0),
    (3, 3, [200, 200, 25, 20], 0),
    (3, 12, [300, 100, 200, 200], 0),
]
CROWD_BOX = [420, 300, 200, 150]
NO_GT_IMAGE = 4


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


@pytest.fixture
def coco_gt() -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "width": 640, "height": 480} for i in (1, 2, 3, 4)],
        "categories": copy.deepcopy(CATEGORIES),
        "annotations": [
            {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": k}
            for n, (i, c, b, k) in enumerate(GT_BOXES, start=1)
        ],
    }
    quiet(coco.createIndex)
    return coco


def perfect_results(score: float = 1.0) -> list[dict]:
    return [
        {"image_id": i, "category_id": c, "bbox": list(map(float, b)), "score": score}
        for i, c, b, crowd in GT_BOXES
        if not crowd
    ]


def shifted_results(rng: np.random.Generator) -> list[dict]:
    results = []
    for n, (i, c, b, crowd) in enumerate(GT_BOXES):
        if crowd:
            continue
        dx, dy = rng.uniform(-6, 6, size=2)
        box = [b[0] + dx, b[1] + dy, b[2], b[3]]
        results.append({"image_id": i, "category_id": c, "bbox": box, "score": 0.9 - 0.05 * n})
    results.append(
        {"image_id": NO_GT_IMAGE, "category_id": 3, "bbox": [5, 5, 80, 80], "score": 0.95}
    )
    results.append({"image_id": 1, "category_id": 7, "bbox": [302, 203, 50, 60], "score": 0.3})
    results.append({**results[0], "score": 0.2})  # a duplicate of the first record: an FP
    return results


def reference(coco_gt: COCO, results: list[dict], image_ids=None, cat_ids=None) -> COCOeval:
    """pycocotools run directly, as its README shows."""
    coco_dt = quiet(coco_gt.loadRes, copy.deepcopy(results))
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    if image_ids is not None:
        ev.params.imgIds = image_ids
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    quiet(ev.evaluate)
    quiet(ev.accumulate)
    return ev


def summary_text(ev: COCOeval) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    return buf.getvalue()


def assert_matches_reference(result, ev: COCOeval) -> None:
    summary = summary_text(ev)
    np.testing.assert_array_equal([result.stats[k] for k in STAT_NAMES], ev.stats)
    np.testing.assert_array_equal(result.precision, ev.eval["precision"])
    assert result.text.startswith(summary)


def test_ground_truth_as_detections_gives_ap_one(coco_gt):
    result = evaluate_coco(coco_gt, perfect_results(), stream=None)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert result.stats[key] == pytest.approx(1.0), key
    assert {name: v["AP"] for name, v in result.per_class.items()} == pytest.approx(
        {"cat": 1.0, "dog": 1.0, "bird": 1.0}
    )


def test_shifted_boxes_match_pycocotools_exactly(coco_gt):
    results = shifted_results(np.random.default_rng(0))
    stream = io.StringIO()
    result = evaluate_coco(coco_gt, results, stream=stream)
    ev = reference(coco_gt, results)
    assert 0.0 < result.stats["AP"] < 1.0
    assert_matches_reference(result, ev)
    assert stream.getvalue() == result.text
    assert len(result.text.splitlines()[0]) > 0
    assert sum("Average Precision" in line for line in result.text.splitlines()) == 6
    assert sum("Average Recall" in line for line in result.text.splitlines()) == 6
    for name, category_id in (("cat", 3), ("dog", 7), ("bird", 12)):
        alone = reference(coco_gt, results, cat_ids=[category_id])
        quiet(alone.summarize)
        assert result.per_class[name]["AP"] == pytest.approx(alone.stats[0], abs=1e-12)
        assert result.per_class[name]["AP50"] == pytest.approx(alone.stats[1], abs=1e-12)


def test_results_are_not_modified(coco_gt):
    results = shifted_results(np.random.default_rng(1))
    before = copy.deepcopy(results)
    evaluate_coco(coco_gt, results, stream=None)
    assert results == before


def test_no_detections_gives_zero_without_crashing(coco_gt):
    stream = io.StringIO()
    result = evaluate_coco(coco_gt, [], stream=stream)
    assert all(result.stats[k] == 0.0 for k in STAT_NAMES)
    assert all(v["AP"] == 0.0 and v["AP50"] == 0.0 for v in result.per_class.values())
    assert "cat" in stream.getvalue() and "Average Precision" in stream.getvalue()


def test_more_than_100_detections_per_image_matches_pycocotools(coco_gt):
    rng = np.random.default_rng(2)
    results = perfect_results()
    for r in results:  # true boxes rank below many false positives: some fall past maxDets=100
        r["score"] = 0.5 if r["image_id"] != 1 else 0.05
    for _ in range(150):  # maxDets applies per image and category
        x, y = rng.uniform(0, 500, size=2)
        score = float(rng.uniform(0.1, 0.4))
        results.append(
            {"image_id": 1, "category_id": 3, "bbox": [x, y, 30.0, 30.0], "score": score}
        )
    result = evaluate_coco(coco_gt, results, stream=None)
    ev = reference(coco_gt, results)
    assert_matches_reference(result, ev)
    assert result.stats["AR100"] < 1.0  # image 1's true boxes were cut by maxDets


def test_detection_on_crowd_region_is_not_a_false_positive(coco_gt):
    on_crowd = perfect_results(0.9) + [
        {"image_id": 2, "category_id": 7, "bbox": list(map(float, CROWD_BOX)), "score": 0.99}
    ]
    result = evaluate_coco(coco_gt, on_crowd, stream=None)
    assert result.stats["AP"] == pytest.approx(1.0)
    assert_matches_reference(result, reference(coco_gt, on_crowd))

    elsewhere = perfect_results(0.9) + [
        {"image_id": 3, "category_id": 7, "bbox": list(map(float, CROWD_BOX)), "score": 0.99}
    ]
    assert evaluate_coco(coco_gt, elsewhere, stream=None).stats["AP"] < 1.0


def test_per_class_table_gives_zero_to_the_wrong_class(coco_gt):
    results = perfect_results()
    for r in results:
        if r["category_id"] == 7:
            r["bbox"] = [600.0, 440.0, 30.0, 30.0]  # far from every dog
    stream = io.StringIO()
    result = evaluate_coco(
        coco_gt,
        results,
        class_names=["kitty", "doggo", "birdie"],
        label_to_category_id={1: 3, 2: 7, 3: 12},
        stream=stream,
    )
    assert result.per_class["doggo"] == {"AP": 0.0, "AP50": 0.0}
    assert result.per_class["kitty"] == pytest.approx({"AP": 1.0, "AP50": 1.0})
    assert result.per_class["birdie"] == pytest.approx({"AP": 1.0, "AP50": 1.0})
    table_rows = {line.split()[0]: line.split()[1:] for line in stream.getvalue().splitlines()[-3:]}
    assert table_rows == {
        "kitty": ["1.000", "1.000"],
        "doggo": ["0.000", "0.000"],
        "birdie": ["1.000", "1.000"],
    }


def test_image_ids_restrict_evaluation_and_class_without_gt_is_nan(coco_gt):
    results = shifted_results(np.random.default_rng(3))
    result = evaluate_coco(coco_gt, results, image_ids=[2, NO_GT_IMAGE], stream=None)
    assert_matches_reference(result, reference(coco_gt, results, image_ids=[2, NO_GT_IMAGE]))
    assert math.isnan(result.per_class["bird"]["AP"])
    assert result.text.splitlines()[-1].split() == ["bird", "-", "-"]
    full = evaluate_coco(coco_gt, results, stream=None)
    assert full.stats["AP"] != result.stats["AP"]


def test_class_names_without_mapping_follow_category_id_order(coco_gt):
    result = evaluate_coco(coco_gt, perfect_results(), class_names=["a", "b", "c"], stream=None)
    assert list(result.per_class) == ["a", "b", "c"]
    with pytest.raises(FadError, match="class_names has 2 names"):
        evaluate_coco(coco_gt, [], class_names=["a", "b"], stream=None)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1.0}, "image_id 99"),
        ({"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 1.0}, "category_id 4"),
        ({"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}, "lacks key 'score'"),
        ({"image_id": 1, "category_id": 3, "bbox": [0, 0, 1], "score": 1.0}, "bbox"),
    ],
)
def test_bad_result_records_raise(coco_gt, record, message):
    with pytest.raises(FadError, match=message):
        evaluate_coco(coco_gt, perfect_results() + [record], stream=None)


def test_bad_image_ids_and_ground_truth_ids_raise(coco_gt):
    with pytest.raises(FadError, match="empty"):
        evaluate_coco(coco_gt, [], image_ids=[], stream=None)
    with pytest.raises(FadError, match="image 42"):
        evaluate_coco(coco_gt, [], image_ids=[1, 42], stream=None)
    coco_gt.dataset["annotations"][0]["id"] = 0
    quiet(coco_gt.createIndex)
    with pytest.raises(FadError, match="annotation id 0"):
        evaluate_coco(coco_gt, [], stream=None)


def test_summary_markdown_lists_the_twelve_numbers(coco_gt):
    result = evaluate_coco(coco_gt, shifted_results(np.random.default_rng(4)), stream=None)
    header, rule, values = summary_markdown(result).splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == list(STAT_NAMES)
    assert rule.count("|") == 13
    cells = [c.strip() for c in values.strip("|").split("|")]
    assert cells[0] == f"{result.stats['AP']:.3f}"
    result.stats["APs"] = -1.0
    assert summary_markdown(result).splitlines()[2].split("|")[4].strip() == "n/a"
