"""Loaders and transforms end to end on a tiny generated shapes set."""

from __future__ import annotations

import pytest
import torch

from fad.data.build import (
    TrainLoaderOptions,
    build_datasets,
    build_test_loader,
    build_train_loader,
    collate,
)
from fad.data.shapes import generate_shapes
from fad.data.transforms import RandomHorizontalFlip, build_transforms
from fad.errors import FadError


@pytest.fixture(scope="module")
def shapes_names(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixture") / "shapes"
    generate_shapes(root, seed=4, num_train=6, num_val=5, min_size=40, max_size=64)
    ann = root / "annotations"
    return f"{root}/train@{ann}/instances_train.json", f"{root}/val@{ann}/instances_val.json"


def test_train_loader_yields_lists_for_the_remaining_iterations(shapes_names):
    datasets = build_datasets([shapes_names[0], shapes_names[0]], train=True)
    options = TrainLoaderOptions(images_per_batch=2, max_iter=5, start_iter=2, seed=1)
    loader = build_train_loader(datasets, options)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3  # one aspect-ratio group per batch
    for images, targets in batches:
        assert len(images) == len(targets) == 2
        for image, target in zip(images, targets, strict=True):
            assert image.dim() == 3 and image.shape[0] == 3 and image.dtype == torch.float32
            assert target["boxes"].shape[1] == 4 and len(target["boxes"]) == len(target["labels"])
            assert 1 <= target["labels"].min() and target["labels"].max() <= 5
        assert len({im.shape[2] >= im.shape[1] for im in images}) == 1


def test_train_loader_requires_matching_classes(shapes_names, tmp_path):
    (tmp_path / "imgs").mkdir()
    other = tmp_path / "other.json"
    other.write_text(
        '{"images": [{"id": 1, "file_name": "x.jpg", "width": 9, "height": 9}],'
        ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],'
        ' "categories": [{"id": 1, "name": "thing"}]}'
    )
    datasets = build_datasets([shapes_names[0], f"{tmp_path}/imgs@{other}"], train=True)
    with pytest.raises(FadError, match="disagree on classes"):
        build_train_loader(datasets, TrainLoaderOptions(images_per_batch=1, max_iter=1))


def test_test_loader_shards_cover_every_image_once(shapes_names):
    (dataset,) = build_datasets([shapes_names[1]], train=False)
    seen = []
    for rank in range(2):
        loader = build_test_loader(dataset, images_per_batch=2, rank=rank, world_size=2)
        for images, targets in loader:
            assert len(images) == len(targets) <= 2
            seen += [t["image_id"] for t in targets]
    assert sorted(seen) == sorted(dataset.image_ids) and len(seen) == 5


def test_flip_mirrors_image_and_boxes():
    image = torch.arange(2 * 10, dtype=torch.float32).reshape(1, 2, 10).expand(3, 2, 10)
    target = {"boxes": torch.tensor([[1.0, 0.0, 4.0, 2.0]]), "labels": torch.tensor([3])}
    flipped, out = RandomHorizontalFlip(1.0)(image, target)
    assert torch.equal(flipped[:, :, 0], image[:, :, -1])
    assert out["boxes"].tolist() == [[6.0, 0.0, 9.0, 2.0]] and out["labels"].tolist() == [3]
    same, kept = RandomHorizontalFlip(0.0)(image, target)
    assert same is image and kept["boxes"] is target["boxes"]
    with pytest.raises(FadError, match="probability"):
        RandomHorizontalFlip(1.5)


def test_train_transforms_are_deterministic_given_the_torch_seed(shapes_names):
    (dataset,) = build_datasets([shapes_names[0]], train=True, flip_prob=0.5)
    assert build_transforms(False).transforms[-1].__class__.__name__ == "ToTensor"

    def boxes_over_epoch():
        torch.manual_seed(123)
        return [dataset[i][1]["boxes"] for i in range(len(dataset))]

    first, second = boxes_over_epoch(), boxes_over_epoch()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.manual_seed(0)
    flips = {bool(torch.equal(dataset[0][1]["boxes"], first[0])) for _ in range(12)}
    assert flips == {True, False}  # sometimes flipped, sometimes not


def test_collate_keeps_lists():
    batch = [(torch.zeros(3, 4, 5), {"image_id": 1}), (torch.zeros(3, 6, 2), {"image_id": 2})]
    images, targets = collate(batch)
    assert [im.shape[1] for im in images] == [4, 6] and [t["image_id"] for t in targets] == [1, 2]


def test_empty_name_list_is_an_error():
    with pytest.raises(FadError):
        build_datasets([], train=True)
