"""`fad data`: generate the shapes dataset, or check datasets and print what loading keeps.

fad data shapes --out DIR [--level easy|hard --seed S --train N --val M --min-size A --max-size B]
fad data check NAME [NAME ...] [--eval] [--root DIR] [--config-file C]
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
    check.add_argument(
        "--config-file",
        default=None,
        help="the run's config: its INPUT sizes tell degenerate images (too elongated for the "
        "resize), its DATALOADER.MAX_BAD_IMAGE_FRACTION the budget (default: the defaults)",
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
    """Print each set's data report and its unreadable and degenerate images; fail (exit 2) when
    a training run with this bad-image budget would stop, or, with --eval, on any unreadable
    image (evaluation skips degenerate ones and counts them)."""
    from functools import partial

    from tqdm import tqdm

    from fad.config import load_config
    from fad.data.build import build_datasets
    from fad.data.robust import bad_image_limit, degenerate_images, unreadable_images
    from fad.engine.run import inference_resize, train_resize
    from fad.errors import FadError

    cfg = load_config(args.config_file)
    fraction = args.max_bad_fraction
    budget = "--max-bad-fraction"
    if fraction is None:
        fraction, budget = (
            cfg.DATALOADER.MAX_BAD_IMAGE_FRACTION,
            "DATALOADER.MAX_BAD_IMAGE_FRACTION",
        )
    resize = inference_resize(cfg) if args.eval else train_resize(cfg)
    bad: list[str] = []
    degenerate: list[str] = []
    total = 0
    for dataset in build_datasets(args.names, train=not args.eval, root=args.root):
        print(dataset.report_text())
        bar = partial(
            tqdm, desc=f"opening {dataset.source}", unit="image", disable=None, leave=False
        )
        found = unreadable_images(dataset, bar)
        for reason in found.values():
            print(f"  unreadable: {reason}")
        unusable = degenerate_images([dataset], resize)
        for index, reason in unusable.items():
            if index not in found:
                print(f"  {reason}")
                degenerate.append(reason)
        bad += found.values()
        total += len(dataset)
    print(f"{len(bad)} of {total} images unreadable, {len(degenerate)} degenerate")
    if args.eval and bad:
        raise FadError(
            f"{len(bad)} unreadable images, e.g. {bad[0]}: evaluation stops at the first "
            "unreadable image"
        )
    limit = bad_image_limit(total, fraction)
    skipped = bad + degenerate
    if not args.eval and len(skipped) > limit:
        raise FadError(
            f"{len(skipped)} of {total} training images are unreadable or degenerate and {budget} "
            f"({fraction}) allows {limit}: a training run would stop; e.g. {skipped[0]}"
        )
    return 0
