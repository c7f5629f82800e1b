"""Export cost and latency: `fad export` to ONNX and TorchScript, and the files' CPU latency next
to the PyTorch detector's, for the standard FCOS head and the paper's FAD towers.

Each detector (random weights, saved as `fad train` saves one) is exported in both formats by
`export_detector` (timed, its check on sample images included); then PyTorch (`fad.load`),
onnxruntime and TorchScript run one image of the export size, interleaved (warmup, then the
median of repeats), all on `--threads` CPU threads. Prints a markdown table.

    python bench/export.py                                   # the demo's R-18, FPN 64, 128x160
    python bench/export.py --conv-body R-50-FPN-RETINANET --width 256 --channels 128 --size 800x1333
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

import fad
from fad.commands.common import parse_size
from fad.config import load_config
from fad.engine.export import SIDE_RANGE, export_detector, sample_images
from fad.engine.exported import INPUT_NAME, ExportedDetector
from fad.engine.trained import checkpoint_meta
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import save_checkpoint
from fad.search_space.genotype import load_genotypes

CLASSES = 80


def write_weights(folder: Path, args: argparse.Namespace, genotype: str | None) -> Path:
    """A randomly initialised detector saved as `fad train` saves one."""
    opts = ["MODEL.BACKBONE.CONV_BODY", args.conv_body, "MODEL.FAD_ON", str(genotype is not None)]
    opts += ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", str(args.width)]
    opts += ["MODEL.FAD.NUM_CHANNELS_BOX", str(args.channels)]
    opts += ["MODEL.FAD.NUM_CHANNELS_CLS", str(args.channels)]
    opts += ["MODEL.FCOS.INFERENCE_TH", str(args.threshold)]
    opts += ["INPUT.MIN_SIZE_TEST", str(min(args.size)), "INPUT.MAX_SIZE_TEST", str(max(args.size))]
    cfg = load_config(None, opts)
    genotypes = load_genotypes(genotype) if genotype else None
    torch.manual_seed(0)
    model = build_detector(cfg, CLASSES, genotypes, load_weights=False)
    names = [f"class{i}" for i in range(CLASSES)]
    meta = checkpoint_meta(cfg, names, genotypes, "train", range(1, CLASSES + 1))
    return save_checkpoint(
        folder, "model_final.pth", {"model": model.state_dict(), "meta": meta.to_dict()}
    )


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_head(folder: Path, args: argparse.Namespace, genotype: str | None) -> dict[str, float]:
    weights = write_weights(folder, args, genotype)
    row: dict[str, float] = {}
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        report = export_detector(weights, fmt, folder / name, args.size)
        row[f"{fmt} export s"] = report.seconds
        row[f"{fmt} MiB"] = report.file_bytes / 2**20
        row[f"{fmt} detections checked"] = report.detections
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options)
    scripted = ExportedDetector.open(folder / "model.pt")
    model = fad.load(weights)
    image = sample_images(args.size)[0]
    runs = {
        "pytorch": lambda: model([image]),
        "onnxruntime": lambda: session.run(None, {INPUT_NAME: image.numpy()}),
        "torchscript": lambda: scripted.run(image),
    }
    for fn in runs.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            times[key].append(median_ms(fn, args.repeats))
    for key in runs:
        row[f"{key} ms"] = statistics.median(times[key])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conv-body", default="R-18-FPN-RETINANET")
    parser.add_argument("--width", type=int, default=64, help="FPN width")
    parser.add_argument("--channels", type=int, default=32, help="FAD edge channels")
    parser.add_argument(
        "--size", type=lambda text: parse_size(text, *SIDE_RANGE), default=(128, 160), help="HxW"
    )
    parser.add_argument("--threshold", type=float, default=0.05, help="MODEL.FCOS.INFERENCE_TH")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for head, genotype in (("FCOS (standard head)", None), ("FAD (paper genotype)", "paper")):
            folder = Path(tmp) / head.split()[0]
            folder.mkdir()
            rows[head] = bench_head(folder, args, genotype)
    h, w = args.size
    print(
        f"{args.conv_body}, FPN {args.width}, FAD channels {args.channels}, {h}x{w}, "
        f"{args.threads} CPU thread(s), INFERENCE_TH {args.threshold}, random weights\n"
    )
    columns = list(next(iter(rows.values())))
    print("| head | " + " | ".join(columns) + " | onnxruntime / pytorch | torchscript / pytorch |")
    print("|---" * (len(columns) + 3) + "|")
    for head, row in rows.items():
        cells = [f"{row[c]:.1f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        ort_ratio = row["onnxruntime ms"] / row["pytorch ms"]
        ts_ratio = row["torchscript ms"] / row["pytorch ms"]
        print(f"| {head} | " + " | ".join(cells) + f" | {ort_ratio:.2f} | {ts_ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
