"""Aggregate sweep result rows (benchmark/sweep.py) into a Markdown table, one line per grid cell.

Per cell (script, env, method, sparsity, hidden width): the number of runs, mean +- std of the chosen metric, and
the interquartile mean (IQM: the mean of the middle 50% of runs, scipy.stats.trim_mean(x, 0.25)) with a 95%
percentile-bootstrap confidence interval over runs, as [G] reports after Agarwal et al. (NeurIPS 2021). With 3 runs
the IQM trims nothing and equals the mean; it starts to differ from 4 runs up.

    python benchmark/aggregate.py results/td3.jsonl
    python benchmark/aggregate.py results/*.jsonl --metric mean_last_10_evals --reps 10000
    python benchmark/aggregate.py results/td3_halfcheetah_1m.jsonl --reach dense
    python benchmark/aggregate.py results/td3_halfcheetah_1m.jsonl --runs    # one line per run
    python benchmark/aggregate.py results/td3_scaling.jsonl --cost           # what each cell's runs cost

`--reach METHOD` adds a second table for [S]'s "dense performance sooner" claim: the reference is METHOD's final
evaluation return averaged over its runs (per env); for every cell it gives the first evaluation step at which the
seed-mean learning curve reaches the reference, that step as a fraction of the run's length, and each run's own
first step at or above it ("never" when a run does not get there). Only steps evaluated by every run of a cell
enter the mean curve.

`--cost` adds a table of what a cell costs, for comparing networks of different widths: wall time, weights, the
inference FLOPs of one forward pass of each network and the training FLOPs of the whole run (all networks, forward
and backward, as the scripts count them), means over the cell's runs. The FLOPs come from the `networks` field of
rows written since the scripts' summaries gave per-network training FLOPs; older rows show "-" there.
"""

import argparse
import json
from collections import defaultdict

import numpy as np

METRICS = ("final_eval_return", "mean_last_10_evals", "lca")


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: drop floor(n / 4) runs from each end of the sorted values, average the rest."""
    x = np.sort(np.asarray(values, dtype=float))
    cut = int(0.25 * len(x))
    return float(x[cut : len(x) - cut].mean())


def bootstrap_ci(values: np.ndarray, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the IQM: resample the runs with replacement `reps` times."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    stats = [iqm(x[rng.integers(0, len(x), len(x))]) for _ in range(reps)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))


def cells(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["script"], row["env"], row["method"], row["sparsity"], row["width"])].append(row)
    return groups


def cell_order(item: tuple[tuple, list[dict]]) -> tuple:
    """Sort cells by their key, numbers as numbers (width 9 before 15 before 42) and None (dense's sparsity, the
    script's default width) first in its column."""
    return tuple((0, 0) if v is None else (1, v) for v in item[0])


def cell_columns(script: str, env: str, method: str, sparsity: float | None, width: int | None) -> str:
    """The first five columns of a table line: the cell's key, '-' for dense's sparsity, 'default' for the width."""
    shown = ("-" if sparsity is None else sparsity, "default" if width is None else width)
    return f"| {script} | {env} | {method} | {shown[0]} | {shown[1]}"


def table(rows: list[dict], metric: str, reps: int) -> str:
    lines = [
        f"| script | env | method | sparsity | width | runs | {metric} mean ± std | IQM [95% CI] "
        "| active / total weights | training FLOPs vs dense |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (script, env, method, sparsity, width), runs in sorted(cells(rows).items(), key=cell_order):
        x = np.array([r[metric] for r in runs])
        low, high = bootstrap_ci(x, reps)
        active, total = runs[0]["active_weights"], runs[0]["total_weights"]
        d = 3 if metric == "lca" else 1  # LCA is mean return / 1e4: typically 0.01-2
        lines.append(
            f"{cell_columns(script, env, method, sparsity, width)} | {len(runs)} | {x.mean():.{d}f} ± {x.std():.{d}f} "
            f"| {iqm(x):.{d}f} [{low:.{d}f}, {high:.{d}f}] | {active:,} / {total:,} "
            f"| {np.mean([r['train_flops_vs_dense'] for r in runs]):.2f} |"
        )
    return "\n".join(lines)


def runs_table(rows: list[dict]) -> str:
    """One line per run, in cell order and then by seed: the three metrics, the weights and FLOPs, the wall time."""
    lines = [
        "| script | env | method | sparsity | width | seed | final return | mean of last 10 evaluations | LCA "
        "| active / total weights | training FLOPs vs dense | wall time (h) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (script, env, method, sparsity, width), runs in sorted(cells(rows).items(), key=cell_order):
        for r in sorted(runs, key=lambda r: r["seed"]):
            wall = r.get("wall_time_s")
            lines.append(
                f"{cell_columns(script, env, method, sparsity, width)} | {r['seed']} | {r['final_eval_return']:.0f} "
                f"| {r['mean_last_10_evals']:.0f} | {r['lca']:.3f} | {r['active_weights']:,} / {r['total_weights']:,} "
                f"| {r['train_flops_vs_dense']:.3f} | {'-' if wall is None else f'{wall / 3600:.2f}'} |"
            )
    return "\n".join(lines)


def flops(x: float) -> str:
    """A FLOP count in engineering units: 4.4e5 -> '440k', 3.2e15 -> '3.2P'."""
    for scale, unit in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def cost_table(rows: list[dict]) -> str:
    """One line per cell: runs, wall time, weights, per-network inference FLOPs, training FLOPs (module docstring)."""
    lines = [
        "| script | env | method | sparsity | width | runs | wall time (h) mean ± std | active / total weights "
        "| inference FLOPs per forward pass | training FLOPs (run) | training FLOPs vs dense (same width) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (script, env, method, sparsity, width), runs in sorted(cells(rows).items(), key=cell_order):
        walls = np.array([r["wall_time_s"] for r in runs if r.get("wall_time_s") is not None]) / 3600
        wall = f"{walls.mean():.2f} ± {walls.std():.2f}" if len(walls) else "-"
        # figures only where every run of the cell has them: a mean over some of the runs would mislead
        nets = [r["networks"] for r in runs if "networks" in r]
        inference = train = "-"
        if len(nets) == len(runs):
            inference = ", ".join(f"{k} {flops(np.mean([n[k]['inference_flops'] for n in nets]))}" for k in nets[0])
            if all("train_flops" in net for n in nets for net in n.values()):
                train = flops(np.mean([sum(net["train_flops"] for net in n.values()) for n in nets]))
        lines.append(
            f"{cell_columns(script, env, method, sparsity, width)} | {len(runs)} | {wall} "
            f"| {runs[0]['active_weights']:,} / {runs[0]['total_weights']:,} | {inference} | {train} "
            f"| {np.mean([r['train_flops_vs_dense'] for r in runs]):.3f} |"
        )
    return "\n".join(lines)


def first_step_at(evaluations: list[tuple[int, float]], threshold: float) -> int | None:
    """The first evaluated step whose return is at or above `threshold`; None if none is."""
    return next((int(step) for step, value in evaluations if value >= threshold), None)


def mean_curve(runs: list[dict]) -> list[tuple[int, float]]:
    """The seed-mean learning curve over the steps every run evaluated."""
    curves = [dict((int(s), v) for s, v in r["evaluations"]) for r in runs]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return [(s, float(np.mean([c[s] for c in curves]))) for s in steps]


def reach_table(rows: list[dict], reference_method: str) -> str:
    """Steps at which each cell first reaches the reference method's mean final return (see the module docstring)."""
    lines = [
        f"| script | env | method | sparsity | width | runs | reference ({reference_method} mean final) "
        "| mean curve reaches it at | fraction of the run | per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = sorted(cells(rows).items(), key=cell_order)
    for (script, env, method, sparsity, width), runs in groups:
        ref_runs = [
            r for (s, e, m, _, w), rs in groups if (s, e, m, w) == (script, env, reference_method, None) for r in rs
        ]
        if not ref_runs:
            raise SystemExit(f"error: no {reference_method} runs of {script} on {env} to take a reference from")
        reference = float(np.mean([r["final_eval_return"] for r in ref_runs]))
        at = first_step_at(mean_curve(runs), reference)
        steps = runs[0]["total_timesteps"]
        per_run = ", ".join(
            "never" if s is None else f"{s:,}" for s in (first_step_at(r["evaluations"], reference) for r in runs)
        )
        lines.append(
            f"{cell_columns(script, env, method, sparsity, width)} | {len(runs)} | {reference:.1f} "
            f"| {'never' if at is None else f'{at:,}'} | {'-' if at is None else f'{at / steps:.2f}'} | {per_run} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="result files written by benchmark/sweep.py")
    parser.add_argument("--metric", choices=METRICS, default="final_eval_return")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--runs", action="store_true", help="one line per run instead of one per cell")
    parser.add_argument(
        "--reach", metavar="METHOD", help="also print when each cell first reaches METHOD's mean final return"
    )
    parser.add_argument("--cost", action="store_true", help="also print each cell's wall time, weights and FLOPs")
    opts = parser.parse_args()
    rows = []
    for path in opts.results:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise SystemExit(f"error: no result rows in {opts.results}")
    print(runs_table(rows) if opts.runs else table(rows, opts.metric, opts.reps))
    if opts.reach:
        print()
        print(reach_table(rows, opts.reach))
    if opts.cost:
        print()
        print(cost_table(rows))


if __name__ == "__main__":
    main()
