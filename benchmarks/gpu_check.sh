#!/usr/bin/env bash
# One prepared GPU check (<= 8 minutes on one GPU): PPO env-steps/s on gymnax CartPole, DQN Atari-CNN updates/s,
# ScaleZero reference-size (configs/scalezero/atari8.yaml model) search decisions/s and learner samples/s, PVN
# pretraining updates/s (Nature encoder, 100 tasks), each on 1 and on all local devices, float32 vs bfloat16 where
# the learner takes run.precision (PPO, DQN), printed as one table.
#   bash benchmarks/gpu_check.sh              # on the GPU host
#   bash benchmarks/gpu_check.sh --cpu-smoke  # tiny sizes on CPU (2 forced host devices): proves the script runs
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${1:-}" == "--cpu-smoke" ]]; then
  exec timeout 900 "$PYTHON" benchmarks/bench_scaling.py --gpu-check --cpu-smoke --rounds 1 --min-seconds 0.5
fi
"$PYTHON" -c "import jax; print('devices:', jax.devices())"
exec timeout 480 "$PYTHON" benchmarks/bench_scaling.py --gpu-check --rounds 3 --min-seconds 2
