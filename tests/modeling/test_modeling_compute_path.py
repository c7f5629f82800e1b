"""MODEL.COMPUTE_PATH on whole detectors: the fused path gives the plain path's losses and
gradients (float32, 1e-4 relative) for FCOS and RetinaNet with standard, genotype and search
towers (DARTS, GDAS's sampled ops, PC-DARTS's partial channels and edge weights, without 'none'),
the same parameters and state-dict names, and checkpoints that load across the two paths."""

from __future__ import annotations

import copy

import pytest
import torch

from fad.config import load_config
from fad.modeling.build import apply_speed_paths, build_detector
from fad.search_space.genotype import PRESETS, ROLES
from fad.search_space.relaxation import GumbelSample
from fad.search_space.towers import SearchTower, Tower

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FCOS.NUM_CLASSES", "4",
    "MODEL.RETINANET.NUM_CLASSES", "4",
    "MODEL.BACKBONE.CONV_BODY", "R-18-FPN-RETINANET",
    "MODEL.BACKBONE.NORM", "FrozenBN",
    "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "160",
]  # fmt: skip
RETINANET = ["MODEL.RETINANET_ON", "True", "MODEL.FCOS_ON", "False"]
SEARCH = ["MODEL.FAD_ON", "True", "MODEL.FAD.SEARCH", "True"]
PC_DARTS = ["MODEL.FAD.PARTIAL_CHANNELS", "4", "MODEL.FAD.EDGE_NORMALIZATION", "True"]
CASES = {
    "FCOS standard": [],
    "FCOS genotype": ["MODEL.FAD_ON", "True"],
    "FCOS search, DARTS": SEARCH,
    "FCOS search, GDAS": SEARCH,
    "FCOS search, PC-DARTS, no 'none'": [*SEARCH, *PC_DARTS, "MODEL.FAD.SEARCH_NONE", "False"],
    "RetinaNet standard": RETINANET,
    "RetinaNet genotype": [*RETINANET, "MODEL.FAD_ON", "True"],
    "RetinaNet search, DARTS": [*RETINANET, *SEARCH, "MODEL.FAD.DECOUPLE_INIT", "identity"],
}


def _gdas(model: torch.nn.Module) -> None:
    """Every search tower samples one op per edge from the same seeded draw on both paths."""
    for module in model.modules():
        if isinstance(module, SearchTower):
            module.relaxation = GumbelSample(1.0, torch.Generator().manual_seed(5))


def _pair(case: str):
    cfg = load_config(None, SMALL + CASES[case])
    genotypes = dict(zip(ROLES, PRESETS["paper"], strict=True)) if "genotype" in case else None
    torch.manual_seed(0)
    plain = build_detector(cfg, 3, genotypes, load_weights=False)
    fused = copy.deepcopy(plain)
    cfg.defrost()
    cfg.MODEL.COMPUTE_PATH = "plain"
    apply_speed_paths(plain, cfg)
    cfg.MODEL.COMPUTE_PATH = "fused"
    apply_speed_paths(fused, cfg)
    if "GDAS" in case:
        _gdas(plain)
        _gdas(fused)
    return plain, fused


def _losses(
    model: torch.nn.Module, dtype: torch.dtype = torch.float32, nudge: float = 0.0
) -> dict[str, torch.Tensor]:
    """One training forward and backward in ``dtype`` (the images times 1 + ``nudge``)."""
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 128, 160, generator=g), torch.rand(3, 120, 150, generator=g)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[20.0, 10.0, 70.0, 50.0]]), "labels": torch.tensor([3])},
    ]
    for target in targets:
        target["boxes"] = target["boxes"].to(dtype)
    images = [image.to(dtype) * (1 + nudge) for image in images]
    out = model.to(dtype).train()(images, targets)
    sum(out.values()).backward()
    return {k: v.detach() for k, v in out.items()}


def _run(model: torch.nn.Module, dtype: torch.dtype, nudge: float = 0.0):
    """(losses, {name: gradient}) of `_losses` on a copy of ``model``."""
    model = copy.deepcopy(model)
    losses = _losses(model, dtype, nudge)
    return losses, {name: p.grad for name, p in model.named_parameters()}


def _grad_error(found: dict, expected: dict) -> float:
    """The largest gradient difference relative to the largest gradient of the model (a
    gradient that is zero in exact arithmetic, e.g. a conv bias before GroupNorm, is rounding
    noise of either path); parameters without a gradient must match."""
    assert [k for k, g in found.items() if g is None] == [
        k for k, g in expected.items() if g is None
    ]
    pairs = [(found[k], g) for k, g in expected.items() if g is not None]
    scale = max(float(g.abs().max()) for _, g in pairs)
    return max(float((a.double() - b.double()).abs().max()) for a, b in pairs) / scale


@pytest.mark.parametrize("case", list(CASES))
def test_the_fused_path_gives_the_plain_losses_and_gradients(case: str) -> None:
    """Losses equal to 1e-10 (float64) and 1e-4 (float32); float64 gradients as close to the
    plain path's as the plain path's own are to themselves when the images move by 1e-15.

    That yardstick, not a fixed tolerance: a random search supernet on the demo's small levels
    (2x3, 1x2) is so ill-conditioned (GroupNorm of a few nearly equal values) that a 1e-13
    nudge of the images moves its float64 gradients by more than their size; standard and
    genotype towers stay within ~1e-10 (`tests/search_space/test_search_space_fused.py` pins
    every tower kind to 1e-10 on well-conditioned levels)."""
    plain, fused = _pair(case)
    towers = [m for m in fused.modules() if isinstance(m, Tower)]
    assert towers and all(t.compute_path is not None for t in towers)  # the path is in use
    assert all(t.compute_path is None for t in plain.modules() if isinstance(t, Tower))
    reference, exact = _run(plain, torch.float64), _run(fused, torch.float64)
    for key, value in reference[0].items():
        torch.testing.assert_close(exact[0][key], value, rtol=1e-10, atol=1e-12)
    sensitivity = _grad_error(_run(plain, torch.float64, 1e-15)[1], reference[1])
    assert _grad_error(exact[1], reference[1]) <= 10 * sensitivity + 1e-10
    plain32, fused32 = _run(plain, torch.float32), _run(fused, torch.float32)
    for key, value in plain32[0].items():
        torch.testing.assert_close(fused32[0][key], value, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", ["FCOS search, PC-DARTS, no 'none'", "RetinaNet genotype"])
def test_checkpoints_load_across_paths_with_the_same_parameters(case: str, tmp_path) -> None:
    plain, fused = _pair(case)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in fused.parameters())
    with torch.no_grad():
        for p in fused.head.parameters():
            p.mul_(1.01)  # a state the plain model does not already hold
    torch.save(fused.state_dict(), tmp_path / "fused.pth")
    plain.load_state_dict(torch.load(tmp_path / "fused.pth", weights_only=True), strict=True)
    for (name, a), b in zip(plain.state_dict().items(), fused.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    key = "loss_cls" if "FCOS" in case else "loss_retina_cls"
    torch.testing.assert_close(_losses(fused)[key], _losses(plain)[key], rtol=1e-4, atol=1e-6)
