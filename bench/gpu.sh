#!/usr/bin/env bash
# The benchmarks on a CUDA machine (for `device` runs, or any GPU box with torch):
#   bash bench/gpu.sh OUT_DIR [eager|compiled|all]
# "eager" (7 min at most): the search cell, the search iteration, the detector and the heads
# (demo size and R-50 at 800x1333), eager; "compiled" (8.5 min at most): the search cell, the
# heads and the search iteration compiled in reduce-overhead mode (CUDA graphs for a fixed input
# size: no per-kernel launch). Each part fits one 10-minute device call; "all" (default): both.
# Installs wheels from .whl/ first when that folder exists (machines without a package index).
set -u
out=${1:-bench_out}
part=${2:-all}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
if [ "$part" = eager ] || [ "$part" = all ]; then
  timeout 60 python3 bench/supernet.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/supernet.txt"
  timeout 120 python3 bench/search_iteration.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/search_iteration.txt"
  timeout 60 python3 bench/inference.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/inference.txt"
  timeout 90 python3 bench/head_latency.py --device cuda --threads 0 2>&1 | tee "$out/head_eager.txt"
  timeout 90 python3 bench/head_latency.py --device cuda --threads 0 --size 800x1333 --num-classes 80 \
    --standard-config configs/coco/retinanet_R_50_FPN_1x.yaml \
    --fad-config configs/coco/fad_retinanet_R_50_FPN_1x.yaml --genotypes paper 2>&1 | tee "$out/head_r50.txt"
fi
if [ "$part" = compiled ] || [ "$part" = all ]; then
  # the search cell (its backward too) as CUDA graphs, beside the eager cell
  timeout 100 python3 bench/supernet.py --device cuda --repeats 10 --warmup 3 \
    --compile reduce-overhead 2>&1 | tee "$out/supernet_graphs.txt"
  # the fused path's head launch-free: each tower one CUDA graph (compilation in the warmup)
  timeout 200 python3 bench/head_latency.py --device cuda --threads 0 --genotypes paper \
    --compile reduce-overhead 2>&1 | tee "$out/head_graphs.txt"
  # the search step launch-free: full DARTS and the demo's one-level search, towers compiled
  timeout 200 python3 bench/search_iteration.py --device cuda --repeats 10 --warmup 3 \
    --variants "search, RepShare" "one level" --opts MODEL.COMPILE True \
    MODEL.COMPILE_MODE reduce-overhead 2>&1 | tee "$out/search_iteration_graphs.txt"
fi
