"""Head latency: FAD heads (genotypes) against the standard head, on the plain and fused paths.

Detectors built from two configs (default: the demo's, ``configs/shapes/fcos_imprv_R_18_FPN_frozen
.yaml`` for the standard head and ``fad_imprv_R_18_FPN.yaml`` for the FAD heads: R-18 FPN, W=64,
2 cells of 3 nodes, C=32), random weights, eval mode, one image, eager. Each detector runs on
both compute paths (``MODEL.COMPUTE_PATH`` plain / fused); the FPN features are computed once per
detector and only the head is timed (the whole detector too, in its own column). The variants
run interleaved after a warmup; medians and ratios to the standard head on the plain path are
printed as a markdown table. Target (issue 23): FAD head <= 2x the standard head at the demo's
size, <= 1.1x at 800x1333 R-50; on a GPU <= 1.5x eager and <= 1.1x with ``--compile
reduce-overhead`` (CUDA graphs for the fixed input size; the compilation is not timed).

    python bench/head_latency.py [--size 128x160] [--genotypes paper FILE random:SEED ...]
        [--threads 1] [--device cpu|cuda] [--compile reduce-overhead] [--opts KEY VALUE ...]

``--trace`` adds, for each head and path, its TorchScript trace frozen (``torch.jit.freeze``):
the same ATen kernels with no Python between them and the weights' concatenations folded, the
bound that removing the Python of the towers could reach.

A genotype is a preset, a genotype file (e.g. a search's genotype.log) or ``random:SEED``, a
uniform draw of the space (`fad.search_space.random_genotype`). For the R-50 figures:
``--standard-config configs/coco/retinanet_R_50_FPN_1x.yaml --fad-config
configs/coco/fad_retinanet_R_50_FPN_1x.yaml --size 800x1333 --num-classes 80``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fad.config import load_config
from fad.modeling.build import apply_speed_paths, build_detector
from fad.search_space.genotype import ROLES, Genotype, load_genotypes
from fad.search_space.ops import space_ops
from fad.search_space.random_genotype import sample_genotype

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "configs" / "shapes"
SEARCHED = Path("/work/runs/e3_s0/genotype.log")  # a searched genotype of the demo, when present
PATHS = ("plain", "fused")
Model = tuple[torch.nn.Module, list[torch.Tensor]]


def genotypes(name: str, num_nodes: int, space: str) -> dict[str, Genotype]:
    """A preset, a file or ``random:SEED`` -> {"box": ..., "cls": ...}."""
    if name.startswith("random:"):
        g = torch.Generator().manual_seed(int(name.split(":", 1)[1]))
        return {role: sample_genotype(num_nodes, space_ops(space), g) for role in ROLES}
    return load_genotypes(name)


def build(config: Path, genotype: str | None, path: str, args: argparse.Namespace) -> Model:
    """The detector of ``config`` on compute path ``path`` and its FPN features of one image."""
    h, w = (int(v) for v in args.size.split("x"))
    size = ["INPUT.MIN_SIZE_TEST", str(min(h, w)), "INPUT.MAX_SIZE_TEST", str(max(h, w))]
    opts = [*size, "MODEL.COMPUTE_PATH", path, "MODEL.DEVICE", args.device, *args.opts]
    cfg = load_config(str(config), opts)
    fad = cfg.MODEL.FAD
    found = genotypes(genotype, fad.NUM_NODES_BOX, fad.SPACE) if genotype else None
    torch.manual_seed(0)
    model = build_detector(cfg, args.num_classes, found, load_weights=False).to(args.device).eval()
    apply_speed_paths(model, cfg)
    if args.compile:
        model.head = torch.compile(model.head, mode=args.compile, dynamic=False)
    image = [torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)).to(args.device)]
    with torch.no_grad():
        features = list(model.backbone(model.transform(image)[0].tensors).values())
    return model, features


class Traced(torch.nn.Module):
    """A head's frozen TorchScript trace on fixed features (``head`` takes the level list)."""

    def __init__(self, head: torch.nn.Module, features: list[torch.Tensor]) -> None:
        super().__init__()

        class Levels(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.head = head

            def forward(self, *levels: torch.Tensor):
                return self.head(list(levels))

        with torch.no_grad():
            trace = torch.jit.trace(
                Levels().eval(), tuple(features), check_trace=False, strict=False
            )
            self.frozen = torch.jit.freeze(trace)

    def head(self, features: list[torch.Tensor]):
        return self.frozen(*features)


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(models: dict[tuple[str, str], Model], args: argparse.Namespace) -> dict:
    """{(head, path): (median head seconds, median detector seconds)}, interleaved."""
    h, w = (int(v) for v in args.size.split("x"))
    image = [torch.rand(3, h, w, device=args.device)]
    head_times = {key: [] for key in models}
    total_times = {key: [] for key in models}
    with torch.no_grad():
        for i in range(args.warmup + args.repeats):
            for key, (model, features) in models.items():
                t_head = timed(lambda m=model, f=features: m.head(f))
                traced = isinstance(model, Traced)  # no detector around it
                t_total = float("nan") if traced else timed(lambda m=model: m(image))
                if i >= args.warmup:
                    head_times[key].append(t_head)
                    total_times[key].append(t_total)
    return {
        key: (statistics.median(head_times[key]), statistics.median(total_times[key]))
        for key in models
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--standard-config", type=Path, default=SHAPES / "fcos_imprv_R_18_FPN_frozen.yaml"
    )
    parser.add_argument("--fad-config", type=Path, default=SHAPES / "fad_imprv_R_18_FPN.yaml")
    default_genotypes = ["paper", str(SEARCHED) if SEARCHED.is_file() else "random:0"]
    parser.add_argument("--genotypes", nargs="+", default=default_genotypes)
    parser.add_argument("--size", default="128x160", help="HxW of the image")
    parser.add_argument("--num-classes", type=int, default=3, help="3: the shapes dataset")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", default="", help="torch.compile mode for the heads")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for both")
    parser.add_argument("--trace", action="store_true", help="add frozen TorchScript heads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = {"standard": (args.standard_config, None)}
    heads.update({f"FAD {g}": (args.fad_config, g) for g in args.genotypes})
    models = {
        (name, path): build(config, genotype, path, args)
        for name, (config, genotype) in heads.items()
        for path in PATHS
    }
    if args.trace:
        for (name, path), (model, features) in list(models.items()):
            models[f"{name} traced", path] = (Traced(model.head, features), features)
    times = measure(models, args)
    base_head, base_total = times["standard", "plain"]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    mode = f"heads compiled ({args.compile})" if args.compile else "eager"
    print(
        f"{args.fad_config.name} vs {args.standard_config.name}, batch 1, {args.size}, {device} "
        f"{mode}, "
        f"{torch.get_num_threads()} threads; median of {args.repeats} interleaved after "
        f"{args.warmup} warmup; ratios to the standard head on the plain path\n"
    )
    print("| head | path | head (ms) | head ratio | fused speed-up | detector (ms) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, path), (head, total) in times.items():
        speedup = times[name, "plain"][0] / head if (name, "plain") in times else float("nan")
        print(
            f"| {name} | {path} | {head * 1e3:.1f} | {head / base_head:.2f}x | {speedup:.2f}x "
            f"| {total * 1e3:.1f} | {total / base_total:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
