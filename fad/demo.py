"""`fad demo`: the paper's protocol, scaled down to the embedded shapes dataset and a CPU.

The paper searches and trains both heads on an ImageNet-pretrained backbone. Here:

0. **backbone**: FCOS with the standard head learns ResNet-18 + FPN from scratch on shapes_train;
   trained once and stored in `OUT/backbone`, reused by later runs and by every seed (the
   stand-in for ImageNet weights);
1. **search**: the FAD towers (RepShare, first order, a weight-only warm-up first) on that
   backbone, frozen;
2. **FCOS**: the standard head trained on the frozen backbone;
3. **FAD**: the searched towers trained on the frozen backbone, same schedule and budget as 2;
4. both evaluated on shapes_val (COCO AP), and a report: AP table, head parameters, FLOPs and
   latency, times, the genotype and its pictures, predicted images.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from fad.config import load_config
from fad.data.catalog import resolve
from fad.engine.predict import predict
from fad.engine.train import run_training
from fad.engine.trained_model import TrainedModel
from fad.errors import FadError
from fad.modeling.cost import module_cost
from fad.modeling.speed import plain_path
from fad.runtime.atomic import atomic_write_text
from fad.runtime.memory import peak_rss_mib, reset_peak_rss
from fad.search.searcher import run_search
from fad.search_space.genotype import read_genotype_file

log = logging.getLogger("fad")
CONFIGS = {
    "backbone": "shapes/fcos_imprv_R_18_FPN.yaml",
    "search": "shapes/search_fad_R_18_FPN.yaml",
    "fcos": "shapes/fcos_imprv_R_18_FPN_frozen.yaml",
    "fad": "shapes/fad_imprv_R_18_FPN.yaml",
}
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
FCOS_ROW = "FCOS (standard head)"
FAD_ROW = "FAD (searched head)"
REPORT_JSON = "demo_report.json"
BACKBONE_JSON = "backbone.json"
BACKBONE_SEED = 0
LATENCY_REPEATS = 20
COST_KEYS = ("head_params", "head_gflops", "head_latency_ms")
# what the demo report keeps of the search report
SEARCH_KEYS = ("method", "iterations", "warmup_iters", "convergence", "settled_since", "cost")


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (fad/configs/...)."""
    path = Path(str(resources.files("fad") / "configs" / name))
    if not path.is_file():
        raise FadError(f"packaged config missing: {path}")
    return path


def _first_report(result: dict[str, Any]) -> dict[str, float]:
    reports = result.get("eval", {})
    if not reports:
        raise FadError("the demo needs an evaluation set (DATASETS.TEST)")
    return next(iter(reports.values()))["coco"]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pretrain_backbone(
    root: Path, opts: Sequence[str], stage0_opts: Sequence[str] = ()
) -> dict[str, Any]:
    """Stage 0 into `root/backbone` with `stage0_opts` then `opts`, or its record when a finished
    one is there.

    A backbone made with other overrides or another resolved config (e.g. by an earlier fad
    version) is refused (a FadError), never silently reused.
    """
    folder = root / "backbone"
    made_with = [*stage0_opts, *opts]
    overrides = [*made_with, "SEED", str(BACKBONE_SEED), "OUTPUT_DIR", str(folder)]
    cfg = load_config(packaged_config(CONFIGS["backbone"]), overrides)
    record = read_json(folder / BACKBONE_JSON)
    if record is not None:
        if record.get("opts") != made_with:
            raise FadError(
                f"{folder / BACKBONE_JSON} was made with the overrides {record.get('opts')}, "
                f"not {made_with}; pick another --out"
            )
        if not same_config(record.get("config"), cfg):
            raise FadError(
                f"{folder / BACKBONE_JSON} was made with another stage-0 config than "
                f"{CONFIGS['backbone']} resolves to now (another fad version?); pick another "
                "--out or remove that folder"
            )
        log.info("demo 0/4: reusing the pretrained backbone in %s", folder)
        return record
    log.info("demo 0/4: pretraining the backbone (FCOS, standard head, from scratch)")
    t0 = time.perf_counter()
    result = run_training(cfg)
    record = {
        "opts": made_with,
        "config": cfg.dump(),
        "weights": str(folder / "model_final.pth"),
        "coco": _first_report(result),
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(folder / BACKBONE_JSON, json.dumps(record, indent=1) + "\n")
    return record


def same_config(dumped: Any, cfg: Any) -> bool:
    """Whether `dumped` (a config's YAML dump, as a record stores it) resolves to `cfg`: equal
    values, and keys it lacks (added by a later fad) at their defaults."""
    if not isinstance(dumped, str):
        return False
    try:
        old = yaml.safe_load(dumped)
    except yaml.YAMLError:
        return False
    return isinstance(old, dict) and _same_values(old, yaml.safe_load(cfg.dump()), _defaults())


def _defaults() -> dict[str, Any]:
    from fad.config.defaults import get_default_config

    return yaml.safe_load(get_default_config().dump())


def _same_values(old: dict, new: dict, default: Any) -> bool:
    if set(old) - set(new):
        return False  # a key the current config no longer has
    for key, value in new.items():
        fallback = default.get(key) if isinstance(default, dict) else None
        if key not in old:
            if value != fallback:
                return False
        elif isinstance(value, dict) and isinstance(old[key], dict):
            if not _same_values(old[key], value, fallback):
                return False
        elif old[key] != value:
            return False
    return True


class StageMeter:
    """Wall time and peak resident memory of each stage of the demo (`fad.runtime.memory`)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, float]] = {}

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        reset_peak_rss()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.records[name] = {
            "seconds": time.perf_counter() - start,
            "peak_rss_mib": peak_rss_mib(),
        }
        return result


def stage_config(stage: str, opts: Sequence[str], backbone: str, seed: int, output_dir: Path):
    """The config of demo `stage` ("search", "fcos", "fad") on the stage-0 `backbone` weights."""
    common = [*opts, "MODEL.WEIGHT", backbone, "SEED", str(seed), "OUTPUT_DIR", str(output_dir)]
    return load_config(packaged_config(CONFIGS[stage]), common)


def head_cost(model: nn.Module, size: tuple[int, int]) -> dict[str, float]:
    """Parameters, GFLOPs (counted on the plain path) and latency (ms, median, on the towers'
    own path) of a detector's head on the FPN levels of one `size` image (the backbone excluded:
    it is the same for both heads)."""
    model = model.eval()
    with torch.no_grad():
        features = list(model.backbone(torch.zeros(1, 3, *size)).values())
        with plain_path(model):
            params, flops = module_cost(model.head, features)
        for _ in range(3):
            model.head(features)
        times = []
        for _ in range(LATENCY_REPEATS):
            start = time.perf_counter()
            model.head(features)
            times.append(time.perf_counter() - start)
    return {
        "head_params": params,
        "head_gflops": flops / 1e9,
        "head_latency_ms": 1000 * statistics.median(times),
    }


def run_demo(
    out_dir: str | Path,
    opts: Sequence[str] = (),
    *,
    seed: int = 0,
    backbone_root: str | Path | None = None,
    num_pictures: int = 4,
    stage0_opts: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the pipeline into `out_dir` (the backbone into `backbone_root`, default `out_dir`);
    `opts` (KEY VALUE) apply to every stage, `stage0_opts` before them to the backbone's only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stages = StageMeter()
    root = Path(backbone_root or out)
    backbone = stages.run("backbone", pretrain_backbone, root, opts, stage0_opts)

    def config(stage: str):
        return stage_config(stage, opts, backbone["weights"], seed, out / stage)

    log.info("demo 1/4: searching the FAD towers on the pretrained backbone")
    search_report = stages.run("search", run_search, config("search"))
    genotypes = read_genotype_file(out / "search" / "genotype.log")
    log.info("demo 2/4: training the standard FCOS head on the pretrained backbone")
    fcos_cfg = config("fcos")
    results = {FCOS_ROW: stages.run("fcos", run_training, fcos_cfg)}
    log.info("demo 3/4: training the searched FAD head on the pretrained backbone")
    results[FAD_ROW] = stages.run("fad", run_training, config("fad"), genotypes=genotypes)

    log.info("demo 4/4: report")
    size = (fcos_cfg.INPUT.MIN_SIZE_TEST, fcos_cfg.INPUT.MAX_SIZE_TEST)
    weights = {FCOS_ROW: out / "fcos" / "model_final.pth", FAD_ROW: out / "fad" / "model_final.pth"}

    def rows_and_pictures() -> dict[str, dict[str, Any]]:
        _pictures(out, weights, fcos_cfg, num_pictures)
        return {
            name: {
                **_first_report(result),
                **head_cost(TrainedModel.read(weights[name]).build(), size),
                "train_seconds": result["train"]["seconds"],
            }
            for name, result in results.items()
        }

    rows = stages.run("report", rows_and_pictures)
    report = {
        "seed": seed,
        "opts": list(opts),
        "rows": rows,
        "backbone": {"coco": backbone["coco"], "seconds": backbone["seconds"]},
        "search_seconds": search_report.get("wall_seconds", 0.0),
        "search_stability": search_report.get("genotype_stability", {}),
        "search": {k: search_report.get(k) for k in SEARCH_KEYS},
        "genotypes": {k: str(v) for k, v in genotypes.items()},
        "stages": stages.records,
        "total_seconds": time.perf_counter() - t0,
        "input_size": size,
        "test_set": fcos_cfg.DATASETS.TEST[0],
        "threads": torch.get_num_threads(),
        "compute_path": fcos_cfg.MODEL.COMPUTE_PATH,  # the path the latencies were timed on
    }
    text = render_markdown(report, out)
    atomic_write_text(out / "demo_report.md", text)
    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=1) + "\n")
    print("\n" + text)
    print(f"fad demo: total {report['total_seconds'] / 60:.1f} min")
    return report


def _pictures(out: Path, weights: dict[str, Path], cfg, count: int) -> None:
    images = sorted(Path(resolve(cfg.DATASETS.TEST[0]).img_dir).glob("*.jpg"))[:count]
    sample = out / "pictures" / "inputs"
    sample.mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copy(image, sample / image.name)
    for name, folder in ((FCOS_ROW, "fcos"), (FAD_ROW, "fad")):
        predict(
            str(weights[name]), str(sample), str(out / "pictures" / folder), score_threshold=0.4
        )


def search_lines(search: dict[str, Any]) -> list[str]:
    """How far the search went: method, iterations, convergence per tower, cost and budget."""
    if not search.get("convergence"):
        return []
    alpha_steps = search["iterations"] - search["warmup_iters"]
    lines = [
        "",
        f"## Search: {search['method']}, {search['iterations']} iterations "
        f"({alpha_steps} alpha steps)",
        "",
        "| tower | mean entropy (nats) | uniform | ratio | weakest kept op / uniform | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for role, f in search["convergence"].items():
        verdict = (
            "converged" if f["converged"] else "near uniform" if f["near_uniform"] else "moving"
        )
        lines.append(
            f"| {role} | {f['mean_entropy']:.3f} | {f['uniform_entropy']:.3f} "
            f"| {f['entropy_ratio']:.2f} | {f['min_top_over_uniform']:.2f}x | {verdict} |"
        )
    flat = [role for role, f in search["convergence"].items() if f["near_uniform"]]
    if flat:
        lines += [
            "",
            f"**The {' and '.join(flat)} genotype{'s were' if len(flat) > 1 else ' was'} read "
            "off near-uniform op weights: noise, not a choice.**",
        ]
    since = search.get("settled_since")
    if since is not None and since >= search.get("iterations", since + 1):
        lines += ["", f"The genotype still changed at the last check (iteration {since})."]
    elif since is not None:
        lines += ["", f"The genotype has not changed since iteration {since}."]
    cost = search.get("cost")
    if cost:
        lines += [
            "",
            f"Budget {cost['budget_gflops']:.3f} GFLOPs; the searched head "
            f"{cost['genotype_gflops']:.3f} (expected under the final op weights "
            f"{cost['expected_gflops']:.3f}).",
        ]
    return lines


def stage_lines(stages: dict[str, dict[str, float]]) -> list[str]:
    """Wall time and peak resident memory per stage."""
    if not stages:
        return []
    lines = ["", "| stage | time | peak resident memory |", "|---|---:|---:|"]
    for name, record in stages.items():
        lines.append(
            f"| {name} | {record['seconds'] / 60:.1f} min | {record['peak_rss_mib']:.0f} MiB |"
        )
    return lines


def render_markdown(report: dict[str, Any], out: Path) -> str:
    """The side-by-side table, the genotypes, and links to the pictures."""
    h, w = report["input_size"]
    backbone = report["backbone"]
    stable = report.get("search_stability") or {}
    share = stable.get("share_unchanged")
    settled = (
        f" {share:.0%} of the genotype's edges unchanged over its last {stable['window']} "
        "iterations."
        if share is not None
        else ""
    )
    lines = [
        "# fad demo: FAD-searched head vs standard FCOS head",
        "",
        "Both heads are trained with the same schedule and budget on the same frozen backbone "
        "(ResNet-18 FPN pretrained once from scratch with the standard head: AP "
        f"{backbone['coco']['AP']:.3f}, AP50 {backbone['coco']['AP50']:.3f}, "
        f"{backbone['seconds'] / 60:.1f} min). COCO AP on {report.get('test_set', 'shapes_val')}. "
        "Head cost on the FPN "
        f"levels of a {h}x{w} input; latency: median of {LATENCY_REPEATS} head forwards on the "
        f"{report.get('compute_path', 'plain')} compute path, batch 1, "
        f"{report['threads']} CPU thread(s). Search {report['search_seconds'] / 60:.1f} min."
        f"{settled} Total demo time {report['total_seconds'] / 60:.1f} min.",
        "",
        "| head | "
        + " | ".join(AP_KEYS)
        + " | head params | head GFLOPs | head latency | train time |",
        "|---|" + "---:|" * (len(AP_KEYS) + 4),
    ]
    for name, row in report["rows"].items():
        cells = [f"{row[k]:.3f}" for k in AP_KEYS]
        cells += [
            f"{row['head_params'] / 1e6:.2f} M",
            f"{row['head_gflops']:.3f}",
            f"{row['head_latency_ms']:.1f} ms",
            f"{row['train_seconds'] / 60:.1f} min",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**One seed is no verdict**: the same seed trains to a different AP on another machine, "
        "and heads differ by less than seeds do. `fad demo --seeds 0,1,2 --random 5` (with this "
        "run's `--level` and overrides) gives the paired 95 % interval against the standard "
        "head and the searched head's rank among genotypes drawn at random from the same space.",
    ]
    lines += search_lines(report.get("search") or {})
    lines += stage_lines(report.get("stages") or {})
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
