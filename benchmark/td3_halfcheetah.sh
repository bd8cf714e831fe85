#!/usr/bin/env bash
# DS-TD3 (set) vs dense TD3 vs static sparse TD3 on HalfCheetah-v5, 3 seeds each: the experiment in docs/td3.md.
# Runs JOBS runs at a time, each on one torch thread; every run writes runs/<name>/summary.json and its tensorboard
# events. Usage (from the directory that should hold runs/):
#   STEPS=150000 JOBS=2 bash benchmark/td3_halfcheetah.sh
set -euo pipefail
script="$(cd "$(dirname "$0")/.." && pwd)/sparse_td3_continuous.py"
steps=${STEPS:-150000}
jobs=${JOBS:-2}
mkdir -p logs
for seed in 1 2 3; do
  for method in dense set static; do
    echo "$method $seed"
  done
done | OMP_NUM_THREADS=1 xargs -P "$jobs" -L 1 bash -c \
  'python "$0" --sparse-method "$1" --seed "$2" --total-timesteps '"$steps"' --exp-name td3_hc_'"$steps"' \
     > "logs/td3_hc_'"$steps"'_$1_$2.log" 2>&1 && echo "done $1 $2"' "$script"
