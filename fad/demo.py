"""`fad demo`: the whole FAD pipeline on the embedded shapes dataset, side by side with FCOS.

1. train the standard FCOS head (ResNet-18 from scratch);
2. search the FAD towers (RepShare, first order), starting from that backbone as the original
   started from ImageNet weights;
3. train FCOS with the searched towers from scratch, same backbone, schedule and budget as 1;
4. evaluate both on shapes_val; 5. write a markdown report: AP table, parameters and FLOPs of
   the heads, training and search times, genotype pictures and a few predicted images.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from fad.config import load_config
from fad.engine.atomic import atomic_write_text
from fad.engine.inference_model import load_trained_model
from fad.engine.predict import predict
from fad.engine.train import train
from fad.errors import FadError
from fad.modeling.cost import module_cost
from fad.search.searcher import search
from fad.search_space.genotype import read_genotype_file

log = logging.getLogger("fad")
CONFIGS = {
    "fcos": "shapes/fcos_imprv_R_18_FPN.yaml",
    "search": "shapes/search_fad_R_18_FPN.yaml",
    "fad": "shapes/fad_imprv_R_18_FPN.yaml",
}
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
FCOS_ROW = "FCOS (standard head)"
FAD_ROW = "FAD (searched head)"
REPORT_JSON = "demo_report.json"


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (fad/configs/...)."""
    path = Path(str(resources.files("fad") / "configs" / name))
    if not path.is_file():
        raise FadError(f"packaged config missing: {path}")
    return path


def head_cost(weights: Path, size: tuple[int, int]) -> tuple[int, float]:
    """(parameters, GFLOPs) of a trained detector's head on the FPN levels of a `size` image."""
    cfg = load_config(text=_stored_config(weights), text_source=str(weights))
    model, _ = load_trained_model(cfg, str(weights))
    with torch.no_grad():
        features = list(model.backbone(torch.zeros(1, 3, *size)).values())
    params, flops = module_cost(model.head, features)
    return params, flops / 1e9


def _stored_config(weights: Path) -> str:
    from fad.engine.checkpoint import load_checkpoint

    return load_checkpoint(weights)["meta"]["config"]


def _first_report(result: dict[str, Any]) -> dict[str, float]:
    reports = result.get("eval", {})
    if not reports:
        raise FadError("the demo needs an evaluation set (DATASETS.TEST)")
    return next(iter(reports.values()))["coco"]


def run_demo(
    out_dir: str | Path, opts: Sequence[str] = (), *, seed: int = 0, num_pictures: int = 4
) -> dict[str, Any]:
    """Run the pipeline into `out_dir`; `opts` (KEY VALUE) apply to all three configs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = list(opts) + ["SEED", str(seed)]
    t0 = time.perf_counter()

    log.info("demo 1/4: training the standard FCOS head")
    fcos_cfg = load_config(
        packaged_config(CONFIGS["fcos"]), common + ["OUTPUT_DIR", str(out / "fcos")]
    )
    fcos = train(fcos_cfg)
    fcos_weights = out / "fcos" / "model_final.pth"

    log.info("demo 2/4: searching the FAD towers")
    search_cfg = load_config(
        packaged_config(CONFIGS["search"]),
        ["MODEL.WEIGHT", str(fcos_weights)] + common + ["OUTPUT_DIR", str(out / "search")],
    )
    search_report = search(search_cfg)
    genotypes = read_genotype_file(out / "search" / "genotype.log")

    log.info("demo 3/4: training FCOS with the searched towers")
    fad_cfg = load_config(
        packaged_config(CONFIGS["fad"]), common + ["OUTPUT_DIR", str(out / "fad")]
    )
    fad = train(fad_cfg, genotypes=genotypes)
    fad_weights = out / "fad" / "model_final.pth"

    log.info("demo 4/4: report")
    size = (fcos_cfg.INPUT.MIN_SIZE_TEST, fcos_cfg.INPUT.MAX_SIZE_TEST)
    rows = {}
    for name, result, weights in ((FCOS_ROW, fcos, fcos_weights), (FAD_ROW, fad, fad_weights)):
        params, gflops = head_cost(weights, size)
        rows[name] = {
            **_first_report(result),
            "head_params": params,
            "head_gflops": gflops,
            "train_seconds": result["train"]["seconds"],
        }
    report = {
        "seed": seed,
        "opts": list(opts),
        "rows": rows,
        "search_seconds": search_report.get("wall_seconds", 0.0),
        "genotypes": {k: str(v) for k, v in genotypes.items()},
        "total_seconds": time.perf_counter() - t0,
        "input_size": size,
    }
    _pictures(out, fcos_weights, fad_weights, fcos_cfg, num_pictures)
    text = render_markdown(report, out)
    atomic_write_text(out / "demo_report.md", text)
    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=1) + "\n")
    print("\n" + text)
    return report


def _pictures(out: Path, fcos_weights: Path, fad_weights: Path, cfg, count: int) -> None:
    from fad.data.catalog import resolve

    spec = resolve(cfg.DATASETS.TEST[0])
    images = sorted(Path(spec.img_dir).glob("*.jpg"))[:count]
    sample = out / "pictures" / "inputs"
    sample.mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copy(image, sample / image.name)
    for name, weights in (("fcos", fcos_weights), ("fad", fad_weights)):
        predict(str(weights), str(sample), str(out / "pictures" / name), score_threshold=0.4)


def render_markdown(report: dict[str, Any], out: Path) -> str:
    """The side-by-side table, the genotypes, and links to the pictures."""
    h, w = report["input_size"]
    lines = [
        "# fad demo: FAD-searched head vs standard FCOS head on shapes",
        "",
        f"Same backbone (ResNet-18 from scratch), schedule and training budget; COCO AP on shapes_val. "
        f"Head cost at a {h}x{w} input (all FPN levels). Total demo time {report['total_seconds'] / 60:.1f} min.",
        "",
        "| head | "
        + " | ".join(AP_KEYS)
        + " | head params | head GFLOPs | train time | search time |",
        "|---|" + "---:|" * (len(AP_KEYS) + 4),
    ]
    for name, row in report["rows"].items():
        search_time = f"{report['search_seconds'] / 60:.1f} min" if name == FAD_ROW else "-"
        cells = [f"{row[k]:.3f}" for k in AP_KEYS]
        cells += [
            f"{row['head_params'] / 1e6:.2f} M",
            f"{row['head_gflops']:.2f}",
            f"{row['train_seconds'] / 60:.1f} min",
            search_time,
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Searched genotype (genotype.log)", "", "```"]
    lines += [report["genotypes"].get("box", ""), report["genotypes"].get("cls", ""), "```", ""]
    plots = out / "search" / "plots"
    for role in ("box", "cls"):  # the derived cells, then how their alphas moved
        for picture in (plots / role / "final.png", plots / f"alpha_history_{role}.png"):
            if picture.is_file():
                lines.append(f"![{role}: {picture.stem}]({picture.relative_to(out)})")
    lines += ["", "## Predictions (score >= 0.4)", "", "| FCOS | FAD |", "|---|---|"]
    for image in sorted((out / "pictures" / "fcos").glob("*.jpg")):
        rel = image.relative_to(out)
        other = Path("pictures") / "fad" / image.name
        lines.append(f"| ![]({rel}) | ![]({other}) |")
    return "\n".join(lines) + "\n"
