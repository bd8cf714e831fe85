#!/usr/bin/env bash
# The [S] Table 2 grid at its budget (docs/td3.md): dense TD3, DS-TD3 and static sparse TD3 on HalfCheetah-v5,
# 1M steps, seeds 1-5, run from a snapshot of one commit so that every row comes from the same code, into a folder
# outside the git work tree, with checkpoints (replay buffer included) every 50k steps.
#
#   bash benchmark/td3_halfcheetah_1m.sh start    # (re)start the grid in the background, two runs at a time
#   bash benchmark/td3_halfcheetah_1m.sh status   # the last evaluation step each run has logged
#   bash benchmark/td3_halfcheetah_1m.sh sync     # copy newly finished rows into benchmark/results/ (then commit)
#
# `start` lays the snapshot if it is missing, copies the committed rows into the grid's own results file (the sweep
# skips runs that have a row), and starts benchmark/sweep.py detached: killed runs resume from their checkpoints,
# runs whose folder is gone start again. Settings (environment variables): EXP, the grid's folder (default: exp17
# beside the checkout); COMMIT, the code the runs use (default be39114, the commit of every row so far); SNAP, where
# its snapshot lies (default: snap/COMMIT beside the checkout); PYTHON (default: python); ROWS, the committed results
# file (default: benchmark/results/td3_halfcheetah_1m.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
parent="$(cd .. && pwd)"
commit=${COMMIT:-be39114}
exp=${EXP:-$parent/exp17}
snap=${SNAP:-$parent/snap/$commit}
python=${PYTHON:-python}
rows=${ROWS:-benchmark/results/td3_halfcheetah_1m.jsonl}

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
            print(f"row {row['id']}: {row['method']} seed {row['seed']}, final return {row['final_eval_return']:.0f}")
EOF
}

case "${1:-}" in
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
    merge "$rows" "$exp/td3_halfcheetah_1m.jsonl" > /dev/null
    (cd "$snap" && nohup setsid "$python" benchmark/sweep.py --scripts td3 --envs HalfCheetah-v5 \
      --methods dense set static --sparsities 0.5 --seeds 1 2 3 4 5 --workers 2 \
      --results "$exp/td3_halfcheetah_1m.jsonl" --runs-dir "$exp" \
      --extra --checkpoint-frequency 50000 --checkpoint-buffer >> "$exp/sweep.log" 2>&1 < /dev/null &)
    echo "started: sweep log $exp/sweep.log, run logs $exp/logs/, code $snap ($commit)"
    ;;
  status)
    for log in "$exp"/logs/*.log; do
      [ -e "$log" ] || continue
      echo "$(basename "$log" .log): $(grep -o 'global_step=[0-9]*' "$log" | tail -n 1 || true)"
    done
    ;;
  sync)
    merge "$exp/td3_halfcheetah_1m.jsonl" "$rows"
    ;;
  *)
    echo "usage: bash benchmark/td3_halfcheetah_1m.sh start|status|sync" >&2
    exit 2
    ;;
esac
