"""Training speed of every sparse method relative to dense, for one script, measured in one run on one machine.

Each run trains for the same number of steps with the script's defaults, with topology updates and pruning inside
the measured window; the figure is environment steps per second while learning, evaluation excluded.

Noise: on a small shared VM, identical runs differ by 10-40% depending on what the host is doing (measured here;
running dense and sparse side by side on two cores did not cancel it). So every run is a fresh process with one
torch thread, the methods take turns in a rotated order for --rounds rounds, and the table gives each method's
median and best (fastest) run as ratios to dense's median and best. The best of several runs is the usual
noise-robust estimate of what the code costs, as `timeit` takes the minimum.

    python benchmark/speed.py --script td3 --steps 2000 --rounds 5
    python benchmark/speed.py --script dqn --env-id CartPole-v1
"""

import argparse
import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SCRIPTS = {
    "td3": "sparse_td3_continuous",
    "sac": "sparse_sac_continuous",
    "dqn": "sparse_dqn_atari",
    "ppo": "sparse_ppo",
}
METHODS = ["dense", "static", "set", "rigl", "prune"]


def measure(module, method: str, steps: int, learning_starts: int, env_id: str | None) -> float:
    settings = dict(
        sparse_method=method,
        total_timesteps=learning_starts + steps,
        learning_starts=learning_starts,
        buffer_size=learning_starts + steps,
        eval_frequency=10 * (learning_starts + steps),  # one evaluation, at the end, not timed
        eval_episodes=1,
        update_end=steps,  # every topology update of the default interval falls inside the window
    )
    if env_id:
        settings["env_id"] = env_id
    fields = {f.name for f in dataclasses.fields(module.Args)}  # PPO has no warm-up and no replay buffer
    return module.train(module.Args(**{k: v for k, v in settings.items() if k in fields}))["learning_sps"]


def worker(opts: argparse.Namespace) -> None:
    """One measurement in this process, pinned to one core; prints its steps per second as the last line."""
    import torch

    if opts.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {opts.core})
    torch.set_num_threads(1)
    os.chdir(tempfile.mkdtemp(prefix="sparse-speed-"))  # runs/ of the timing runs go to a scratch folder
    sps = measure(
        importlib.import_module(SCRIPTS[opts.script]), opts.worker, opts.steps, opts.learning_starts, opts.env_id
    )
    print(json.dumps({"sps": sps}))


def run(opts: argparse.Namespace, method: str) -> float:
    """One measurement in a fresh process; returns its learning steps per second."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        method,
        "--script",
        opts.script,
        "--steps",
        str(opts.steps),
        "--learning-starts",
        str(opts.learning_starts),
    ]
    if opts.env_id:
        cmd += ["--env-id", opts.env_id]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["sps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="td3")
    parser.add_argument("--steps", type=int, default=2000, help="learning steps timed per run")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="runs per method")
    parser.add_argument("--env-id", help="environment (default: the script's)")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        worker(opts)
        return
    module = importlib.import_module(SCRIPTS[opts.script])
    sps: dict[str, list[float]] = {m: [] for m in METHODS}
    for r in range(opts.rounds):
        for method in METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]:
            sps[method].append(run(opts, method))
    env = opts.env_id or module.Args.env_id
    print(
        f"{SCRIPTS[opts.script]}.py on {env}, {opts.steps} learning steps, {opts.rounds} runs per method, "
        "one thread per run"
    )
    print("| method | steps/s: median | best | all runs | ratio to dense: median | best |")
    print("|---|---|---|---|---|---|")
    dense_median, dense_best = statistics.median(sps["dense"]), max(sps["dense"])
    for method, values in sps.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(
            f"| {method} | {statistics.median(values):.1f} | {max(values):.1f} | {runs} "
            f"| {statistics.median(values) / dense_median:.3f} | {max(values) / dense_best:.3f} |"
        )


if __name__ == "__main__":
    main()
