"""Training speed of every sparse method relative to dense, for one script, measured in one process on one machine.

Each method trains for the same number of steps with the script's defaults (topology updates and pruning falling
inside the measured window); the figure is environment steps per second while learning, evaluation excluded.
Methods run in a rotated order each round. Shared machines drift (10% between identical runs is common on a
small VM), so each method is compared with the dense run of the same round, and the median of those paired
ratios over the rounds is reported with their range.

    python benchmark/speed.py --script td3 --steps 3000 --rounds 3
"""

import argparse
import dataclasses
import importlib
import os
import statistics
import sys
import tempfile

import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="td3")
    parser.add_argument("--steps", type=int, default=3000, help="learning steps timed per run")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--env-id", help="environment (default: the script's)")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    module = importlib.import_module(SCRIPTS[opts.script])
    sps: dict[str, list[float]] = {m: [] for m in METHODS}
    os.chdir(tempfile.mkdtemp(prefix="sparse-speed-"))  # runs/ of the timing runs go to a scratch folder
    for r in range(opts.rounds):
        order = METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]
        for method in order:
            sps[method].append(measure(module, method, opts.steps, opts.learning_starts, opts.env_id))
    env = opts.env_id or module.Args.env_id
    print(
        f"\n{SCRIPTS[opts.script]}.py on {env}, {opts.steps} learning steps x {opts.rounds} rounds, "
        f"{opts.threads} thread(s)"
    )
    print("| method | steps/s (median) | ratio to dense, median of rounds | range over rounds |")
    print("|---|---|---|---|")
    for method in METHODS:
        ratios = [m / d for m, d in zip(sps[method], sps["dense"])]
        print(
            f"| {method} | {statistics.median(sps[method]):.1f} | {statistics.median(ratios):.3f} "
            f"| {min(ratios):.3f} - {max(ratios):.3f} |"
        )


if __name__ == "__main__":
    main()
