"""Wall time of this project's dense agents next to CleanRL's, at the same hyperparameters, runs alternated.

CleanRL is its PyPI release (cleanrl 0.4.8), in a virtual environment of its own with its own pins
(benchmark/cleanrl-requirements.txt; make it with `bash benchmark/setup_cleanrl.sh`), run through
benchmark/cleanrl_run.py, which sets one torch thread and supplies the one name gym 0.25 lacks. Pairs:

    td3: sparse_td3_continuous.py --sparse-method dense   vs  cleanrl/td3_continuous_action.py   (HalfCheetah-v4)
    sac: sparse_sac_continuous.py --sparse-method dense   vs  cleanrl/sac_continuous_action.py   (HalfCheetah-v4)
    ppo: sparse_ppo.py --sparse-method dense              vs  cleanrl/ppo_continuous_action.py   (HalfCheetah-v4)
    dqn: sparse_dqn_atari.py --sparse-method dense        vs  cleanrl/dqn.py                      (CartPole-v1)

Every run is a fresh process pinned to one core (`taskset -c CORE`) with OMP_NUM_THREADS=1 and one torch thread,
started in a scratch folder. The figure is the whole process's wall time (interpreter start, imports, environment
creation, the run, this project's one end-of-run evaluation: CleanRL's scripts have none), measured from outside.
Each pair is one run of each side, back to back; the side that goes first alternates from pair to pair (ABBA), so a
slow stretch of a busy machine lands on both. The ratio is project time / CleanRL time per pair (below 1: this
project is faster); the report gives its median and range over the pairs. The learning phase is timed too: this
project's from its summary.json (learning steps per second, evaluation excluded), CleanRL's from the times its
per-episode lines ("global_step=N, ...") reach the pipe, as seconds per environment step between the first such line
after learning starts and the last one.

Both sides run HalfCheetah-v4 (the newest HalfCheetah gym 0.25 has; gymnasium still has it), on their own MuJoCo
(this project's mujoco 3+/4, CleanRL's 2.3.7): the same model, a similar but not identical simulation cost.
Where CleanRL 0.4.8's code fixes something this project's has a flag for, the project is set to match; what cannot
be matched is listed in NOTES and printed with the results.

    bash benchmark/setup_cleanrl.sh                       # once: .venv-cleanrl/
    python benchmark/vs_cleanrl.py --agents td3 sac --budget issue --pairs 3
    python benchmark/vs_cleanrl.py --budget quick --pairs 2   # all four, short runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CLEANRL_PYTHON = os.path.join(ROOT, ".venv-cleanrl", "bin", "python")
CLEANRL_RUNNER = os.path.join(ROOT, "benchmark", "cleanrl_run.py")
AGENTS = ("td3", "sac", "ppo", "dqn")
# The budgets: "issue" is issue 15's (9,000 HalfCheetah steps of which 4,000 learn at batch 256); "quick" checks the
# harness end to end in a few minutes.
BUDGETS: dict[str, dict[str, dict[str, int]]] = {
    "issue": {
        "td3": {"total": 9000, "learning_starts": 5000},
        # CleanRL 0.4.8's SAC updates from the moment its buffer holds a batch (step 257), whatever
        # --learning-starts says; both sides therefore start learning there, and 4,000 steps follow, as for TD3.
        "sac": {"total": 4257, "learning_starts": 257},
        "ppo": {"total": 5 * 2048, "learning_starts": 0},
        "dqn": {"total": 20000, "learning_starts": 10000},  # cleanrl/dqn.py's own defaults
    },
    "quick": {
        "td3": {"total": 2500, "learning_starts": 2000},
        "sac": {"total": 757, "learning_starts": 257},
        "ppo": {"total": 2 * 2048, "learning_starts": 0},
        "dqn": {"total": 11000, "learning_starts": 10000},
    },
}
# What the two sides do differently at these settings, all fixed in CleanRL 0.4.8's code.
NOTES = {
    "td3": [
        "CleanRL clips gradient norms at 0.5 (critics and actor); this project does not clip",
        "CleanRL's replay buffer is a deque of tuples sampled with random.sample and stacked per batch; "
        "this project's is preallocated numpy arrays",
        "this project runs one 1-episode evaluation at the end (about 1,000 actor forwards and env steps)",
    ],
    "sac": [
        "hidden layers: CleanRL 256-128, this project 256-256 (about 1.6x the FLOPs of CleanRL's critics)",
        "CleanRL updates from step 257 regardless of --learning-starts; both sides here use learning starts 257",
        "CleanRL's autotune recomputes the policy forward for the alpha loss",
        "this project runs one 1-episode evaluation at the end",
    ],
    "ppo": [
        "CleanRL clips actions and normalizes observations and rewards in its own gym wrapper, this project "
        "with gymnasium's wrappers",
        "CleanRL builds a fresh target network every update and copies weights into it every epoch",
        "this project runs one 1-episode evaluation at the end",
    ],
    "dqn": [
        "hidden layers: CleanRL 120-84, this project 120-120 (one width for both)",
        "CleanRL clips gradient norms at 0.5; this project does not clip",
        "this project runs one 1-episode evaluation at the end",
    ],
}


@dataclasses.dataclass
class Budget:
    total: int
    learning_starts: int


def project_command(agent: str, budget: Budget, python: str = sys.executable) -> list[str]:
    """This project's dense run at CleanRL 0.4.8's hyperparameters (each script's flags differ from CleanRL's
    defaults where the project follows its papers, so every one that matters is set here)."""
    t, ls = budget.total, budget.learning_starts
    # One evaluation, at the end (the scripts always evaluate there), one episode long: the least there is.
    common = ["--sparse-method", "dense", "--seed", "1", "--torch-threads", "1", "--no-cuda"]
    common += ["--total-timesteps", str(t), "--eval-frequency", str(10 * t), "--eval-episodes", "1"]
    if agent == "td3":
        flags = ["--env-id", "HalfCheetah-v4", "--learning-starts", str(ls), "--buffer-size", str(t)]
        flags += ["--batch-size", "256", "--learning-rate", "3e-4", "--weight-decay", "0", "--policy-frequency", "2"]
        flags += ["--policy-noise", "0.2", "--exploration-noise", "0.1", "--noise-clip", "0.5", "--tau", "0.005"]
        flags += ["--gamma", "0.99", "--hidden-width", "256"]
        script = "sparse_td3_continuous.py"
    elif agent == "sac":
        flags = ["--env-id", "HalfCheetah-v4", "--learning-starts", str(ls), "--buffer-size", str(t)]
        flags += ["--batch-size", "256", "--policy-lr", "3e-4", "--q-lr", "1e-3", "--policy-frequency", "1"]
        flags += ["--target-network-frequency", "1", "--tau", "0.005", "--gamma", "0.99", "--autotune"]
        flags += ["--hidden-width", "256"]
        script = "sparse_sac_continuous.py"
    elif agent == "ppo":
        flags = ["--env-id", "HalfCheetah-v4", "--num-envs", "1", "--num-steps", "2048", "--num-minibatches", "32"]
        flags += ["--update-epochs", "10", "--learning-rate", "3e-4", "--anneal-lr", "--ent-coef", "0"]
        flags += ["--vf-coef", "0.5", "--clip-coef", "0.2", "--clip-vloss", "--max-grad-norm", "0.5"]
        flags += ["--gamma", "0.99", "--gae-lambda", "0.95", "--norm-adv"]
        flags += ["--norm-obs", "True", "--norm-reward", "True"]  # these two default to the preset's choice
        flags += ["--hidden-width", "64"]
        script = "sparse_ppo.py"
    elif agent == "dqn":
        flags = ["--env-id", "CartPole-v1", "--learning-starts", str(ls), "--buffer-size", "10000"]
        flags += ["--batch-size", "32", "--learning-rate", "7e-4", "--target-network-frequency", "500"]
        flags += ["--start-e", "1", "--end-e", "0.05", "--exploration-steps", str(int(0.8 * t))]
        flags += ["--train-frequency", "1", "--gamma", "0.99", "--loss", "mse", "--hidden-width", "120"]
        flags += ["--weight-decay", "0", "--eval-epsilon", "0"]
        script = "sparse_dqn_atari.py"
    else:
        raise ValueError(f"unknown agent {agent!r}")
    return [python, "-u", os.path.join(ROOT, script), *common, *flags]


CLEANRL_SCRIPTS = {
    "td3": "td3_continuous_action",
    "sac": "sac_continuous_action",
    "ppo": "ppo_continuous_action",
    "dqn": "dqn",
}


def cleanrl_command(agent: str, budget: Budget, python: str = DEFAULT_CLEANRL_PYTHON) -> list[str]:
    """CleanRL 0.4.8's script at its own defaults but for the environment, the budget and the device."""
    t, ls = budget.total, budget.learning_starts
    common = ["--seed", "1", "--cuda", "false", "--prod-mode", "false", "--capture-video", "false"]
    common += ["--total-timesteps", str(t)]
    if agent == "td3":
        flags = ["--gym-id", "HalfCheetah-v4", "--learning-starts", str(ls), "--buffer-size", str(t)]
        flags += ["--batch-size", "256", "--learning-rate", "3e-4", "--policy-frequency", "2"]
    elif agent == "sac":
        flags = ["--gym-id", "HalfCheetah-v4", "--learning-starts", str(ls), "--buffer-size", str(t)]
        flags += ["--batch-size", "256", "--policy-lr", "3e-4", "--q-lr", "1e-3", "--policy-frequency", "1"]
        flags += ["--autotune", "true"]
    elif agent == "ppo":
        flags = ["--gym-id", "HalfCheetah-v4", "--num-envs", "1", "--num-steps", "2048", "--n-minibatch", "32"]
        flags += ["--update-epochs", "10", "--learning-rate", "3e-4"]
    elif agent == "dqn":
        flags = ["--gym-id", "CartPole-v1", "--learning-starts", str(ls), "--buffer-size", "10000"]
        flags += ["--batch-size", "32", "--learning-rate", "7e-4", "--target-network-frequency", "500"]
        flags += ["--end-e", "0.05", "--exploration-fraction", "0.8", "--train-frequency", "1"]
    else:
        raise ValueError(f"unknown agent {agent!r}")
    return [python, "-u", CLEANRL_RUNNER, CLEANRL_SCRIPTS[agent], *common, *flags]


def pair_order(pairs: int) -> list[tuple[str, str]]:
    """The order of the two sides in each pair: project first in even pairs, CleanRL first in odd ones (ABBA)."""
    return [("project", "cleanrl") if i % 2 == 0 else ("cleanrl", "project") for i in range(pairs)]


def pinned(cmd: list[str], core: int | None) -> list[str]:
    """`cmd` under `taskset -c core` (where taskset exists; otherwise unpinned, and the report says so)."""
    if core is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


STEP_LINE = re.compile(r"global_step=(\d+)")


def learning_seconds_per_step(stamped: list[tuple[float, str]], learning_starts: int) -> float | None:
    """Seconds per environment step after learning starts, from CleanRL's per-episode lines and the times they came:
    between the first line at or after `learning_starts` and the last line. None with fewer than two such lines."""
    points = [(int(m.group(1)), t) for t, line in stamped if (m := STEP_LINE.search(line))]
    points = [(step, t) for step, t in points if step >= learning_starts]
    if len(points) < 2 or points[-1][0] == points[0][0]:
        return None
    (step0, t0), (step1, t1) = points[0], points[-1]
    return (t1 - t0) / (step1 - step0)


def run_timed(cmd: list[str], cwd: str) -> tuple[float, list[tuple[float, str]]]:
    """Run `cmd` in `cwd`; its wall time from start to exit, and each output line with the time it arrived."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)  # each side's interpreter sees only its own packages
    stamped: list[tuple[float, str]] = []
    start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            stamped.append((time.perf_counter() - start, line.rstrip("\n")))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(line for _, line in stamped[-20:])
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    return wall, stamped


def project_learning_seconds_per_step(cwd: str) -> float | None:
    """Seconds per learning environment step from the run's summary.json (its learning_sps excludes evaluation)."""
    runs = os.path.join(cwd, "runs")
    for name in os.listdir(runs) if os.path.isdir(runs) else []:
        path = os.path.join(runs, name, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                sps = json.load(f).get("learning_sps")
            return 1.0 / sps if sps and sps == sps else None  # NaN when the run never learned
    return None


def run_side(side: str, agent: str, budget: Budget, opts: argparse.Namespace) -> dict:
    cmd = (
        project_command(agent, budget, opts.project_python)
        if side == "project"
        else cleanrl_command(agent, budget, opts.cleanrl_python)
    )
    with tempfile.TemporaryDirectory(prefix=f"vs-cleanrl-{side}-") as cwd:
        wall, stamped = run_timed(pinned(cmd, opts.core), cwd)
        if side == "project":
            per_step = project_learning_seconds_per_step(cwd)
        else:
            per_step = learning_seconds_per_step(stamped, budget.learning_starts)
    return {"wall_s": wall, "learning_s_per_step": per_step}


def ratio_stats(project: list[float], cleanrl: list[float]) -> dict:
    """Per-pair ratios project / CleanRL with their median, min and max (below 1: this project takes less time)."""
    if len(project) != len(cleanrl) or not project:
        raise ValueError("need the same, nonzero number of runs on both sides")
    ratios = [p / c for p, c in zip(project, cleanrl)]
    return {"ratios": ratios, "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def compare(agent: str, budget: Budget, opts: argparse.Namespace, log=print) -> dict:
    runs: dict[str, list[dict]] = {"project": [], "cleanrl": []}
    for i, order in enumerate(pair_order(opts.pairs)):
        for side in order:
            result = run_side(side, agent, budget, opts)
            runs[side].append(result)
            log(f"{agent} pair {i + 1}/{opts.pairs} {side}: {result['wall_s']:.1f} s")
    out = {
        "agent": agent,
        "total_timesteps": budget.total,
        "learning_starts": budget.learning_starts,
        "project_command": " ".join(project_command(agent, budget, "python")),
        "cleanrl_command": " ".join(cleanrl_command(agent, budget, "python")),
        "runs": runs,
        "wall": ratio_stats([r["wall_s"] for r in runs["project"]], [r["wall_s"] for r in runs["cleanrl"]]),
        "notes": NOTES[agent],
    }
    steps = [(p["learning_s_per_step"], c["learning_s_per_step"]) for p, c in zip(runs["project"], runs["cleanrl"])]
    if all(p is not None and c is not None for p, c in steps):
        out["learning"] = ratio_stats([p for p, _ in steps], [c for _, c in steps])
    return out


def report(result: dict) -> str:
    w = result["wall"]
    p = [r["wall_s"] for r in result["runs"]["project"]]
    c = [r["wall_s"] for r in result["runs"]["cleanrl"]]
    lines = [
        f"{result['agent']}: {result['total_timesteps']} steps, learning from {result['learning_starts']}, "
        f"{len(p)} pairs",
        f"  wall s, project: {', '.join(f'{x:.1f}' for x in p)} (median {statistics.median(p):.1f})",
        f"  wall s, CleanRL: {', '.join(f'{x:.1f}' for x in c)} (median {statistics.median(c):.1f})",
        f"  wall time project / CleanRL: median {w['median']:.2f}x, range {w['min']:.2f}-{w['max']:.2f}",
    ]
    if "learning" in result:
        lr = result["learning"]
        pm = statistics.median(r["learning_s_per_step"] for r in result["runs"]["project"]) * 1e3
        cm = statistics.median(r["learning_s_per_step"] for r in result["runs"]["cleanrl"]) * 1e3
        lines.append(
            f"  learning phase ms/step, project {pm:.2f}, CleanRL {cm:.2f}: ratio median {lr['median']:.2f}x, "
            f"range {lr['min']:.2f}-{lr['max']:.2f}"
        )
    lines += [f"  note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="issue")
    parser.add_argument("--pairs", type=int, default=3, help="alternated pairs of runs per agent")
    parser.add_argument("--core", type=int, default=0, help="the core every run is pinned to")
    parser.add_argument("--cleanrl-python", default=os.environ.get("CLEANRL_PYTHON", DEFAULT_CLEANRL_PYTHON))
    parser.add_argument("--project-python", default=sys.executable)
    parser.add_argument("--out", help="JSON file (default: benchmark/results/vs_cleanrl_<budget>.json)")
    opts = parser.parse_args(argv)
    if not os.path.exists(opts.cleanrl_python):
        sys.exit(f"no CleanRL interpreter at {opts.cleanrl_python}: run `bash benchmark/setup_cleanrl.sh` first")
    header = {
        "commit": git_commit(),
        "budget": opts.budget,
        "pairs": opts.pairs,
        "core": opts.core if shutil.which("taskset") else None,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    results = []
    for agent in opts.agents:
        result = compare(agent, Budget(**BUDGETS[opts.budget][agent]), opts)
        print(report(result), flush=True)
        results.append(result)
    header["load_average_at_end"] = os.getloadavg()
    out = opts.out or os.path.join(ROOT, "benchmark", "results", f"vs_cleanrl_{opts.budget}.json")
    with open(out, "w") as f:
        json.dump({**header, "results": results}, f, indent=1)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
