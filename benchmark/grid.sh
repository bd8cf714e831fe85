#!/usr/bin/env bash
# Long experiment grids that outlive a session: each runs from a snapshot of one commit, so that every row comes from
# the same code, into a folder outside the git work tree, two runs at a time, with checkpoints (replay buffer
# included) every 50k steps, so a killed run resumes exactly.
#
#   bash benchmark/grid.sh GRID start    # (re)start GRID in the background
#   bash benchmark/grid.sh GRID status   # each run's last progress line (step, return, time left)
#   bash benchmark/grid.sh GRID sync     # copy newly finished rows into benchmark/results/GRID.jsonl (then commit)
#   bash benchmark/grid.sh GRID commands # the sweep command(s) `start` runs, in order
#
# Grids:
#   td3_halfcheetah_1m  [S] Table 2 at its budget (docs/td3.md): dense TD3, DS-TD3 and static sparse TD3 (50%) on
#                       HalfCheetah-v5, 1M steps, seeds 1-5; code be39114; folder exp17.
#   td3_scaling         issue 16's scaling experiment (docs/sparse_kernels.md): static sparse TD3 at width 1024, 95%
#                       and 99%, on the sparse kernels (--sparse-kernels 0.95: a fixed threshold, so runs repeat),
#                       against the dense width-256 default; HalfCheetah-v5, 200k steps, seeds 1-3; folder
#                       exp-td3-scaling; code 66da63c, whose summaries and rows give each network's training FLOPs
#                       (its training code is 7ee70b1's, the scripts' last change to what they compute); the
#                       cheapest runs first (dense, 99%, 95%), one one-run sweep each; then the control added
#                       after those 9 had finished, dense TD3 at width 1024, seeds 1-3 (same snapshot).
#
# `start` lays the snapshot if it is missing, copies the committed rows into the grid's own results file (the sweep
# skips runs that have a row), and starts benchmark/sweep.py detached: killed runs resume from their checkpoints,
# runs whose folder is gone start again. Settings (environment variables): EXP, the grid's folder (default: beside the
# checkout); COMMIT, the code the runs use; SNAP, where its snapshot lies (default: snap/COMMIT beside the checkout);
# PYTHON (default: python); ROWS, the committed results file (default: benchmark/results/GRID.jsonl); WORKERS, runs at
# a time (default 2, one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
parent="$(cd .. && pwd)"
grid=${1:-}
case "$grid" in
  td3_halfcheetah_1m) default_commit=be39114 folder=exp17 ;;
  td3_scaling) default_commit=66da63c folder=exp-td3-scaling ;;
  *)
    echo "usage: bash benchmark/grid.sh td3_halfcheetah_1m|td3_scaling start|status|sync|commands" >&2
    exit 2
    ;;
esac
commit=${COMMIT:-$default_commit}
exp=${EXP:-$parent/$folder}
snap=${SNAP:-$parent/snap/$commit}
python=${PYTHON:-python}
workers=${WORKERS:-2}
rows=${ROWS:-benchmark/results/$grid.jsonl}
results="$exp/$grid.jsonl"
checkpoints="--checkpoint-frequency 50000 --checkpoint-buffer"

# The grid's sweeps, one shell command per line, run in order from the snapshot.
sweeps() {
  local common="$python benchmark/sweep.py --scripts td3 --envs HalfCheetah-v5 --workers $workers --results $results"
  common="$common --runs-dir $exp"
  case "$grid" in
    td3_halfcheetah_1m)
      echo "$common --methods dense set static --sparsities 0.5 --seeds 1 2 3 4 5 --extra $checkpoints"
      ;;
    td3_scaling)
      # one one-run sweep per run, $workers at a time, cheapest first (dense seeds 1-3, static 99%, then static 95%,
      # the slowest), so that a lost folder costs the least and both cores stay busy to the end; each has the run id
      # it has in the one sweep over the union of the grids; --sparse-kernels reaches the dense runs too, where no
      # layer is masked, so none runs on the kernels
      local cells='{"methods":["dense"]} {"methods":["static"],"sparsities":[0.99],"widths":[1024]}'
      cells="$cells {\"methods\":[\"static\"],\"sparsities\":[0.95],\"widths\":[1024]}"
      # the control added once those 9 had finished: dense TD3 at width 1024 (does width itself help?), the slowest
      cells="$cells {\"methods\":[\"dense\"],\"widths\":[1024]}"
      local runs="" cell seed
      for cell in $cells; do
        for seed in 1 2 3; do runs="$runs '${cell%\}},\"seeds\":[$seed]}'"; done
      done
      common=${common/--workers $workers/--workers 1}
      echo "printf '%s\\n'$runs | xargs -d '\\n' -P $workers -I{} $common --steps 200000 --grid '[{}]'" \
        "--extra --sparse-kernels 0.95 $checkpoints"
      ;;
  esac
}

# merge FROM INTO: append to INTO the rows of FROM whose id INTO lacks; print each one added
merge() {
  "$python" - "$1" "$2" <<'EOF'
import json, os, sys
src, dst = sys.argv[1:]
have = set()
if os.path.exists(dst):
    have = {json.loads(line)["id"] for line in open(dst) if line.strip()}
with open(dst, "a") as out:
    for line in open(src) if os.path.exists(src) else []:
        if line.strip() and json.loads(line)["id"] not in have:
            row = json.loads(line)
            out.write(line if line.endswith("\n") else line + "\n")
            have.add(row["id"])
            sparsity = "" if row.get("sparsity") is None else f" {row['sparsity']}"
            width = "" if row.get("width") is None else f" width {row['width']}"
            print(f"row {row['id']}: {row['method']}{sparsity}{width} seed {row['seed']}, "
                  f"final return {row['final_eval_return']:.0f}")
EOF
}

case "${2:-}" in
  start)
    if pgrep -f "sweep.py .*--runs-dir $exp( |$)" > /dev/null; then
      echo "the grid's sweep is already running (pgrep -f 'sweep.py .*--runs-dir $exp')"
      exit 0
    fi
    if [ ! -d "$snap" ]; then
      mkdir -p "$snap"
      git archive "$commit" | tar -x -C "$snap"
    fi
    mkdir -p "$exp"
    merge "$rows" "$results" > /dev/null
    script=$(sweeps | sed 's/$/ >> "$0" 2>\&1/')  # each sweep's output to the log, $0 in the detached shell
    (cd "$snap" && nohup setsid bash -c "$script" "$exp/sweep.log" < /dev/null > /dev/null 2>&1 &)
    echo "started: sweep log $exp/sweep.log, run logs $exp/logs/, code $snap ($commit)"
    ;;
  status)
    for log in "$exp"/logs/*.log; do
      [ -e "$log" ] || continue
      # the scripts' progress lines: "step 145,000/200,000 (72.5%) | evaluation return ... | ... left"
      echo "$(basename "$log" .log): $(grep '^step [0-9,]*/' "$log" | tail -n 1 || true)"
    done
    ;;
  sync)
    merge "$results" "$rows"
    ;;
  commands)
    sweeps
    ;;
  *)
    echo "usage: bash benchmark/grid.sh $grid start|status|sync|commands" >&2
    exit 2
    ;;
esac
