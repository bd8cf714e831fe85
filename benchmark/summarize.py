"""Table and learning curves from the summary.json files that every training run writes into its run folder.

    python benchmark/summarize.py "runs/*td3_hc_200000*" --plot docs/img/td3_halfcheetah.png

Runs are grouped by script, environment and sparse method; the table gives mean +- std over the seeds of the final
evaluation return and of the mean of the last 10 evaluations (as Sokar et al. report), the learning-curve area
(mean evaluation return / 1e4), weights and training FLOPs. --plot (needs `pip install matplotlib`) draws the
evaluation curves, mean and min-max band over seeds.
"""

import argparse
import glob
import json
import os
from collections import defaultdict

import numpy as np


def load(patterns: list[str]) -> dict[tuple[str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for pattern in patterns:
        for run_dir in sorted(glob.glob(pattern)):
            path = os.path.join(run_dir, "summary.json")
            if os.path.exists(path):
                with open(path) as f:
                    s = json.load(f)
                groups[(s["script"], s["env_id"], s["sparse_method"])].append(s)
    return groups


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.0f} ± {np.std(values):.0f}"


def table(groups: dict[tuple[str, str, str], list[dict]]) -> str:
    rows = [
        "| script | env | method | seeds | steps | final eval return | mean of last 10 evals | LCA "
        "| active / total weights | training FLOPs vs dense |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (script, env, method), runs in sorted(groups.items()):
        active = sum(n["active_weights"] for n in runs[0]["networks"].values())
        total = sum(n["total_weights"] for n in runs[0]["networks"].values())
        rows.append(
            f"| {script} | {env} | {method} | {len(runs)} | {runs[0]['total_timesteps']} "
            f"| {mean_std([r['final_eval_return'] for r in runs])} "
            f"| {mean_std([r['mean_last_10_evals'] for r in runs])} "
            f"| {np.mean([r['lca'] for r in runs]):.3f} | {active:,} / {total:,} ({active / total:.2f}) "
            f"| {np.mean([r['train_flops_vs_dense'] for r in runs]):.2f} |"
        )
    return "\n".join(rows)


def plot(groups: dict[tuple[str, str, str], list[dict]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: --plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (_, env, method), runs in sorted(groups.items()):
        n = min(len(r["evaluations"]) for r in runs)
        steps = np.array([s for s, _ in runs[0]["evaluations"][:n]])
        returns = np.array([[v for _, v in r["evaluations"][:n]] for r in runs])
        ax.plot(steps, returns.mean(0), label=f"{method} (n={len(runs)})")
        ax.fill_between(steps, returns.min(0), returns.max(0), alpha=0.2)
        ax.set_title(env)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.legend()
    ax.grid(alpha=0.3)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", default=["runs/*"], help="run folders (glob patterns)")
    parser.add_argument("--plot", help="write learning curves to this PNG")
    opts = parser.parse_args()
    groups = load(opts.runs)
    if not groups:
        raise SystemExit(f"error: no summary.json under {opts.runs}")
    print(table(groups))
    if opts.plot:
        plot(groups, opts.plot)


if __name__ == "__main__":
    main()
