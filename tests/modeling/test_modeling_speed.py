"""MODEL.CHANNELS_LAST and MODEL.COMPILE change no value and no state-dict name: the same
losses and detections in channels_last (gradients up to float rounding), for the standard, FAD
and RetinaNet heads."""

from __future__ import annotations

import copy

import pytest
import torch

from fad.config import load_config
from fad.modeling.build import apply_speed_paths, build_detector
from fad.modeling.speed import compile_towers
from fad.search_space.genotype import PRESETS, ROLES

SMALL = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "64",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FCOS.NUM_CLASSES", "4",
    "MODEL.RETINANET.NUM_CLASSES", "4",
    "MODEL.BACKBONE.NORM", "BN",
    "INPUT.MIN_SIZE_TRAIN", "(64,)",
    "INPUT.MAX_SIZE_TRAIN", "96",
    "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "96",
    "MODEL.FCOS.INFERENCE_TH", "0.0",
]  # fmt: skip
HEADS = {
    "standard": [],
    "fad": ["MODEL.FAD_ON", "True"],
    "retinanet": [
        "MODEL.RETINANET_ON",
        "True",
        "MODEL.FCOS_ON",
        "False",
        "MODEL.RETINANET.INFERENCE_TH",
        "0.0",
    ],
}


def _pair(head: str):
    cfg = load_config(None, SMALL + HEADS[head])
    genotypes = dict(zip(ROLES, PRESETS["paper"], strict=True))
    torch.manual_seed(0)
    plain = build_detector(cfg, 3, genotypes if head == "fad" else None, load_weights=False)
    fast = copy.deepcopy(plain)
    cfg.defrost()
    cfg.MODEL.CHANNELS_LAST = True
    apply_speed_paths(fast, cfg)
    return plain, fast


def _data():
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 64, 96, generator=g), torch.rand(3, 60, 80, generator=g)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[20.0, 10.0, 70.0, 50.0]]), "labels": torch.tensor([3])},
    ]
    return images, targets


@pytest.mark.parametrize("head", list(HEADS))
def test_channels_last_gives_the_same_losses_gradients_and_detections(head):
    plain, fast = _pair(head)
    assert plain.state_dict().keys() == fast.state_dict().keys()
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
               and not p.is_contiguous() for p in fast.parameters())  # fmt: skip
    images, targets = _data()
    losses = {}
    for name, model in (("plain", plain), ("fast", fast)):
        out = model.train()(images, targets)
        sum(out.values()).backward()
        losses[name] = out
    for key, value in losses["plain"].items():
        torch.testing.assert_close(losses["fast"][key], value, rtol=1e-4, atol=1e-5)
    pairs = [
        (a.grad, b.grad)
        for a, b in zip(plain.parameters(), fast.parameters())
        if a.grad is not None
    ]
    expected_grads = torch.cat([a.flatten() for a, _ in pairs])
    found_grads = torch.cat([b.flatten() for _, b in pairs])
    # torch's CPU GroupNorm backward in channels_last rounds differently: the gradients of an
    # untrained detector differ by ~1 % overall; a wrong layout would be off by ~100 %
    error = float((found_grads - expected_grads).norm() / expected_grads.norm())
    assert error <= 0.05, error
    with torch.no_grad():
        expected = plain.eval()(images)
        found = fast.eval()(images)
    for e, f in zip(expected, found, strict=True):  # near-tied scores may swap their boxes
        assert len(f["scores"]) == len(e["scores"]) > 0
        torch.testing.assert_close(f["scores"].sort().values, e["scores"].sort().values)
        torch.testing.assert_close(f["boxes"][0], e["boxes"][0], rtol=1e-4, atol=1e-3)


def test_compiled_towers_keep_their_state_dict_names():
    plain, _ = _pair("fad")
    names = list(plain.state_dict())
    cfg = load_config(None, SMALL + ["MODEL.FAD_ON", "True", "MODEL.COMPILE", "True"])
    apply_speed_paths(plain, cfg)  # compiles lazily, at the first call: nothing runs here
    assert list(plain.state_dict()) == names
    assert not any("_orig_mod" in name for name in plain.state_dict())


class _Graphs:
    """A `torch.compile` backend that counts the graphs it is given and runs them as traced."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, graph: torch.fx.GraphModule, inputs: list) -> object:
        self.count += 1
        return graph.forward


@pytest.mark.parametrize("head", ["fad", "search", "retinanet"])
def test_compiled_towers_on_the_fused_path_are_one_graph_each_and_change_no_value(head):
    """MODEL.COMPILE compiles the call the head makes (all levels by the compute path): on the
    fused path each tower is one graph, in training and in inference, with the same losses,
    gradients and detections as the towers uncompiled."""
    search = ["MODEL.FAD_ON", "True", "MODEL.FAD.SEARCH", "True"]
    one_cell = ["MODEL.FAD.NUM_CELLS_BOX", "1", "MODEL.FAD.NUM_CELLS_CLS", "1"]
    opts = [*search, *one_cell] if head == "search" else HEADS[head]
    cfg = load_config(None, SMALL + opts)
    genotypes = dict(zip(ROLES, PRESETS["paper"], strict=True)) if head == "fad" else None
    torch.manual_seed(0)
    eager = build_detector(cfg, 3, genotypes, load_weights=False)
    apply_speed_paths(eager, cfg)  # the fused path, uncompiled
    compiled = copy.deepcopy(eager)
    torch._dynamo.reset()  # no graph of another test's towers
    graphs = _Graphs()
    compile_towers(compiled.head, backend=graphs)
    images, targets = _data()
    losses = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        out = model.train()(images, targets)
        sum(out.values()).backward()
        losses[name] = out
    assert graphs.count == 2  # box tower, cls tower: no graph break
    for key, value in losses["eager"].items():
        torch.testing.assert_close(losses["compiled"][key], value, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager.parameters(), compiled.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        expected, found = eager.eval()(images), compiled.eval()(images)
    assert graphs.count == 4  # the same two towers without autograd
    for e, f in zip(expected, found, strict=True):
        torch.testing.assert_close(f["scores"].sort().values, e["scores"].sort().values)
