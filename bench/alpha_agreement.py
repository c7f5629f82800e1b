"""How much searches of different seeds agree, snapshot by snapshot: a search that reads the data
(and not its noise) moves every seed's alphas the same way, long before the genotypes agree.

For each logged iteration of the searches' ``alpha_history.json`` and each tower: the mean
pairwise Pearson correlation of the centred log op weights over all edges ("edge corr": the same
op preferred on the same edge), of their mean over the edges ("op corr": the same ops preferred
anywhere), and the mean standard deviation of the centred log weights (how far from uniform, 0 at
the start). The last lines rank the ops by their mean centred log weight over seeds and edges.

    python bench/alpha_agreement.py SEARCH_DIR SEARCH_DIR [...]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

ROLES = ("box", "cls")


def centred_logs(snapshot: dict, role: str) -> np.ndarray:
    logs = np.log(np.asarray(snapshot["weights"][role], dtype=np.float64))
    return logs - logs.mean(axis=1, keepdims=True)


def mean_corr(vectors: list[np.ndarray]) -> float:
    pairs = itertools.combinations(vectors, 2)
    return float(np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("searches", nargs="+", type=Path)
    args = parser.parse_args()
    if len(args.searches) < 2:
        parser.error("agreement needs at least two searches")
    histories = [json.loads((d / "alpha_history.json").read_text()) for d in args.searches]
    count = min(len(h["snapshots"]) for h in histories)
    for index in range(count):
        snaps = [h["snapshots"][index] for h in histories]
        cells = [f"iter {snaps[0]['iteration']:5d}"]
        for role in ROLES:
            logs = [centred_logs(s, role) for s in snaps]
            if max(float(np.abs(x).max()) for x in logs) == 0.0:
                cells.append(f"{role}: uniform")
                continue
            edge = mean_corr(logs)
            op = mean_corr([x.mean(axis=0) for x in logs])
            spread = float(np.mean([x.std() for x in logs]))
            cells.append(
                f"{role}: edge corr {edge:+.2f} op corr {op:+.2f} log-weight std {spread:.3f}"
            )
        print("  ".join(cells))
    names = histories[0]["towers"]["box"]["op_names"]
    for role in ROLES:
        last = [centred_logs(h["snapshots"][count - 1], role).mean(axis=0) for h in histories]
        ranked = sorted(zip(names, np.mean(last, axis=0)), key=lambda t: -t[1])
        print(f"{role} ops: " + ", ".join(f"{n} {v:+.2f}" for n, v in ranked))


if __name__ == "__main__":
    main()
