"""Record and compare the results of short fixed-seed runs, to show that a change left training exactly as it was.

A refactor or a speed change that keeps the arithmetic must give, for the same seed, the same summary.json (every
evaluation return, weight count, FLOP count, topology-update count and argument) and the same saved model. This
runs a fixed set of short real runs of every script and method (plus runs with checkpoints, two environments and
saved models) from a source tree and writes their summaries, minus what depends on the clock or the folder, and a
digest of each saved model. Record before the change from a copy of the old code, after it from the new, compare:

    git worktree add /tmp/before HEAD             # or: mkdir /tmp/before && git archive HEAD | tar -x -C /tmp/before
    python benchmark/same_seed.py record /tmp/before before.json
    python benchmark/same_seed.py record . after.json
    python benchmark/same_seed.py compare before.json after.json

`--only td3,dqn-rigl` keeps the runs whose names start with one of these. Each run is a fresh process with one
torch thread in a temporary folder; all 23 take about three minutes of one core.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import torch

METHODS = ("dense", "static", "set", "rigl", "prune")
CONTINUOUS = (
    "--total-timesteps 600 --learning-starts 100 --batch-size 32 --buffer-size 1000 --eval-frequency 300 "
    "--eval-episodes 1 --hidden-width 32 --update-interval 50 --update-end 400 --prune-start 100 --prune-end 400 "
    "--env-id InvertedPendulum-v5 --sparsity 0.8"
).split()
PPO = (
    "--env-id CartPole-v1 --total-timesteps 2048 --num-steps 128 --eval-frequency 1024 --eval-episodes 1 "
    "--hidden-width 32 --update-interval 20 --sparsity 0.8"
).split()
DQN = (
    "--env-id CartPole-v1 --total-timesteps 1500 --learning-starts 200 --batch-size 32 --hidden-width 32 "
    "--update-interval 20 --update-end 1000 --eval-frequency 750 --eval-episodes 1 --sparsity 0.8"
).split()
RUNS = {}
for m in METHODS:
    RUNS[f"td3-{m}"] = ["sparse_td3_continuous.py", "--sparse-method", m, *CONTINUOUS]
    RUNS[f"sac-{m}"] = ["sparse_sac_continuous.py", "--sparse-method", m, *CONTINUOUS]
    RUNS[f"ppo-{m}"] = ["sparse_ppo.py", "--sparse-method", m, *PPO]
    RUNS[f"dqn-{m}"] = ["sparse_dqn_atari.py", "--sparse-method", m, *DQN]
RUNS["td3-set-checkpoints"] = [*RUNS["td3-set"], "--checkpoint-frequency", "300", "--checkpoint-buffer", "--save-model"]
RUNS["sac-rigl-two-envs"] = [*RUNS["sac-rigl"], "--num-envs", "2", "--save-model"]
RUNS["ppo-continuous"] = [
    *"sparse_ppo.py --env-id InvertedPendulum-v5 --total-timesteps 2048 --num-steps 512 --eval-frequency 1024".split(),
    *"--eval-episodes 1 --hidden-width 32 --save-model".split(),
]
VOLATILE = ("wall_time_s", "learning_sps", "run_dir", "model_path")  # the clock's and the folder's, not training's


def model_digest(path: str) -> str:
    """A digest of every tensor and value in a saved model, nested state dicts included, tensors by their bytes
    (repr would summarize a large tensor); its args are left out, the summary already holds them."""
    digest = hashlib.sha1()

    def add(key: str, value: object) -> None:
        if isinstance(value, dict):
            for k in sorted(value, key=str):
                add(f"{key}/{k}", value[k])
        elif torch.is_tensor(value):
            digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(f"{key}={value!r}".encode())

    add("", {k: v for k, v in torch.load(path, weights_only=False).items() if k != "args"})
    return digest.hexdigest()


def record(tree: str, only: list[str] | None) -> dict:
    results = {}
    for name, (script, *flags) in RUNS.items():
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, os.path.join(os.path.abspath(tree), script), *flags, "--exp-name", "same"]
            done = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
            if done.returncode:
                results[name] = {"error": done.stderr[-2000:]}
                print(f"{name}: failed\n{done.stderr[-1000:]}", flush=True)
                continue
            (run,) = os.listdir(os.path.join(scratch, "runs"))
            folder = os.path.join(scratch, "runs", run)
            with open(os.path.join(folder, "summary.json")) as f:
                summary = json.load(f)
            for key in VOLATILE:
                summary.pop(key, None)
            if os.path.exists(os.path.join(folder, "same.pt")):
                summary["model_digest"] = model_digest(os.path.join(folder, "same.pt"))
            results[name] = summary
            print(f"{name}: final evaluation return {summary['final_eval_return']}", flush=True)
    return results


def compare(a: dict, b: dict) -> list[str]:
    """The names of the runs whose records differ or that only one side has."""
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the fixed-seed runs of a source tree and write their records")
    rec.add_argument("tree", help="a folder holding the four scripts")
    rec.add_argument("out", help="the JSON file to write")
    rec.add_argument("--only", help="comma-separated prefixes of run names, e.g. td3,dqn-rigl")
    cmp = sub.add_parser("compare", help="exit 1 and name the runs that differ")
    cmp.add_argument("a")
    cmp.add_argument("b")
    opts = parser.parse_args()
    if opts.command == "record":
        torch.set_num_threads(1)
        results = record(opts.tree, opts.only.split(",") if opts.only else None)
        with open(opts.out, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True, default=str)
        sys.exit(1 if any("error" in r for r in results.values()) else 0)
    with open(opts.a) as fa, open(opts.b) as fb:
        a, b = json.load(fa), json.load(fb)
    differ = compare(a, b)
    names = a.keys() | b.keys()
    print(f"identical: {len(names) - len(differ)} of {len(names)} runs", end="")
    print(f"; differ or missing on one side: {', '.join(differ)}" if differ else "")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
