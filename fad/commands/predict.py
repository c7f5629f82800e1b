"""`fad predict WEIGHTS IMAGE_OR_FOLDER --out DIR [--score-threshold t] [KEY VALUE ...]`"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="detect objects in images with a trained weights file")
    p.add_argument("weights", help="a fad checkpoint (e.g. model_final.pth)")
    p.add_argument("source", help="an image or a folder of images")
    p.add_argument("--out", required=True, help="folder for the drawn images and predictions.json")
    p.add_argument("--score-threshold", type=float, default=0.3, help="draw detections above this")
    p.add_argument("--config-file", help="override the config stored in the weights")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fad.engine.predict import predict
    from fad.runtime.logger import setup_logger

    setup_logger(None)
    predict(
        args.weights,
        args.source,
        args.out,
        score_threshold=args.score_threshold,
        config_file=args.config_file,
        opts=args.opts or [],
    )
    return 0
