"""Promise 11 (distributed evaluation: every image exactly once) and promise 6 (a genotype that
disagrees with the weights names the tower that differs), for `fad eval`."""

from __future__ import annotations

import pytest
import torch

import fad.engine.evaluate as evaluate_module
from fad.cli import main
from fad.config import load_config
from fad.data.samplers import InferenceSampler
from fad.engine.trained_model import checkpoint_meta
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import save_checkpoint
from fad.search_space.genotype import load_genotypes


def _det(score: float) -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(1, 4), "scores": torch.tensor([score]), "labels": torch.ones(1)}


def _gathered(monkeypatch, parts: list[dict]) -> None:
    monkeypatch.setattr(evaluate_module, "all_gather_objects", lambda local: parts)


def test_shards_cover_every_image_once_and_the_gather_checks_it(monkeypatch):
    ids = [11, 12, 13, 14, 15]
    shards = [[ids[i] for i in InferenceSampler(5, rank=r, world_size=3)] for r in range(3)]
    assert sorted(sum(shards, [])) == ids
    parts = [{i: _det(0.5) for i in shard} for shard in shards]
    _gathered(monkeypatch, parts)
    assert sorted(evaluate_module.gather_detections(parts[0], ids)) == ids

    _gathered(monkeypatch, [parts[0], parts[1]])  # a rank's shard lost
    with pytest.raises(FadError, match=r"1 images were not evaluated, e.g. \[13\]"):
        evaluate_module.gather_detections(parts[0], ids)
    _gathered(monkeypatch, [parts[0], {**parts[1], 11: _det(0.9)}, parts[2]])
    with pytest.raises(FadError, match="image 11 was evaluated twice"):
        evaluate_module.gather_detections(parts[0], ids)


@pytest.fixture
def paper_weights(fast_opts, shapes_config, tmp_path):
    """Weights of a detector with the towers of the 'paper' genotype, as `fad train` saves them."""
    cfg = load_config(shapes_config, fast_opts + ["MODEL.FAD_ON", "True"])
    genotypes = load_genotypes("paper")
    model = build_detector(cfg, 5, genotypes, load_weights=False)
    names = ["circle", "square", "triangle", "star", "cross"]
    meta = checkpoint_meta(cfg, names, genotypes, "train", [1, 3, 5, 7, 9])
    payload = {"model": model.state_dict(), "meta": meta.to_dict()}
    return save_checkpoint(tmp_path / "paper", "model_final.pth", payload)


def _eval(shapes_config, fast_opts, weights, *flags) -> int:
    opts = [*fast_opts, "MODEL.WEIGHT", str(weights)]
    return main(["eval", *flags, "--config-file", str(shapes_config), *opts])


def test_genotype_that_differs_from_the_trained_one_names_the_tower(
    paper_weights, shapes_config, fast_opts, capsys
):
    assert _eval(shapes_config, fast_opts, paper_weights, "--genotype", "alt") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # both towers differ; the first is named with both genotypes
    assert f"the box tower of the given genotype differs from the one {paper_weights}" in err
    paper, alt = load_genotypes("paper")["box"], load_genotypes("alt")["box"]
    assert f"given {alt} vs trained {paper}" in err


def test_genotype_given_for_standard_weights_is_an_error(
    tiny_weights, shapes_config, fast_opts, capsys
):
    assert _eval(shapes_config, fast_opts, tiny_weights, "--genotype", "paper") == 2
    err = capsys.readouterr().err
    assert f"{tiny_weights} has a standard box tower, but a box genotype was given" in err
