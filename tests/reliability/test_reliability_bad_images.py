"""Promise 9 (images): in training a corrupt or missing image is skipped (replaced by the next
readable one, so resume stays exact) and its path counted and logged; more unreadable images than
DATALOADER.MAX_BAD_IMAGE_FRACTION allows stop the run with a clear error. In evaluation an
unreadable image is a one-line error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.config import load_config
from fad.data.build import TrainLoaderOptions, build_datasets, build_train_loader
from fad.data.robust import SKIPPED, BadImageBudget, SkipUnreadable
from fad.data.samplers import IterationBatchSampler
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.runtime.logger import setup_logger


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garbage(path: Path) -> None:
    path.write_bytes(b"<html>404 not found</html>" * 40)


def _sampled(n: int, max_iter: int, seed: int = 0) -> list[int]:
    """Dataset indices in the order the loader (no aspect grouping, batch 2) draws them."""
    sampler = IterationBatchSampler(n, 2, max_iter, seed=seed)
    return [i for batch in sampler for i in batch]


@pytest.fixture
def damaged(shapes_copy) -> dict:
    """The copied train set with three sampled images spoilt: truncated, garbage, deleted."""
    (dataset,) = build_datasets([shapes_copy["train"]], train=True, flip_prob=0.0)
    order = list(dict.fromkeys(_sampled(len(dataset), 3)))
    bad = {"truncated": order[0], "garbage": order[2], "deleted": order[4]}
    paths = {k: dataset.img_dir / dataset.get_img_info(i)["file_name"] for k, i in bad.items()}
    _truncate(paths["truncated"])
    _garbage(paths["garbage"])
    paths["deleted"].unlink()
    return {"dataset": dataset, "bad": bad, "paths": paths, "name": shapes_copy["train"]}


def _loader(damaged, *, fraction=0.3, max_iter=6, start_iter=0, workers=0):
    options = TrainLoaderOptions(
        images_per_batch=2,
        max_iter=max_iter,
        start_iter=start_iter,
        aspect_ratio_grouping=False,
        num_workers=workers,
        max_bad_fraction=fraction,
    )
    return build_train_loader([damaged["dataset"]], options)


def _replacement(index: int, bad: set[int], n: int) -> int:
    while index in bad:
        index = (index + 1) % n
    return index


def test_unreadable_images_are_replaced_by_the_next_readable_one_and_logged(damaged, tmp_path):
    setup_logger(tmp_path)
    dataset, bad = damaged["dataset"], set(damaged["bad"].values())
    loader = _loader(damaged)
    ids = [t["image_id"] for _, targets in loader for t in targets]
    n = len(dataset)
    expected = [dataset.image_ids[_replacement(i, bad, n)] for i in _sampled(n, 6)]
    assert ids == expected
    assert set(loader.budget.bad) == bad  # each counted once, though drawn more often
    text = (tmp_path / "log.txt").read_text()
    for path in damaged["paths"].values():
        assert str(path) in text
    assert text.count("skipping unreadable training image") == 3
    assert "image not found" in text and "truncated" in text


def test_batches_after_resume_equal_the_uninterrupted_ones_with_bad_images(damaged):
    straight = list(_loader(damaged))
    resumed = list(_loader(damaged, start_iter=3))
    assert len(resumed) == 3
    for (images_a, targets_a), (images_b, targets_b) in zip(straight[3:], resumed):
        assert [t["image_id"] for t in targets_a] == [t["image_id"] for t in targets_b]
        assert all(torch.equal(a, b) for a, b in zip(images_a, images_b))
        assert all(SKIPPED not in t for t in targets_a + targets_b)


def test_skipped_images_are_counted_in_the_main_process_with_workers(damaged):
    in_process = [t["image_id"] for _, ts in _loader(damaged) for t in ts]
    loader = _loader(damaged, workers=1)
    assert [t["image_id"] for _, ts in loader for t in ts] == in_process
    assert set(loader.budget.bad) == set(damaged["bad"].values())


def test_too_many_unreadable_images_stop_the_run(damaged):
    with pytest.raises(FadError) as err:  # the missing file is known before the first batch
        _loader(damaged, fraction=0.0)
    message = str(err.value)
    assert "1 of 12 training images could not be read" in message
    assert "DATALOADER.MAX_BAD_IMAGE_FRACTION (0.0)" in message
    assert str(damaged["paths"]["deleted"]) in message
    with pytest.raises(FadError, match="3 of 12 training images could not be read"):
        list(_loader(damaged, fraction=0.2))  # 2 tolerated; the third one stops it


class _Flaky(torch.utils.data.Dataset):
    """Ten samples; those in `bad` raise FadError like an unreadable image."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        if index in self.bad:
            raise FadError(f"cannot read image {index}.jpg")
        return torch.zeros(3, 2, 2), {"image_id": index}


def test_a_long_run_of_unreadable_images_never_reaches_the_model():
    budget = BadImageBudget(10, 0.15)  # one tolerated
    dataset = SkipUnreadable(_Flaky({3, 4, 5}), budget.limit + 1)
    assert dataset[2][1] == {"image_id": 2}
    image, target = dataset[5]
    assert target["image_id"] == 6 and [i for i, _ in target[SKIPPED]] == [5]
    image, target = dataset[3]  # two unreadable in a row: more than tolerated
    assert target["image_id"] == -1 and [i for i, _ in target[SKIPPED]] == [3, 4]
    with pytest.raises(FadError, match="2 of 10 training images could not be read"):
        budget.check([target])
    wrapped = SkipUnreadable(_Flaky({9}), 2)
    assert wrapped[9][1]["image_id"] == 0  # wraps around to the start
    assert [i for i, _ in wrapped[9][1][SKIPPED]] == [9]


def test_fad_train_skips_bad_images_logs_them_and_saves_the_config(
    damaged, shapes_config, fast_opts
):
    opts = fast_opts + ["DATASETS.TRAIN", f"('{damaged['name']}',)", "SOLVER.MAX_ITER", "3"]
    opts += [
        "DATALOADER.ASPECT_RATIO_GROUPING",
        "False",
        "DATALOADER.MAX_BAD_IMAGE_FRACTION",
        "0.3",
    ]
    cfg = load_config(shapes_config, opts)
    result = train(cfg, skip_test=True)
    out = Path(cfg.OUTPUT_DIR)
    assert result["train"]["iterations"] == 3 and (out / "model_final.pth").is_file()
    log = (out / "log.txt").read_text()
    for path in damaged["paths"].values():
        assert str(path) in log
    # promise 8: the data report is printed at start; promise 7: the resolved config is saved
    assert f"data report: {damaged['dataset'].report_text()}" in log
    assert log.index("data report") < log.index("iter 1/3")
    saved = load_config(out / "config.yaml")
    assert saved.dump() == cfg.dump()


def test_fad_train_stops_with_one_line_error_above_the_fraction(
    damaged, shapes_config, fast_opts, capsys
):
    opts = fast_opts + ["DATASETS.TRAIN", f"('{damaged['name']}',)", "SOLVER.MAX_ITER", "3"]
    code = main(["train", "--config-file", str(shapes_config), *opts])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "training images could not be read" in err and "MAX_BAD_IMAGE_FRACTION (0.01)" in err


@pytest.mark.parametrize("spoil", ["truncate", "garbage", "delete"])
def test_fad_eval_stops_on_an_unreadable_image_naming_it(
    spoil, shapes_copy, shapes_config, fast_opts, tiny_weights, capsys
):
    (dataset,) = build_datasets([shapes_copy["val"]], train=False)
    path = dataset.img_dir / dataset.get_img_info(3)["file_name"]
    {"truncate": _truncate, "garbage": _garbage, "delete": Path.unlink}[spoil](path)
    opts = fast_opts + ["DATASETS.TEST", f"('{shapes_copy['val']}',)"]
    code = main(
        ["eval", "--config-file", str(shapes_config), *opts, "MODEL.WEIGHT", str(tiny_weights)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("fad eval: error: ") and str(path) in err


@pytest.mark.slow
def test_an_unreadable_image_met_by_one_process_stops_both(
    shapes_copy, shapes_config, fast_opts, tmp_path, two_ranks
):
    (dataset,) = build_datasets([shapes_copy["train"]], train=True, flip_prob=0.0)
    first_of_rank_1 = next(iter(IterationBatchSampler(len(dataset), 1, 3, rank=1, world_size=2)))
    path = dataset.img_dir / dataset.get_img_info(first_of_rank_1[0])["file_name"]
    _garbage(path)
    opts = fast_opts + ["DATASETS.TRAIN", f"('{shapes_copy['train']}',)", "SOLVER.MAX_ITER", "3"]
    opts += ["DATALOADER.ASPECT_RATIO_GROUPING", "False", "DATALOADER.MAX_BAD_IMAGE_FRACTION", "0"]
    results = two_ranks(["-m", "fad", "train", "--config-file", str(shapes_config), *opts])
    assert [code for code, _, _ in results] == [2, 2], results
    rank0, rank1 = (err for _, _, err in results)
    assert "1 of 12 training images could not be read" in rank1 and str(path) in rank1
    assert "another process met more unreadable training images" in rank0
    assert not list((tmp_path / "out").glob("model_*.pth"))  # stopped before any step
