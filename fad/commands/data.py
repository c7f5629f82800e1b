"""`fad data`: generate the shapes dataset, or check datasets and print what loading keeps.

fad data shapes --out DIR [--level easy|hard --seed S --train N --val M --min-size A --max-size B]
fad data check NAME [NAME ...] [--eval] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from fad.data.shapes import DEFAULT_LEVEL, LEVELS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its `shapes` / `check` subcommands."""
    parser = subparsers.add_parser("data", help="generate the shapes dataset, check datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    shapes = sub.add_parser("shapes", help="write the synthetic shapes dataset (COCO format)")
    shapes.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    shapes.add_argument(
        "--level",
        choices=list(LEVELS),
        default=DEFAULT_LEVEL,
        help="difficulty (default: %(default)s)",
    )
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--train", type=int, default=2000, help="training images")
    shapes.add_argument("--val", type=int, default=200, help="validation images")
    shapes.add_argument("--min-size", type=int, default=256, help="smallest image side")
    shapes.add_argument("--max-size", type=int, default=320, help="largest image side")
    shapes.set_defaults(func=run_shapes)

    check = sub.add_parser(
        "check", help="load datasets, open every image, print what was kept, dropped, unreadable"
    )
    check.add_argument("names", nargs="+", help="catalog names or IMG_DIR@ANN_JSON")
    check.add_argument("--eval", action="store_true", help="load in evaluation mode")
    check.add_argument("--root", type=Path, default=None, help="datasets root ($FAD_DATASETS)")
    check.add_argument(
        "--max-bad-fraction",
        type=float,
        default=None,
        help="unreadable training images tolerated (default DATALOADER.MAX_BAD_IMAGE_FRACTION)",
    )
    check.set_defaults(func=run_check)


def run_shapes(args: argparse.Namespace) -> int:
    from fad.data.shapes import generate_shapes

    start = time.perf_counter()
    generate_shapes(
        args.out,
        level=args.level,
        seed=args.seed,
        num_train=args.train,
        num_val=args.val,
        min_size=args.min_size,
        max_size=args.max_size,
    )
    elapsed = time.perf_counter() - start
    print(f"wrote shapes dataset, level {args.level}, to {args.out} in {elapsed:.1f}s")
    for split in ("train", "val"):
        ann_file = args.out / "annotations" / f"instances_{split}.json"
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
        sides = [math.sqrt(a["bbox"][2] * a["bbox"][3]) for a in data["annotations"]]
        print(
            f"  {split}: {len(data['images'])} images, {len(sides)} boxes "
            f"(median sqrt(w*h) {statistics.median(sides):.0f} px; {args.out / split}, {ann_file})"
        )
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print each set's data report and its unreadable images; fail (exit 2) when a training run
    with this bad-image budget would stop, or, with --eval, on any unreadable image."""
    from functools import partial

    from tqdm import tqdm

    from fad.config.defaults import get_default_config
    from fad.data.build import build_datasets
    from fad.data.robust import bad_image_limit, unreadable_images
    from fad.errors import FadError

    fraction = args.max_bad_fraction
    budget = "--max-bad-fraction"
    if fraction is None:
        fraction = get_default_config().DATALOADER.MAX_BAD_IMAGE_FRACTION
        budget = "DATALOADER.MAX_BAD_IMAGE_FRACTION"
    bad: list[str] = []
    total = 0
    for dataset in build_datasets(args.names, train=not args.eval, root=args.root):
        print(dataset.report_text())
        bar = partial(
            tqdm, desc=f"opening {dataset.source}", unit="image", disable=None, leave=False
        )
        found = unreadable_images(dataset, bar)
        for reason in found.values():
            print(f"  unreadable: {reason}")
        bad += found.values()
        total += len(dataset)
    print(f"{len(bad)} of {total} images unreadable")
    if args.eval and bad:
        raise FadError(
            f"{len(bad)} unreadable images, e.g. {bad[0]}: evaluation stops at the first "
            "unreadable image"
        )
    limit = bad_image_limit(total, fraction)
    if not args.eval and len(bad) > limit:
        raise FadError(
            f"{len(bad)} of {total} training images are unreadable and {budget} ({fraction}) "
            f"allows {limit}: a training run would stop; e.g. {bad[0]}"
        )
    return 0
