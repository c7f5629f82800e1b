"""MODEL.WEIGHT for the backbone: torchvision ImageNet weights by name, a URL, or a local file.

These machines may have no network: a weight that cannot be fetched is a clear error saying how to
provide the file or train from scratch, never a hang (downloads run under a socket timeout).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import torch
import torchvision
from torch import nn

from fad.errors import FadError
from fad.modeling.backbone import TORCHVISION_WEIGHTS
from fad.runtime.checkpoint import is_checkpoint, read_tensor_file

log = logging.getLogger("fad")
DOWNLOAD_TIMEOUT_S = 30.0


def is_local_file(weight: str) -> bool:
    return bool(weight) and "://" not in weight and Path(weight).exists()


def resolve_torchvision_weights(weight: str, arch: tuple[int, int, int]):
    """The torchvision weights enum member meant by `weight` for a backbone of `arch`.

    `ResNet50_Weights.IMAGENET1K_V1` names one directly; `torchvision://resnet50` a model's default;
    any other name (the original's `catalog://ImageNetPretrained/MSRA/R-50`, a caffe2 URL) maps to
    torchvision's ImageNet weights of the configured architecture (depth, groups, width).
    """
    if "_Weights." in weight:
        try:
            return torchvision.models.get_weight(weight)
        except (ValueError, KeyError, AttributeError) as exc:
            raise FadError(
                f"MODEL.WEIGHT {weight!r}: unknown torchvision weights ({exc})"
            ) from None
    if weight.startswith("torchvision://"):
        try:
            return torchvision.models.get_model_weights(weight[len("torchvision://") :]).DEFAULT
        except (ValueError, KeyError) as exc:
            raise FadError(f"MODEL.WEIGHT {weight!r}: unknown torchvision model ({exc})") from None
    name = TORCHVISION_WEIGHTS.get(arch)
    if name is None:
        raise FadError(
            f"MODEL.WEIGHT {weight!r}: torchvision has no ImageNet weights for depth {arch[0]}, "
            f"{arch[1]} groups x {arch[2]}; give a local file or set MODEL.WEIGHT ''"
        )
    log.info("MODEL.WEIGHT %s -> torchvision %s", weight, name)
    return torchvision.models.get_weight(name)


def fetch_torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    """Download (or read from torch hub's cache) a torchvision state dict, with a timeout."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights.get_state_dict(progress=False)
    except (OSError, RuntimeError, ValueError) as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise FadError(
            f"could not fetch {weights} from {weights.url} ({type(exc).__name__}: {exc}); "
            f"copy that file to {cache} or give its local path in MODEL.WEIGHT, or train from "
            "scratch with MODEL.WEIGHT '' MODEL.BACKBONE.NORM BN"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefixes = ("module.", "backbone.body.", "body.", "backbone.")
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_pretrained_backbone(body: nn.Module, weight: str, arch: tuple[int, int, int]) -> None:
    """Load pretrained (ImageNet or any) weights into the ResNet body; mismatches are logged."""
    if not weight:
        return
    if is_local_file(weight):
        if Path(weight).suffix == ".pkl":
            raise FadError(
                f"MODEL.WEIGHT {weight}: caffe2 .pkl files are pickles and are not loaded; use "
                "torchvision weights (e.g. ResNet50_Weights.IMAGENET1K_V1) or a .pth state dict"
            )
        state = read_tensor_file(Path(weight), "MODEL.WEIGHT")
        if is_checkpoint(state):  # a fad checkpoint: take its backbone's ResNet body only
            state = {k: v for k, v in state["model"].items() if k.startswith("backbone.body.")}
        if not isinstance(state, dict):
            raise FadError(f"MODEL.WEIGHT {weight}: not a state dict")
        source = weight
    elif (
        "://" in weight
        and weight.split("://")[0] in ("http", "https")
        and "_Weights." not in weight
    ):
        state = fetch_url(weight) if not weight.endswith(".pkl") else None
        if state is None:
            weights = resolve_torchvision_weights(weight, arch)
            state, source = fetch_torchvision_state_dict(weights), str(weights)
        else:
            source = weight
    elif Path(weight).suffix in (".pth", ".pt") or "/" in weight and "://" not in weight:
        raise FadError(f"MODEL.WEIGHT {weight}: file not found")
    else:
        weights = resolve_torchvision_weights(weight, arch)
        state, source = fetch_torchvision_state_dict(weights), str(weights)
    state = {k: v for k, v in _strip_prefixes(state).items() if not k.startswith("fc.")}
    own = body.state_dict()
    shape_mismatch = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in shape_mismatch:
        state.pop(key)
    result = body.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys or shape_mismatch:
        log.warning(
            "backbone weights %s: %d missing keys %s, %d unexpected keys %s, %d wrong shapes %s",
            source,
            len(missing),
            missing[:8],
            len(result.unexpected_keys),
            result.unexpected_keys[:8],
            len(shape_mismatch),
            shape_mismatch[:8],
        )
    else:
        log.info("backbone weights loaded from %s", source)


def fetch_url(url: str) -> dict[str, torch.Tensor]:
    """A state dict from an http(s) URL (torch hub cache first), safely and with a timeout."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, weights_only=True
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise FadError(
            f"could not fetch MODEL.WEIGHT {url} ({type(exc).__name__}: {exc}); download it "
            "elsewhere and give its local path, or set MODEL.WEIGHT '' to train from scratch"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
