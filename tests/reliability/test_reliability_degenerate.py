"""Promise 17 (degenerate images): an image too elongated for the detector's resize (20000 x 2
shrinks to no height) and an image beyond the pixel budget are skipped and counted like
unreadable ones, in training, prediction, evaluation and `fad data check`; one of them never
stops a run."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from fad.cli import main
from fad.config import load_config
from fad.engine.train import run_training as train


def add_image(folder: Path, ann_file: Path, name: str, size: tuple[int, int], box=True) -> Path:
    """Save a grey `size` (width, height) image as `folder/name` and add it (with one box) to
    the COCO json."""
    path = folder / name
    Image.new("RGB", size, (128, 128, 128)).save(path)
    data = json.loads(ann_file.read_text())
    image_id = max(i["id"] for i in data["images"]) + 1
    data["images"].append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
    if box:
        ann_id = max(a["id"] for a in data["annotations"]) + 1
        category = data["categories"][0]["id"]
        bbox = [0, 0, min(size[0], 40), size[1]]
        data["annotations"].append(
            {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": bbox}
        )
    ann_file.write_text(json.dumps(data))
    return path


def keep_first_images(ann_file: Path, count: int) -> None:
    data = json.loads(ann_file.read_text())
    data["images"] = sorted(data["images"], key=lambda i: i["id"])[:count]
    ids = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    ann_file.write_text(json.dumps(data))


def pixel_bomb(path: Path, side: int = 13000) -> Path:
    """A grey PNG of side x side pixels in a few hundred KB (the header is all a reader sees)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_training_skips_and_counts_a_degenerate_image_and_finishes(
    shapes_config, fast_opts, shapes_copy
):
    keep_first_images(shapes_copy["train_json"], 3)
    thin = add_image(shapes_copy["train_dir"], shapes_copy["train_json"], "thin.jpg", (2000, 2))
    opts = fast_opts + ["DATASETS.TRAIN", f"('{shapes_copy['train']}',)"]
    opts += ["SOLVER.MAX_ITER", "4", "DATALOADER.MAX_BAD_IMAGE_FRACTION", "0.3"]
    result = train(load_config(shapes_config, opts), skip_test=True)
    assert result["train"]["iterations"] == 4
    log_text = (Path(result["output_dir"]) / "log.txt").read_text()
    assert (
        f"skipping degenerate training image (1 of 4 so far, 1 tolerated): degenerate "
        f"image {thin}: 2000x2 is too elongated" in log_text
    )


def test_a_degenerate_image_over_the_budget_stops_training_in_one_line(
    shapes_config, fast_opts, shapes_copy, capsys
):
    add_image(shapes_copy["train_dir"], shapes_copy["train_json"], "thin.jpg", (20000, 2))
    opts = fast_opts + ["DATASETS.TRAIN", f"('{shapes_copy['train']}',)", "SOLVER.MAX_ITER", "2"]
    assert main(["train", "--config-file", str(shapes_config), "--skip-test", *opts]) == 2
    err = capsys.readouterr().err
    assert "1 of 13 training images could not be read or used" in err and "thin.jpg" in err
    assert err.count("\n") == 1


@pytest.fixture
def predict_folder(tiny_shapes, tmp_path) -> tuple[Path, list[str]]:
    folder = tmp_path / "images"
    folder.mkdir()
    good = sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[:4]
    for src in good:
        shutil.copy(src, folder / src.name)
    return folder, [p.name for p in good]


def test_predict_skips_degenerate_and_oversized_images_and_writes_the_rest(
    tiny_weights, predict_folder, tmp_path, capsys
):
    folder, good = predict_folder
    Image.new("RGB", (20000, 2)).save(folder / "thin.png")
    pixel_bomb(folder / "zz_huge.png")
    out = tmp_path / "preds"
    argv = ["predict", str(tiny_weights), str(folder), "--out", str(out)]
    assert main([*argv, "MODEL.FCOS.INFERENCE_TH", "0.0"]) == 0
    result = json.loads((out / "predictions.json").read_text())
    assert result["predicted"] == 4 and result["images"] == 6
    errors = {Path(s["file_name"]).name: s["error"] for s in result["skipped"]}
    assert "thin.png" in errors and "is too elongated" in errors["thin.png"]
    assert "13000x13000 (169 megapixels), more than the 67 allowed" in errors["zz_huge.png"]
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(good)


def test_evaluation_skips_degenerate_images_counts_them_and_scores_the_rest(
    tiny_weights, fast_opts, shapes_config, shapes_copy
):
    thin = add_image(shapes_copy["val_dir"], shapes_copy["val_json"], "thin.jpg", (3000, 2))
    opts = fast_opts + ["DATASETS.TEST", f"('{shapes_copy['val']}',)"]
    opts += ["MODEL.WEIGHT", str(tiny_weights)]
    assert main(["eval", "--config-file", str(shapes_config), *opts]) == 0
    out = Path(fast_opts[fast_opts.index("OUTPUT_DIR") + 1])
    log_text = (out / "eval_log.txt").read_text()
    assert f"evaluation skips degenerate image {thin}" in log_text
    assert "1 degenerate image(s) of" in log_text
    results = json.loads(next((out / "inference").glob("*/bbox.json")).read_text())
    thin_id = max(i["id"] for i in json.loads(shapes_copy["val_json"].read_text())["images"])
    assert all(r["image_id"] != thin_id for r in results)


def test_data_check_reports_degenerate_and_oversized_images(shapes_copy, capsys):
    thin = add_image(shapes_copy["train_dir"], shapes_copy["train_json"], "thin.jpg", (20000, 2))
    huge = pixel_bomb(shapes_copy["train_dir"] / "000004.jpg")  # in place of a listed image
    assert main(["data", "check", shapes_copy["train"]]) == 2
    captured = capsys.readouterr()
    assert f"degenerate image {thin}: 20000x2 is too elongated" in captured.out
    assert f"unreadable: image {huge} is 13000x13000" in captured.out
    assert "1 of 13 images unreadable, 1 degenerate" in captured.out
    assert "2 of 13 training images are unreadable or degenerate" in captured.err
    assert main(["data", "check", shapes_copy["train"], "--max-bad-fraction", "0.2"]) == 0
