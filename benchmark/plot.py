"""Plots (PNG) from sweep result rows and from the runs' tensorboard logs. Needs matplotlib (`pip install matplotlib`).

    python benchmark/plot.py params results/sac.jsonl --out docs/img/sac_params.png    # return vs parameter count
    python benchmark/plot.py curves results/sac.jsonl --out docs/img/sac_curves.png    # learning curves per cell
    python benchmark/plot.py sparsity runs/RUN_A runs/RUN_B --out docs/img/masks.png   # sparsity / mask change

`params` draws the shape of Graesser et al. (2022) Fig. 2: the final evaluation return (or --metric) against the
number of active weights, one line per sparse method through its sparsities and one line through the dense runs of
every hidden width (the width-scaled dense baselines). Points are the mean over seeds and bars the standard
deviation, or with `--stat iqm` the interquartile mean and its 95% bootstrap interval (as [G] reports them; the
same figures benchmark/aggregate.py prints).
`curves` draws mean evaluation return against environment steps per cell (method, sparsity, width) with the min-max
band over seeds. `sparsity` reads `sparsity/<net>/density`, `mask_change` and `ever_active` from tensorboard event
files (run folders or a result file whose rows name them) and draws them against the training step.
"""

import argparse
import json
import os
from collections import defaultdict

import numpy as np
from aggregate import bootstrap_ci, iqm  # same folder: the IQM and its interval are computed once, in aggregate.py


def pyplot():  # noqa: ANN201 - the module, imported lazily so the rest of benchmark/ works without matplotlib
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: plotting needs matplotlib: pip install matplotlib") from None
    return plt


def read_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise SystemExit(f"error: no result rows in {', '.join(paths)}")
    return rows


def label(method: str, sparsity: float | None, width: int | None) -> str:
    if method == "dense":
        return "dense" if width is None else f"dense, width {width}"
    name = f"{method} {sparsity:.0%}" if sparsity is not None else method
    return name if width is None else f"{name}, width {width}"  # a wide sparse cell must not read as the default


def save(fig, path: str) -> None:  # noqa: ANN001 - a matplotlib Figure
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


def by_env(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["script"], row["env"])].append(row)
    return dict(sorted(groups.items()))


def params_points(
    rows: list[dict], metric: str, stat: str = "mean"
) -> dict[str, list[tuple[float, float, float, float, str]]]:
    """Per line (a sparse method, or 'dense' for every width), the points (active weights, centre, low, high, point
    label) sorted by active weights. Cells are (method, sparsity, width). stat 'mean': centre the mean over seeds,
    low/high mean -+ std; 'iqm': the interquartile mean and its 95% bootstrap interval."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        cells[(row["method"], row["sparsity"], row["width"])].append(row)
    lines: dict[str, list[tuple[float, float, float, float, str]]] = defaultdict(list)
    for (method, sparsity, width), runs in cells.items():
        values = np.array([r[metric] for r in runs], dtype=float)
        active = float(np.mean([r["active_weights"] for r in runs]))
        name = "dense (width-scaled)" if method == "dense" else method
        if method != "dense" and width is not None:
            name = f"{method}, width {width}"
        if stat == "iqm":
            centre, (low, high) = iqm(values), bootstrap_ci(values)
        else:
            centre, low, high = values.mean(), values.mean() - values.std(), values.mean() + values.std()
        point = label(method, sparsity, width if method == "dense" else None)  # a sparse line's name carries its width
        lines[name].append((active, float(centre), float(low), float(high), point))
    return {name: sorted(points) for name, points in sorted(lines.items())}


def plot_params(rows: list[dict], metric: str, out: str, stat: str = "mean") -> None:
    plt = pyplot()
    groups = by_env(rows)
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, ((script, env), env_rows) in zip(axes[0], groups.items(), strict=True):
        lines = params_points(env_rows, metric, stat)
        sparse_names = [name for name in lines if not name.startswith("dense")]
        for name, points in lines.items():
            x, y, low, high, labels = zip(*points, strict=True)
            err = [np.subtract(y, low), np.subtract(high, y)]  # bars below and above the centre
            if name in sparse_names:  # methods share their parameter counts: dodge them sideways to keep bars apart
                shift = 1.0 + 0.025 * (sparse_names.index(name) - (len(sparse_names) - 1) / 2)
                x = tuple(xi * shift for xi in x)
            style = dict(color="black", linestyle="--") if name.startswith("dense") else {}
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name, **style)
            if name.startswith("dense"):
                for xi, yi, text in zip(x, y, labels, strict=True):
                    ax.annotate(
                        text.replace("dense, ", ""), (xi, yi), textcoords="offset points", xytext=(4, -12), fontsize=7
                    )
        ax.set_xscale("log")
        ax.set_xlabel("active weights, all networks (log scale; sparse methods dodged sideways)")
        what = "IQM, bars 95% bootstrap CI" if stat == "iqm" else "mean ± std over seeds"
        ax.set_ylabel(f"{metric.replace('_', ' ')} ({what})")
        ax.set_title(f"{script}, {env}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def plot_curves(rows: list[dict], out: str) -> None:
    plt = pyplot()
    groups = by_env(rows)
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.5), squeeze=False)
    for ax, ((script, env), env_rows) in zip(axes[0], groups.items(), strict=True):
        cells: dict[tuple, list[dict]] = defaultdict(list)
        for row in env_rows:
            cells[(row["method"], row["sparsity"] or 0.0, row["width"] or 0)].append(row)
        for (method, sparsity, width), runs in sorted(cells.items()):
            n = min(len(r["evaluations"]) for r in runs)
            steps = np.array([s for s, _ in runs[0]["evaluations"][:n]])
            returns = np.array([[v for _, v in r["evaluations"][:n]] for r in runs])
            name = label(method, sparsity or None, width or None)
            ax.plot(steps, returns.mean(0), label=f"{name} (n={len(runs)})")
            ax.fill_between(steps, returns.min(0), returns.max(0), alpha=0.15)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.set_title(f"{script}, {env}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def read_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every sparsity/* scalar series in a run folder's tensorboard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if tag.startswith("sparsity/")
    }


def run_dirs(sources: list[str]) -> list[str]:
    """Run folders, given directly or as result files (.jsonl) whose rows name them."""
    dirs = []
    for source in sources:
        if os.path.isdir(source):
            dirs.append(source)
        else:
            dirs += [row["run_dir"] for row in read_rows([source])]
    return dirs


def plot_sparsity(sources: list[str], out: str) -> None:
    plt = pyplot()
    keys = [
        ("density", "sparsity", lambda v: 1.0 - v),
        ("mask_change", "mask change at last update", None),
        ("ever_active", "fraction of weights ever active", None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    drawn = 0
    for run_dir in run_dirs(sources):
        scalars = read_scalars(run_dir)
        run_name = os.path.basename(os.path.normpath(run_dir))
        for ax, (key, title, transform) in zip(axes, keys, strict=True):
            for tag, series in sorted(scalars.items()):
                parts = tag.split("/")  # sparsity/<net>/<key>
                if len(parts) != 3 or parts[2] != key:
                    continue
                steps, values = zip(*series, strict=True)
                values = [transform(v) for v in values] if transform else list(values)
                ax.plot(steps, values, drawstyle="steps-post", label=f"{run_name[:40]} {parts[1]}")  # held between logs
                drawn += 1
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    if drawn == 0:
        raise SystemExit("error: no sparsity/<net>/density, mask_change or ever_active scalars in those runs")
    axes[0].legend(fontsize=7)
    save(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("params", help="final return against active weights ([G] Fig. 2)")
    p.add_argument("results", nargs="+", help="result files (.jsonl) written by benchmark/sweep.py")
    p.add_argument("--metric", default="final_eval_return", choices=["final_eval_return", "mean_last_10_evals", "lca"])
    p.add_argument("--stat", choices=["mean", "iqm"], default="mean", help="mean ± std, or IQM with 95%% bootstrap CI")
    p.add_argument("--out", required=True)
    c = sub.add_parser("curves", help="learning curves per cell")
    c.add_argument("results", nargs="+")
    c.add_argument("--out", required=True)
    s = sub.add_parser("sparsity", help="sparsity, mask change and ever-active curves from tensorboard logs")
    s.add_argument("sources", nargs="+", help="run folders, or result files whose rows name them")
    s.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.kind == "params":
        plot_params(read_rows(args.results), args.metric, args.out, args.stat)
    elif args.kind == "curves":
        plot_curves(read_rows(args.results), args.out)
    else:
        plot_sparsity(args.sources, args.out)


if __name__ == "__main__":
    main()
