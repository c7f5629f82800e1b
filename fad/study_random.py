"""The control every NAS reviewer asks for: random members of the searched space, trained exactly
as the searched head, and where the searched head ranks among them (Yang et al., ICLR 2020).

`run_random_control` draws `num` genotypes uniformly from the space of the search config
(`fad.search_space.random_genotype`, seeded), trains each with the FAD head config, budget,
backbone and seed the searched head was trained with, into ``OUT/random_<i>`` (a finished one is
read back, so a killed study goes on where it stopped), and the paper's genotype once as a fixed
reference (``OUT/paper``). With training `seeds`, each genotype is trained once per seed into
``OUT/<name>/seed_<s>``, its record carries the AP per seed and their mean, and the comparison
says whether the genotypes differ more than the seeds do (`fad.evaluation.genotype_effect`).
`compare` puts the searched heads beside them: AP of each, mean ± std of the random ones, the
searched heads' improvement over the random mean (in APs and in standard deviations of the random
ones), their rank, and the standard head.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from fad.config import load_config
from fad.demo import head_cost, read_json
from fad.engine.train import run_training
from fad.engine.trained_model import TrainedModel
from fad.errors import FadError
from fad.evaluation.genotype_effect import genotype_effect
from fad.modeling.build import head_section
from fad.runtime.atomic import atomic_write_text
from fad.search.budget import cost_model
from fad.search_space.genotype import PRESETS, ROLES, Genotype, write_genotype_file
from fad.search_space.ops import space_ops
from fad.search_space.random_genotype import sample_genotype
from fad.viz.study_plot import plot_study

log = logging.getLogger("fad")
RESULT_JSON = "result.json"
MAX_DRAWS_PER_PICK = 1000
SAMPLER_SEED = 20200823  # the draws are the same for every study (ECCV 2020's first day)
PAPER = "paper genotype"


def draw_genotypes(
    num: int,
    num_nodes: dict[str, int],
    space: str,
    seed: int = SAMPLER_SEED,
    accept: Callable[[tuple[Genotype, Genotype]], bool] | None = None,
) -> list[tuple[Genotype, Genotype]]:
    """`num` (box, cls) pairs drawn uniformly from the space (`num_nodes` per role), each tower
    independently; with `accept`, uniformly from the pairs it accepts (rejection sampling: a
    FadError when MAX_DRAWS_PER_PICK x `num` draws did not find `num`)."""
    generator = torch.Generator().manual_seed(seed)
    ops = space_ops(space)
    picked: list[tuple[Genotype, Genotype]] = []
    for _ in range(MAX_DRAWS_PER_PICK * num):
        pair = tuple(sample_genotype(num_nodes[role], ops, generator) for role in ROLES)
        if accept is None or accept(pair):
            picked.append(pair)
        if len(picked) == num:
            return picked
    raise FadError(
        f"{MAX_DRAWS_PER_PICK * num} genotypes drawn, {len(picked)} within the budget: too few "
        "members of the space fit it (raise the budget)"
    )


def within_budget(cfg: Any, max_gflops: float) -> Callable[[tuple[Genotype, Genotype]], bool]:
    """Whether a (box, cls) pair's trained head costs at most `max_gflops` GFLOPs as the search's
    budget counts it (`fad.search.budget`, with the towers of `cfg`)."""
    _, section = head_section(cfg)
    costs = cost_model(cfg, section.NUM_CLASSES - 1)  # NUM_CLASSES counts the background

    def accept(pair: tuple[Genotype, Genotype]) -> bool:
        return costs.of_genotypes(dict(zip(ROLES, pair, strict=True))) <= max_gflops * 1e9

    return accept


# Keys added to the config after study results were first recorded, oldest first, each with the
# value that does what fad did before it (digests taken before a key existed lack it).
ADDED_KEYS = {"SOLVER.FUSED_OPTIMIZER": False, "MODEL.COMPILE_MODE": "default"}


def fad_space(cfg: Any) -> tuple[dict[str, int], str]:
    """The nodes per tower and the op space of a FAD config (MODEL.FAD.*)."""
    fad = cfg.MODEL.FAD
    return {"box": fad.NUM_NODES_BOX, "cls": fad.NUM_NODES_CLS}, fad.SPACE


def train_genotype(
    folder: Path,
    genotypes: tuple[Genotype, Genotype],
    config: Callable[[Path], Any],
    size: tuple[int, int],
) -> dict[str, Any]:
    """Train one FAD head of `genotypes` into `folder` (or read its finished result, which must
    have been trained with the same genotypes and config: else a FadError naming it)."""
    box, cls = genotypes
    cfg = config(folder / "run")
    made_with = {"genotypes": {"box": str(box), "cls": str(cls)}, "config_sha256": _digest(cfg)}
    done = read_json(folder / RESULT_JSON)
    if done is not None:
        same = done.get("genotypes") == made_with["genotypes"] and done.get("config_sha256") in {
            made_with["config_sha256"],
            *_digests_before_added_keys(cfg),
        }
        if not same:
            raise FadError(
                f"{folder / RESULT_JSON}: trained with another genotype or config than this "
                f"study's; pick another --out (or remove that folder){_added_keys_hint()}"
            )
        return done
    folder.mkdir(parents=True, exist_ok=True)
    write_genotype_file(folder / "genotype.log", box, cls)
    result = run_training(cfg, genotypes=dict(zip(ROLES, genotypes, strict=True)))
    coco = next(iter(result["eval"].values()))["coco"]
    model = TrainedModel.read(folder / "run" / "model_final.pth").build()
    record = {
        **made_with,
        **{k: coco[k] for k in ("AP", "AP50", "AP75")},
        **head_cost(model, size),
        "train_seconds": result["train"]["seconds"],
    }
    atomic_write_text(folder / RESULT_JSON, json.dumps(record, indent=1) + "\n")
    return record


def train_over_seeds(
    folder: Path,
    genotypes: tuple[Genotype, Genotype],
    config: Callable[..., Any],
    size: tuple[int, int],
    seeds: Sequence[int] | None,
) -> dict[str, Any]:
    """`train_genotype` into `folder` (no `seeds`), or once per seed into ``folder/seed_<s>``
    (`config(folder, seed)`): the record of the first seed with the APs per seed
    (``AP_per_seed``...), their means as AP, AP50, AP75 and their std as ``AP_std``."""
    if not seeds:
        return train_genotype(folder, genotypes, config, size)
    runs = [
        train_genotype(folder / f"seed_{s}", genotypes, lambda f, s=s: config(f, s), size)
        for s in seeds
    ]
    record = {k: v for k, v in runs[0].items() if k != "config_sha256"}
    for key in ("AP", "AP50", "AP75"):
        record[f"{key}_per_seed"] = [run[key] for run in runs]
        record[key] = statistics.fmean(record[f"{key}_per_seed"])
    record["AP_std"] = statistics.stdev(record["AP_per_seed"]) if len(runs) > 1 else 0.0
    record["seeds"] = list(seeds)
    record["train_seconds"] = sum(run["train_seconds"] for run in runs)
    return record


def _digest(cfg: Any) -> str:
    """The sha256 of a config's YAML dump: what a finished result must have been trained with."""
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def _digests_before_added_keys(cfg: Any) -> list[str]:
    """The digests the config had before each key of `ADDED_KEYS` was added, for as far back as
    it sets the keys added since to the values that do what fad did then: a study made before a
    key existed goes on with that value, and only with it."""
    legacy = cfg.clone()
    legacy.defrost()
    digests = []
    for key, before in reversed(ADDED_KEYS.items()):
        section, _, name = key.rpartition(".")
        node = legacy
        for part in section.split("."):
            node = node[part]
        if node[name] != before:
            break
        del node[name]
        digests.append(_digest(legacy))
    return digests


def _added_keys_hint() -> str:
    settings = ", ".join(f"{key} {value}" for key, value in ADDED_KEYS.items())
    return (
        f"; a study made before one of these keys existed goes on with its value then: {settings}"
    )


def run_random_control(
    out: Path,
    config: Callable[[Path], Any],
    *,
    num: int,
    size: tuple[int, int],
    max_gflops: float = 0.0,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Train `num` random genotypes and the paper's (see the module doc); their records.
    `config(folder[, seed])` is the FAD head's training config writing into `folder`;
    `max_gflops` > 0 draws only genotypes whose head costs at most that (the searched head's
    budget); `seeds`: train each genotype once per training seed."""
    cfg = config(out)
    num_nodes, space = fad_space(cfg)
    accept = within_budget(cfg, max_gflops) if max_gflops > 0 else None
    records = {}
    for i, pair in enumerate(draw_genotypes(num, num_nodes, space, accept=accept)):
        log.info("random control: genotype %d of %d -> %s", i + 1, num, out / f"random_{i}")
        records[f"random_{i}"] = train_over_seeds(out / f"random_{i}", pair, config, size, seeds)
    log.info("random control: the paper's genotype -> %s", out / "paper")
    records[PAPER] = train_over_seeds(out / "paper", PRESETS["paper"], config, size, seeds)
    return records


def compare(
    random: dict[str, dict[str, Any]], searched: Sequence[float], standard: Sequence[float]
) -> dict[str, Any]:
    """The searched heads' APs (one per seed) against the random genotypes' and the standard
    head's: mean ± std, improvement over the random mean, in stds, and rank among random. Random
    records trained with several seeds (``AP_per_seed``) count by their mean AP, and add the
    genotype-vs-seed analysis (``genotype_effect``)."""
    random_ap = [r["AP"] for name, r in random.items() if name != PAPER]
    per_seed = {n: r["AP_per_seed"] for n, r in random.items() if n != PAPER and "AP_per_seed" in r}
    seeded = len(per_seed) == len(random_ap) and len({len(v) for v in per_seed.values()}) == 1
    effect = (
        genotype_effect(per_seed) if seeded and len(next(iter(per_seed.values()))) > 1 else None
    )
    mean = statistics.fmean(random_ap)
    std = statistics.stdev(random_ap) if len(random_ap) > 1 else 0.0
    searched_mean = statistics.fmean(searched) if searched else None
    improvement = None if searched_mean is None else searched_mean - mean
    return {
        "random_ap": random_ap,
        "random_mean": mean,
        "random_std": std,
        "searched_ap": list(searched),
        "searched_mean": searched_mean,
        "standard_ap": list(standard),
        "paper_ap": random[PAPER]["AP"] if PAPER in random else None,
        "improvement": improvement,
        "improvement_in_std": improvement / std if improvement is not None and std > 0 else None,
        "ranks": [1 + sum(r > ap for r in random_ap) for ap in searched],
        "beats_random_by_one_std": improvement is not None and std > 0 and improvement > std,
        "genotype_effect": effect,
        "random_ap_per_seed": list(per_seed.values()) if seeded else None,
    }


def run_study(
    config_file: str,
    opts: Sequence[str],
    out: Path,
    num: int,
    searched: dict[str, Genotype] | None,
    max_gflops: float = 0.0,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """`fad study random`: `num` random genotypes, the paper's and (if given) the searched one,
    each trained with `config_file` + `opts` (once per training seed in `seeds`, if given) into
    `out`; the comparison, written as ``random_study.json`` with its picture, and returned."""

    def config(folder: Path, seed: int | None = None):
        seeded = [] if seed is None else ["SEED", str(seed)]
        return load_config(config_file, [*opts, *seeded, "OUTPUT_DIR", str(folder)])

    cfg = config(out)
    size = (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    records = run_random_control(
        out, config, num=num, size=size, max_gflops=max_gflops, seeds=seeds
    )
    found = []
    if searched is not None:
        pair = (searched["box"], searched["cls"])
        records["searched"] = train_over_seeds(out / "searched", pair, config, size, seeds)
        found = records["searched"].get("AP_per_seed", [records["searched"]["AP"]])
    comparison = compare({k: v for k, v in records.items() if k != "searched"}, found, [])
    study = {
        "comparison": comparison,
        "records": records,
        "training_seed": cfg.SEED,
        "training_seeds": list(seeds) if seeds else [cfg.SEED],
        "max_gflops": max_gflops or None,
    }
    atomic_write_text(out / "random_study.json", json.dumps(study, indent=1) + "\n")
    title = f"AP of {num} random genotypes" + (f" x {len(seeds)} training seeds" if seeds else "")
    plot_study(comparison, out / "random_control", title)
    return study
