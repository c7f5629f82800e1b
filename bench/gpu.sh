#!/usr/bin/env bash
# The benchmarks on a CUDA machine, in one go (for `device` runs, or any GPU box with torch):
#   bash bench/gpu.sh OUT_DIR
# Installs wheels from .whl/ first when that folder exists (machines without a package index).
set -u
out=${1:-bench_out}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
timeout 60 python3 bench/supernet.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/supernet.txt"
timeout 120 python3 bench/search_iteration.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/search_iteration.txt"
timeout 60 python3 bench/inference.py --device cuda --repeats 10 --warmup 3 2>&1 | tee "$out/inference.txt"
# the fused compute path's head on the GPU: eager, then launch-free (CUDA graphs for a fixed size)
timeout 120 python3 bench/head_latency.py --device cuda --threads 0 2>&1 | tee "$out/head_eager.txt"
timeout 300 python3 bench/head_latency.py --device cuda --threads 0 --compile reduce-overhead \
  2>&1 | tee "$out/head_graphs.txt"
timeout 300 python3 bench/head_latency.py --device cuda --threads 0 --size 800x1333 --num-classes 80 \
  --standard-config configs/coco/retinanet_R_50_FPN_1x.yaml \
  --fad-config configs/coco/fad_retinanet_R_50_FPN_1x.yaml --genotypes paper 2>&1 | tee "$out/head_r50.txt"
