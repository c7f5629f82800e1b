"""`fad export WEIGHTS --format onnx|torchscript --out FILE [--size HxW] [--check-images DIR]`"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="a trained weights file as ONNX or TorchScript, verified against PyTorch"
    )
    p.add_argument("weights", help="a fad checkpoint (e.g. model_final.pth)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    p.add_argument("--out", required=True, help="the file to write (.onnx for ONNX); FILE.json too")
    p.add_argument(
        "--size",
        help="the fixed input size HxW (default: INPUT.MIN_SIZE_TEST x INPUT.MAX_SIZE_TEST)",
    )
    p.add_argument(
        "--check-images", help="an image or folder to verify on (default: rendered shapes scenes)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fad.commands.common import parse_size
    from fad.engine.export import SIDE_RANGE, export_detector
    from fad.engine.predict import list_images
    from fad.runtime.logger import setup_logger

    setup_logger(None)
    size = parse_size(args.size, *SIDE_RANGE) if args.size else None
    images = list_images(Path(args.check_images)) if args.check_images else []
    report = export_detector(args.weights, args.format, args.out, size, images)
    print(
        f"wrote {report.path} ({report.file_bytes / 2**20:.1f} MiB) and {report.meta_path} in "
        f"{report.seconds:.1f} s; checked on {report.images} images: {report.detections} "
        f"detections, max box error {report.max_box_error:.2g} px, max score error "
        f"{report.max_score_error:.2g}"
    )
    return 0
