"""Run a grid of training runs in parallel and collect one result row per run (resumable).

The grid is scripts x envs x methods x sparsities x seeds (x hidden widths, for dense width-scaled baselines),
given on the command line or in JSON with the same keys (a file, or inline); a JSON list of such grids runs their
union, e.g. dense at the default width beside sparse runs at another. Each run is a subprocess with one torch thread
(OMP_NUM_THREADS=1), at most --workers at a time (default: the machine's cores). A finished run appends one JSON
row to --results; a run whose id is already there is skipped, so an interrupted sweep continues where it stopped.
A run that was killed part-way (its folder has a checkpoint but no summary.json) is resumed from its last checkpoint
with the script's --resume, not started again: give the runs --checkpoint-frequency (and --checkpoint-buffer, so the
continuation is exact) through --extra. A run whose folder is gone starts from scratch.

    python benchmark/sweep.py --scripts td3 --envs HalfCheetah-v5 --methods dense set static --sparsities 0.5 \\
        --seeds 1 2 3 --steps 200000 --results results/td3.jsonl
    python benchmark/sweep.py --grid grid.json --results results/sac.jsonl --workers 2
    python benchmark/sweep.py --grid '[{"methods": ["dense"]}, {"methods": ["static"], "widths": [1024]}]' ...
    python benchmark/sweep.py ... --dry-run          # print the commands, run nothing
    python benchmark/sweep.py ... --extra --eval-frequency 51200   # flags for every run: --extra goes last
    python benchmark/sweep.py ... --runs-dir /data/exp --results /data/exp/rows.jsonl \\
        --extra --checkpoint-frequency 50000 --checkpoint-buffer   # long runs that survive being killed

--extra passes the rest of the command line to every run, so a sweep option written after it is refused up front.

Rows hold the run's summary figures (final and mean-of-last-10 evaluation returns, learning-curve area, active and
total weights, training FLOPs vs dense, wall time; per network, the weights, the inference FLOPs of one forward pass
and the training FLOPs of the run), its settings and the exact command.

Scale-out with Ray (optional: `pip install -r benchmark/requirements.txt`): `--ray local` starts a Ray instance on
this machine with --workers CPUs, `--ray auto` (or `--ray ADDRESS`) joins a running cluster. Each run is one Ray
task asking for one CPU; the driver writes the rows as tasks finish, so resuming works the same way. On a cluster,
every node needs this repository and the Python environment at the same paths, and --runs-dir and --results should
be on storage the nodes share (the run logs are written where the task runs).

    python benchmark/sweep.py --grid grid.json --results /shared/sac.jsonl --runs-dir /shared --ray auto
"""

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {
    "td3": "sparse_td3_continuous.py",
    "sac": "sparse_sac_continuous.py",
    "dqn": "sparse_dqn_atari.py",
    "ppo": "sparse_ppo.py",
}
GRID_KEYS = ("scripts", "envs", "methods", "sparsities", "seeds", "widths")


def expand(grid: dict) -> list[dict]:
    """One dict per run of the grid. Dense runs ignore sparsity, so they are made once per width, not per sparsity."""
    runs, seen = [], set()
    for script, env, method, sparsity, seed, width in itertools.product(*(grid[k] for k in GRID_KEYS)):
        run = {
            "script": script,
            "env": env,
            "method": method,
            "sparsity": None if method == "dense" else sparsity,
            "seed": seed,
            "width": width,
            "steps": grid.get("steps"),
            "extra": grid.get("extra", []),
        }
        key = json.dumps(run, sort_keys=True)
        if key not in seen:
            seen.add(key)
            runs.append(run)
    return runs


def run_id(run: dict) -> str:
    return hashlib.sha1(json.dumps(run, sort_keys=True).encode()).hexdigest()[:12]


def command(run: dict, rid: str) -> list[str]:
    cmd = [
        sys.executable,
        os.path.join(ROOT, SCRIPTS[run["script"]]),
        "--env-id",
        run["env"],
        "--sparse-method",
        run["method"],
        "--seed",
        str(run["seed"]),
        "--exp-name",
        f"sweep_{rid}",
    ]
    if run["sparsity"] is not None:
        cmd += ["--sparsity", str(run["sparsity"])]
    if run["width"] is not None:
        cmd += ["--hidden-width", str(run["width"])]
    if run["steps"] is not None:
        cmd += ["--total-timesteps", str(run["steps"])]
    return cmd + list(run["extra"])


def finished_ids(path: str) -> set[str]:
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {json.loads(line)["id"] for line in f if line.strip()}


def run_folders(rid: str, runs_dir: str) -> list[str]:
    """The folders of every attempt at run `rid` under runs_dir/runs, newest first."""
    runs = os.path.join(runs_dir, "runs")
    if not os.path.isdir(runs):
        return []
    folders = [os.path.join(runs, d) for d in os.listdir(runs) if f"__sweep_{rid}__" in d]
    return sorted(folders, key=os.path.getmtime, reverse=True)


def resumable_folder(rid: str, runs_dir: str) -> str | None:
    """The newest folder of a killed attempt at run `rid` that a checkpoint lets continue: no summary.json (the run
    did not finish) and a checkpoint.pt or checkpoint.prev.pt. None when the run has to start from scratch."""
    for folder in run_folders(rid, runs_dir):
        if os.path.exists(os.path.join(folder, "summary.json")):
            return None  # finished but its row is missing: result_row() picks it up, nothing to resume
        if any(os.path.exists(os.path.join(folder, f)) for f in ("checkpoint.pt", "checkpoint.prev.pt")):
            return folder
    return None


def execute(run: dict, rid: str, runs_dir: str, logs_dir: str) -> dict | None:
    """Run one training process, resuming a killed attempt from its checkpoint where there is one; return its result
    row, or None if it failed (its log says why)."""
    done = result_row(run, rid, runs_dir)
    if done is not None:
        return done  # finished in an earlier sweep that was killed before it wrote the row
    cmd = command(run, rid)
    folder = resumable_folder(rid, runs_dir)
    if folder is not None:
        cmd += ["--resume", folder]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # appended to: the log of a resumed run keeps what its earlier attempts printed
    with open(os.path.join(logs_dir, f"{rid}.log"), "a") as log:
        if folder is not None:
            print(f"sweep: resuming from the checkpoint in {folder}", file=log, flush=True)
        code = subprocess.call(cmd, cwd=runs_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        return None
    return result_row(run, rid, runs_dir)


def result_row(run: dict, rid: str, runs_dir: str) -> dict | None:
    """The result row of a finished run, read from its summary.json; None if no folder of the run has one."""
    # an attempt killed in an earlier sweep left a folder of the same run without a summary
    summary_paths = [os.path.join(d, "summary.json") for d in run_folders(rid, runs_dir)]
    summary_paths = [p for p in summary_paths if os.path.exists(p)]
    if not summary_paths:
        return None
    with open(max(summary_paths, key=os.path.getmtime)) as f:
        s = json.load(f)
    nets = s["networks"].values()
    return {
        "id": rid,
        **run,
        "final_eval_return": s["final_eval_return"],
        "mean_last_10_evals": s["mean_last_10_evals"],
        "lca": s["lca"],
        "active_weights": sum(n["active_weights"] for n in nets),
        "total_weights": sum(n["total_weights"] for n in nets),
        "train_flops_vs_dense": s["train_flops_vs_dense"],
        # per network: weights, inference FLOPs of one forward pass and (summaries since the field came) the
        # training FLOPs of the run, which compare across widths where the ratio to dense does not
        "networks": s["networks"],
        "total_timesteps": s["total_timesteps"],
        "evaluations": s["evaluations"],
        "wall_time_s": s["wall_time_s"],  # the script's own clock, which a resumed run carries over
        "run_dir": os.path.join(runs_dir, s["run_dir"]),
        "command": " ".join(command(run, rid)),
    }


def run_local(
    todo: list[tuple[dict, str]], runs_dir: str, logs_dir: str, opts: argparse.Namespace
) -> Iterator[tuple[str, dict | None]]:
    """Runs in --workers threads, each waiting on its training subprocess; yields (id, row) as runs finish."""
    with ThreadPoolExecutor(max_workers=max(1, opts.workers)) as pool:
        futures = {pool.submit(execute, run, rid, runs_dir, logs_dir): rid for run, rid in todo}
        for future in as_completed(futures):
            try:
                row = future.result()
            except Exception as e:  # a broken run must not stop the rows of the others from being written
                print(f"run {futures[future]}: {type(e).__name__}: {e}", flush=True)
                row = None
            yield futures[future], row


def run_ray(
    todo: list[tuple[dict, str]], runs_dir: str, logs_dir: str, opts: argparse.Namespace
) -> Iterator[tuple[str, dict | None]]:
    """One Ray task (one CPU) per run, on a local instance or a cluster; yields (id, row) as tasks finish."""
    try:
        import ray
    except ImportError:
        raise SystemExit("error: --ray needs Ray: pip install -r benchmark/requirements.txt") from None
    if opts.ray == "local":
        ray.init(num_cpus=max(1, opts.workers), include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=opts.ray, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(execute)
        refs = {task.remote(run, rid, runs_dir, logs_dir): rid for run, rid in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                row = ray.get(ready[0])
            except Exception as e:  # as in run_local: report it, keep collecting the others
                print(f"run {refs[ready[0]]}: {type(e).__name__}: {e}", flush=True)
                row = None
            yield refs[ready[0]], row
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--grid",
        help="JSON (a file, or inline) with any of: " + ", ".join(GRID_KEYS) + ", steps, extra; or a list of such "
        "objects: the union of their runs (flags given on the command line apply to every one)",
    )
    parser.add_argument("--scripts", nargs="+", choices=sorted(SCRIPTS), default=None)
    parser.add_argument("--envs", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--sparsities", nargs="+", type=float, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--widths", nargs="+", type=int, default=None, help="hidden widths (default: the script's)")
    parser.add_argument("--steps", type=int, help="--total-timesteps of every run (default: the script's)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="flags passed to every run (last)")
    parser.add_argument("--results", default="results/sweep.jsonl", help="result rows, one JSON object per line")
    parser.add_argument("--runs-dir", default=".", help="folder whose runs/ receives the runs' logs")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="runs at a time")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument(
        "--ray", metavar="ADDRESS", help="run each run as a Ray task: 'local' starts an instance, 'auto' joins one"
    )
    opts = parser.parse_args()
    # --extra swallows everything after it, so a sweep option written after it would be passed to every run, and
    # every run would fail on it minutes later; no script has an option of these names, so catch it here
    own = {opt for action in parser._actions for opt in action.option_strings}
    misplaced = [a for a in opts.extra if a.split("=")[0] in own]
    if misplaced:
        raise SystemExit(
            f"error: {misplaced[0]} comes after --extra, which passes everything after it to the runs; "
            "put --extra and its flags last"
        )

    defaults = {
        "scripts": ["td3"],
        "envs": ["HalfCheetah-v5"],
        "methods": ["dense"],
        "sparsities": [0.9],
        "seeds": [1],
        "widths": [None],
    }
    parts = [{}]
    if opts.grid:
        if opts.grid.lstrip().startswith(("{", "[")):  # given inline
            loaded = json.loads(opts.grid)
        else:
            with open(opts.grid) as f:
                loaded = json.load(f)
        parts = loaded if isinstance(loaded, list) else [loaded]  # a list: the union of its grids' runs
    runs, seen = [], set()
    for part in parts:
        grid = {**defaults, **part}
        for key in (*GRID_KEYS, "steps"):
            if getattr(opts, key) is not None:
                grid[key] = getattr(opts, key)
        if opts.extra:
            grid["extra"] = opts.extra
        unknown = set(grid["scripts"]) - set(SCRIPTS)
        if unknown:
            raise SystemExit(f"error: unknown script(s) {sorted(unknown)}; choose from {sorted(SCRIPTS)}")
        for run in expand(grid):
            if run_id(run) not in seen:
                seen.add(run_id(run))
                runs.append(run)
    done = finished_ids(opts.results)
    # seed by seed: a grid stopped part-way has the first seeds of every cell rather than every seed of the first cells
    todo = sorted(((run, run_id(run)) for run in runs if run_id(run) not in done), key=lambda t: t[0]["seed"])
    print(f"{len(runs)} runs in the grid, {len(runs) - len(todo)} already in {opts.results}, {len(todo)} to run")
    if opts.dry_run:
        for run, rid in todo:
            print(" ".join(command(run, rid)))
        return
    os.makedirs(os.path.dirname(os.path.abspath(opts.results)), exist_ok=True)
    logs_dir = os.path.join(os.path.dirname(os.path.abspath(opts.results)), "logs")
    os.makedirs(logs_dir, exist_ok=True)
    os.makedirs(os.path.join(opts.runs_dir, "runs"), exist_ok=True)

    failed = 0
    runs_dir = os.path.abspath(opts.runs_dir)  # absolute: Ray tasks do not start in this folder
    finished = run_ray(todo, runs_dir, logs_dir, opts) if opts.ray else run_local(todo, runs_dir, logs_dir, opts)
    for rid, row in finished:
        if row is None:
            failed += 1
            print(f"run {rid} failed: see {os.path.join(logs_dir, rid + '.log')}")
            continue
        with open(opts.results, "a") as f:  # one line per finished run: a killed sweep loses nothing finished
            f.write(json.dumps(row) + "\n")
        print(f"run {rid} done: {row['method']} seed {row['seed']} -> {row['final_eval_return']:.1f}", flush=True)
    if failed:
        raise SystemExit(f"error: {failed} run(s) failed")


if __name__ == "__main__":
    main()
