"""Inference latency: FCOS with the paper's FAD towers (C=96) vs the standard FCOS head.

Both detectors share the backbone (ResNet-50 FPN by default, random weights: latency does not
depend on them), run in eval mode on one image, interleaved (warmup, then median of repeats).
Reports the whole-detector latency ratio (target <= 1.1x) and the head-only ratio, at 800x1333
and at a small input, as a markdown table. With ``--compile`` both heads go through
``torch.compile`` first (the compilation is not timed): on a CPU it fuses the FAD cells' many small
GroupNorm/ReLU/add steps, which eager mode runs one kernel at a time. Both detectors run on the
fused compute path (``MODEL.COMPUTE_PATH`` fused); the last column times the FAD head on the plain
path (its modules level by level). ``bench/head_latency.py`` does the same from config files.

    python bench/inference.py [--sizes 800x1333 320x512] [--repeats 5] [--genotype paper] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fad.config import load_config
from fad.modeling.build import build_detector
from fad.search_space.genotype import load_genotypes
from fad.search_space.paths import use_compute_path


def build(args: argparse.Namespace, fad: bool, path: str = "fused") -> torch.nn.Module:
    opts = [
        "MODEL.BACKBONE.CONV_BODY",
        args.conv_body,
        "MODEL.FAD.NUM_CHANNELS_BOX",
        str(args.channels),
        "MODEL.FAD.NUM_CHANNELS_CLS",
        str(args.channels),
        "MODEL.FAD_ON",
        str(fad),
        "INPUT.MAX_SIZE_TEST",
        "4000",
    ]
    cfg = load_config(None, opts)
    genotypes = load_genotypes(args.genotype) if fad else None
    model = build_detector(cfg, 80, genotypes, load_weights=False).to(args.device).eval()
    use_compute_path(model, path)
    if args.compile:
        model.head = torch.compile(model.head, dynamic=False)
    return model


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--conv-body", default="R-50-FPN-RETINANET")
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--genotype", default="paper")
    parser.add_argument("--sizes", nargs="+", default=["800x1333", "320x512"])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile both heads first")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    models = {
        "standard": build(args, False),
        "FAD": build(args, True),
        "FAD plain": build(args, True, "plain"),
    }
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"{args.conv_body}, genotype {args.genotype}, C={args.channels}, on {device_name} "
        f"({'heads compiled' if args.compile else 'eager'}, "
        f"{torch.get_num_threads()} threads); median of {args.repeats} after {args.warmup} warmup\n"
    )
    print(
        "| input | standard (ms) | FAD (ms) | FAD / standard | standard head (ms) | FAD head (ms) "
        "| head ratio | FAD head, plain path (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    variants = list(models)
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        image = [torch.rand(3, h, w, device=args.device)]
        for model in models.values():
            model.transform.min_size, model.transform.max_size = (min(h, w),), max(h, w)
        with torch.no_grad():
            features = {
                k: list(m.backbone(m.transform(image)[0].tensors).values())
                for k, m in models.items()
            }
            total = {v: [] for v in variants}
            head = {v: [] for v in variants}
            for i in range(args.warmup + args.repeats):
                for variant in variants:
                    model = models[variant]
                    t_total = timed(lambda m=model, x=image: m(x), args.device)
                    t_head = timed(lambda m=model, f=features[variant]: m.head(f), args.device)
                    if i >= args.warmup:
                        total[variant].append(t_total)
                        head[variant].append(t_head)
        t = {k: statistics.median(v) * 1e3 for k, v in total.items()}
        hd = {k: statistics.median(v) * 1e3 for k, v in head.items()}
        modules_head = hd["FAD plain"]
        print(
            f"| {h}x{w} | {t['standard']:.0f} | {t['FAD']:.0f} | {t['FAD'] / t['standard']:.2f}x | "
            f"{hd['standard']:.0f} | {hd['FAD']:.0f} | {hd['FAD'] / hd['standard']:.2f}x | "
            f"{modules_head:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
