"""How much signal the alpha gradient carries: first-order alpha gradients of many alpha batches at
fixed weights, per coordinate mean and spread.

Usage: python bench/alpha_signal.py CHECKPOINT --config-file C [--batches 64] [KEY VALUE ...]

CHECKPOINT is a search checkpoint (e.g. after a weight-only warm-up). For each of `--batches`
batches of the alpha stream, the gradient of the detection loss with respect to the alphas is
computed at the checkpoint's weights (nothing is stepped). Reported per tower: the median over
coordinates of |mean| / std (the signal-to-noise ratio of one batch's gradient), the share of
coordinates above 0.3 and 1, and the alpha step count a consistent drift would need to exceed the
random walk of Adam's normalised steps (1 / SNR^2). Per op, the mean gradient over edges
(negative: the loss falls when the op's alpha grows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fad.config import load_config  # noqa: E402
from fad.data.build import build_datasets  # noqa: E402
from fad.engine.run import RunContext, train_loader_options  # noqa: E402
from fad.engine.weight_step import prepare_batch  # noqa: E402
from fad.modeling.build import apply_speed_paths, build_detector  # noqa: E402
from fad.runtime.checkpoint import load_checkpoint  # noqa: E402
from fad.search.architect import _grads, detection_loss  # noqa: E402
from fad.search.streams import ALPHA_SEED_OFFSET, search_streams  # noqa: E402
from fad.search_space.relaxation import GumbelSample  # noqa: E402
from fad.search_space.towers import search_towers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--batches", type=int, default=64)
    parser.add_argument(
        "--gumbel-tau",
        type=float,
        default=0.0,
        help="> 0: GDAS's sampled relaxation at this temperature (one sample per batch)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cfg = load_config(args.config_file, args.opts)
    datasets = build_datasets(cfg.DATASETS.TRAIN, train=True, flip_prob=0.0)
    model = build_detector(cfg, len(datasets[0].class_names), None, load_weights=False)
    model.load_state_dict(load_checkpoint(Path(args.checkpoint))["model"])
    apply_speed_paths(model, cfg)
    model.train()
    ctx = RunContext(torch.device("cpu"), 0, 1, Path("."), None)
    batches = search_streams(datasets, 0.0, train_loader_options(cfg, ctx, 0))
    towers = {t.role: t for t in search_towers(model)}
    generator = torch.Generator()
    if args.gumbel_tau > 0:
        for tower in towers.values():
            tower.relaxation = GumbelSample(args.gumbel_tau, generator)
    grads: dict[str, list[torch.Tensor]] = {role: [] for role in towers}
    for i in range(args.batches):
        _, raw = next(batches)
        generator.manual_seed(i)
        seed = cfg.SEED + ALPHA_SEED_OFFSET
        batch = prepare_batch(raw, seed=seed, iteration=i, flip_prob=0.5, device=ctx.device)
        loss = detection_loss(model, batch)
        params = [a for t in towers.values() for a in t.alphas]
        found = iter(_grads(loss, params))
        for role, tower in towers.items():
            grads[role].append(torch.cat([next(found).flatten() for _ in tower.alphas]))
    for role, rows in grads.items():
        g = torch.stack(rows)  # [batches, coordinates]
        snr = (g.mean(0).abs() / g.std(0).clamp_min(1e-20)).tolist()
        ops = towers[role].op_names
        per_op = g.mean(0).view(-1, len(ops)).mean(0)
        print(
            f"{role}: {g.shape[1]} coordinates, {g.shape[0]} batches; |mean|/std median "
            f"{statistics.median(snr):.3f}, > 0.3: {sum(s > 0.3 for s in snr) / len(snr):.0%}, "
            f"> 1: {sum(s > 1 for s in snr) / len(snr):.0%}; steps for a drift to beat noise "
            f"(median): {1 / max(statistics.median(snr), 1e-9) ** 2:.0f}"
        )
        values = torch.cat([a.detach().flatten() for a in towers[role].alphas])
        decay = cfg.SOLVER.SEARCH.WEIGHT_DECAY_ALPHA * values.abs()
        print(
            f"  median |mean gradient| {g.mean(0).abs().median().item():.2e}, median |one "
            f"batch's gradient| {g.abs().median().item():.2e}, median |weight decay term| "
            f"(WEIGHT_DECAY_ALPHA x |alpha|) {decay.median().item():.2e}"
        )
        ranked = sorted(zip(per_op.tolist(), ops, strict=True))
        print(
            "  mean gradient per op (most favoured first): "
            + ", ".join(f"{name} {value:+.2e}" for value, name in ranked)
        )


if __name__ == "__main__":
    main()
