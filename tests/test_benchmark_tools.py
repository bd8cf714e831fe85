"""benchmark/summarize.py on planted run summaries."""

import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT


def plant(folder, method: str, seed: int, final: float, evals: list[float]) -> None:
    os.makedirs(folder)
    summary = {
        "script": "sparse_td3_continuous",
        "env_id": "Env-v0",
        "sparse_method": method,
        "seed": seed,
        "total_timesteps": 100,
        "final_eval_return": final,
        "mean_last_10_evals": float(sum(evals) / len(evals)),
        "lca": sum(evals) / len(evals) / 1e4,
        "evaluations": [[50 * (i + 1), v] for i, v in enumerate(evals)],
        "networks": {"actor": {"active_weights": 30, "total_weights": 100}},
        "train_flops_vs_dense": 0.5,
    }
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f)


def test_summarize_table(tmp_path):
    plant(tmp_path / "a1", "set", 1, 100.0, [50.0, 100.0])
    plant(tmp_path / "a2", "set", 2, 300.0, [150.0, 300.0])
    plant(tmp_path / "b1", "dense", 1, 10.0, [0.0, 10.0])
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "summarize.py"), str(tmp_path / "*")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split("|")[3].strip(): line for line in out.splitlines() if "Env-v0" in line}
    assert set(rows) == {"set", "dense"}
    # set: finals 100 and 300 -> 200 +- 100; last-10 means 75 and 225 -> 150 +- 75; LCA 0.015
    assert "| 2 | 100 | 200 ± 100 | 150 ± 75 | 0.015 | 30 / 100 (0.30) | 0.50 |" in rows["set"]
    assert "| 1 | 100 | 10 ± 0 | 5 ± 0 | 0.001 |" in rows["dense"]


def sweep_two_runs(tmp_path, *launcher: str, stale: bool = False) -> None:
    """A two-run grid (dense and static DQN on CartPole, tiny budgets): both rows written, then both skipped. With
    `stale`, each run first gets the folder of an attempt killed in an earlier sweep (newer, without summary.json)."""
    results = tmp_path / "rows.jsonl"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "benchmark", "sweep.py"),
        "--scripts",
        "dqn",
        "--envs",
        "CartPole-v1",
        "--methods",
        "dense",
        "static",
        "--sparsities",
        "0.8",
        "--seeds",
        "1",
        "--steps",
        "300",
        "--results",
        str(results),
        "--runs-dir",
        str(tmp_path),
        "--workers",
        "2",
        *launcher,
        "--extra",
        "--learning-starts",
        "100",
        "--eval-episodes",
        "1",
        "--eval-frequency",
        "300",
        "--hidden-width",
        "32",
        "--batch-size",
        "32",
    ]
    if stale:
        at = cmd.index("--extra")  # flags after --extra go to the runs
        dry = subprocess.run([*cmd[:at], "--dry-run", *cmd[at:]], capture_output=True, text=True, timeout=60).stdout
        ids = re.findall(r"--exp-name sweep_([0-9a-f]+)", dry)
        assert len(ids) == 2
        for rid in ids:
            killed = tmp_path / "runs" / f"CartPole-v1__sweep_{rid}__dense__1__9999999999"
            killed.mkdir(parents=True)
            os.utime(killed, (time.time() + 3600, time.time() + 3600))
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["dense", "static"]
    for r in rows:
        assert r["total_timesteps"] == 300 and "--sparse-method " + r["method"] in r["command"]
        assert os.path.exists(os.path.join(r["run_dir"], "summary.json"))
    static = next(r for r in rows if r["method"] == "static")
    assert static["active_weights"] / static["total_weights"] == pytest.approx(0.2, abs=0.01)
    # the rows carry each network's absolute FLOPs; at one width their ratio is the summary's ratio to dense
    dense = next(r for r in rows if r["method"] == "dense")
    train = {r["method"]: sum(n["train_flops"] for n in r["networks"].values()) for r in rows}
    assert train["dense"] > 0 and train["static"] / train["dense"] == pytest.approx(static["train_flops_vs_dense"])
    assert static["networks"]["q_network"]["inference_flops"] < dense["networks"]["q_network"]["inference_flops"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "2 already in" in again.stdout and "0 to run" in again.stdout
    assert len(results.read_text().splitlines()) == 2


def test_sweep_runs_a_grid_and_skips_finished_runs(tmp_path):
    sweep_two_runs(tmp_path, stale=True)


def test_sweep_refuses_its_own_options_after_extra(tmp_path):
    # --extra takes the rest of the line: "--methods" after it would reach every run and fail each one
    results = tmp_path / "rows.jsonl"
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "sweep.py"), "--scripts", "ppo", "--results", str(results)]
    out = subprocess.run(
        cmd + ["--extra", "--eval-frequency", "5", "--methods", "dense"], capture_output=True, text=True
    )
    assert out.returncode != 0 and "--methods comes after --extra" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not results.exists()
    out = subprocess.run(cmd + ["--dry-run", "--extra", "--seeds=3"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--seeds=3 comes after --extra" in out.stderr
    # the script's own flags pass (--dry-run only prints the commands)
    ok = subprocess.run(
        cmd + ["--dry-run", "--extra", "--eval-frequency", "5"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0 and "--eval-frequency 5" in ok.stdout


def test_sweep_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="the Ray path needs Ray (pip install -r benchmark/requirements.txt)")
    sweep_two_runs(tmp_path, "--ray", "local")


def test_aggregate_iqm_and_means_on_planted_rows(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import aggregate

    # 8 runs: sorted 1 2 3 4 6 7 8 100 -> drop 2 from each end -> IQM = (3 + 4 + 6 + 7) / 4 = 5; mean 131 / 8
    assert aggregate.iqm([1, 2, 3, 4, 100, 6, 7, 8]) == 5.0
    assert aggregate.iqm([10, 20, 60]) == 30.0  # 3 runs: nothing trimmed
    assert aggregate.iqm([1, 2, 3, 50, 4]) == 3.0  # 5 runs: one from each end -> (2 + 3 + 4) / 3
    low, high = aggregate.bootstrap_ci([1, 2, 3, 4, 100, 6, 7, 8], reps=500)
    assert low <= 5.0 <= high and (low, high) == aggregate.bootstrap_ci([1, 2, 3, 4, 100, 6, 7, 8], reps=500)
    assert aggregate.bootstrap_ci([7.0, 7.0, 7.0], reps=100) == (7.0, 7.0)

    base = {
        "script": "td3",
        "env": "E-v0",
        "width": None,
        "active_weights": 10,
        "total_weights": 20,
        "train_flops_vs_dense": 0.5,
        "mean_last_10_evals": 0.0,
        "lca": 0.0,
    }
    rows = [
        {**base, "method": "set", "sparsity": 0.5, "final_eval_return": v, "lca": v / 1e4}
        for v in (1, 2, 3, 4, 100, 6, 7, 8)
    ]
    rows += [{**base, "method": "dense", "sparsity": None, "final_eval_return": v} for v in (10, 20, 60)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    set_row = next(line for line in out.splitlines() if "| set |" in line)
    dense_row = next(line for line in out.splitlines() if "| dense |" in line)
    assert "| 8 | 16.4 ± 31.7 | 5.0 [" in set_row  # mean 16.375, population std sqrt(8033.875 / 8) = 31.69
    assert "| 3 | 30.0 ± 21.6 | 30.0 [" in dense_row  # std of 10, 20, 60 = 21.60
    # LCA (return / 1e4) gets three decimals: mean 0.0016375, IQM 0.0005
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path), "--metric", "lca"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "| 8 | 0.002 ± 0.003 | 0.001 [" in next(line for line in out.splitlines() if "| set |" in line)


def test_aggregate_orders_widths_and_sparsities_as_numbers(tmp_path):
    base = {"script": "ppo", "env": "E-v0", "active_weights": 1, "total_weights": 2, "train_flops_vs_dense": 1.0}
    rows = [
        {**base, "method": "dense", "sparsity": None, "width": w, "final_eval_return": 1.0} for w in (42, 9, None, 15)
    ]
    rows += [
        {**base, "method": "set", "sparsity": s, "width": None, "final_eval_return": 1.0} for s in (0.95, 0.5, 0.9)
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path), "--reps", "10"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cells = [line.split(" | ")[2:5] for line in out.splitlines() if line.startswith("| ppo |")]
    # string order would put 15 before 42 before 9 (and default last); numeric order, default first
    assert cells == [
        ["dense", "-", "default"],
        ["dense", "-", "9"],
        ["dense", "-", "15"],
        ["dense", "-", "42"],
        ["set", "0.5", "default"],
        ["set", "0.9", "default"],
        ["set", "0.95", "default"],
    ]


def planted_rows(tmp_path) -> str:
    """Result rows of a small grid: dense at two widths, set at two sparsities, static at one; two seeds each."""
    rows = []
    for method, sparsity, width, active in [
        ("dense", None, None, 1000),
        ("dense", None, 30, 100),
        ("set", 0.9, None, 100),
        ("set", 0.5, None, 500),
        ("static", 0.9, None, 100),
    ]:
        for seed in (1, 2):
            rows.append(
                {
                    "script": "sac",
                    "env": "E-v0",
                    "method": method,
                    "sparsity": sparsity,
                    "width": width,
                    "seed": seed,
                    "final_eval_return": 10.0 * seed + active / 10,
                    "mean_last_10_evals": 1.0,
                    "lca": 0.1,
                    "active_weights": active,
                    "total_weights": 1000,
                    "train_flops_vs_dense": active / 1000,
                    "evaluations": [[10, 1.0], [20, 2.0 * seed]],
                }
            )
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def test_params_points_group_cells_into_lines(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import plot

    rows = plot.read_rows([planted_rows(tmp_path)])
    lines = plot.params_points(rows, "final_eval_return")
    assert set(lines) == {"dense (width-scaled)", "set", "static"}
    # dense: width 30 (100 weights, returns 20 and 30) then default width (1000 weights, returns 110 and 120)
    # points are (active weights, mean, mean - std, mean + std, label); std of two returns 10 apart is 5
    assert lines["dense (width-scaled)"] == [
        (100.0, 25.0, 20.0, 30.0, "dense, width 30"),
        (1000.0, 115.0, 110.0, 120.0, "dense"),
    ]
    assert [p[:2] for p in lines["set"]] == [(100.0, 25.0), (500.0, 65.0)]
    assert lines["static"] == [(100.0, 25.0, 20.0, 30.0, "static 90%")]
    # IQM of two seeds trims nothing: the mean; its bootstrap interval spans the two returns
    iqm_lines = plot.params_points(rows, "final_eval_return", "iqm")
    assert iqm_lines["static"] == [(100.0, 25.0, 20.0, 30.0, "static 90%")]


def test_params_iqm_points_trim_an_outlier_seed(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import plot

    # 5 seeds: IQM drops one from each end, (100 + 110 + 120) / 3 = 110, where the -900 seed drags the mean to -88
    rows = [
        {"method": "set", "sparsity": 0.9, "width": None, "active_weights": 50, "final_eval_return": v}
        for v in (100, -900, 120, 110, 130)
    ]
    (point,) = plot.params_points(rows, "final_eval_return", "iqm")["set"]
    assert point[:2] == (50.0, 110.0) and point[2] <= 110.0 <= point[3]
    (point,) = plot.params_points(rows, "final_eval_return")["set"]
    assert point[1] == -88.0  # mean of 100, -900, 120, 110, 130


def test_curve_labels_name_a_sparse_cells_width():
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import plot

    # the scaling grid puts a 1024-wide static network beside the 256-wide dense default: the legend must say so
    assert plot.label("static", 0.95, 1024) == "static 95%, width 1024"
    assert plot.label("static", 0.95, None) == "static 95%"
    assert plot.label("dense", None, 1024) == "dense, width 1024"
    assert plot.label("dense", None, None) == "dense"


@pytest.mark.parametrize("kind", [["params"], ["params", "--stat", "iqm"], ["curves"]])
def test_plot_commands_write_pngs(tmp_path, kind):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install -r benchmark/requirements.txt)")
    out = tmp_path / f"{kind[0]}.png"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), *kind, planted_rows(tmp_path), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_sparsity_plot_reads_tensorboard_logs(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install -r benchmark/requirements.txt)")
    from torch.utils.tensorboard import SummaryWriter

    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import plot

    run = tmp_path / "runs" / "E-v0__planted"
    writer = SummaryWriter(str(run))
    for step in range(0, 500, 100):
        writer.add_scalar("sparsity/actor/density", 1.0 - step / 1000, step)
        writer.add_scalar("sparsity/actor/mask_change", 0.1, step)
        writer.add_scalar("charts/other", 1.0, step)
    writer.close()
    scalars = plot.read_scalars(str(run))
    assert set(scalars) == {"sparsity/actor/density", "sparsity/actor/mask_change"}
    assert scalars["sparsity/actor/density"][-1] == (400, pytest.approx(0.6))
    out = tmp_path / "sparsity.png"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "sparsity", str(run), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.stat().st_size > 10_000
    empty = tmp_path / "runs" / "nothing"
    empty.mkdir()
    failed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "sparsity", str(empty), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0 and "no sparsity/" in failed.stderr


def test_sweep_resumes_a_killed_run_from_its_checkpoint(tmp_path):
    """A TD3 run killed after its first checkpoint and picked up by the next sweep ends with the same summary
    (returns, weights, FLOPs, topology updates) as the same run left alone."""
    flags = ["--scripts", "td3", "--envs", "InvertedPendulum-v5", "--methods", "set", "--sparsities", "0.8"]
    flags += ["--seeds", "1", "--steps", "3000", "--workers", "1"]
    extra = ["--extra", "--learning-starts", "200", "--batch-size", "32", "--hidden-width", "32"]
    extra += ["--update-interval", "50", "--update-end", "2500", "--eval-frequency", "500", "--eval-episodes", "1"]
    extra += ["--checkpoint-frequency", "500", "--checkpoint-buffer"]

    def sweep(folder: str) -> list[str]:
        return [
            sys.executable,
            os.path.join(ROOT, "benchmark", "sweep.py"),
            *flags,
            "--runs-dir",
            str(tmp_path / folder),
            "--results",
            str(tmp_path / folder / "rows.jsonl"),
            *extra,
        ]

    alone = subprocess.run(sweep("alone"), capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    # The same run, killed (the sweep and its training process) as soon as its first checkpoint is on disk.
    killed = subprocess.Popen(
        sweep("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "killed" / "runs" / "*" / "checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (folder,) = glob.glob(str(tmp_path / "killed" / "runs" / "*"))
    assert not os.path.exists(os.path.join(folder, "summary.json")), "the run ended before it could be killed"
    assert not (tmp_path / "killed" / "rows.jsonl").exists()
    resumed = subprocess.run(sweep("killed"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # resumed in the killed run's folder, not started again in a new one
    assert glob.glob(str(tmp_path / "killed" / "runs" / "*")) == [folder]
    log = next((tmp_path / "killed" / "logs").iterdir()).read_text()
    assert "sweep: resuming from the checkpoint in" in log and "resumed" in log
    (a,) = [json.loads(line) for line in (tmp_path / "alone" / "rows.jsonl").read_text().splitlines()]
    (b,) = [json.loads(line) for line in (tmp_path / "killed" / "rows.jsonl").read_text().splitlines()]
    assert a["id"] == b["id"]
    for key in ("final_eval_return", "evaluations", "lca", "active_weights", "train_flops_vs_dense", "total_timesteps"):
        assert a[key] == b[key], key
    with open(os.path.join(a["run_dir"], "summary.json")) as f, open(os.path.join(b["run_dir"], "summary.json")) as g:
        sa, sb = json.load(f), json.load(g)
    assert sa["networks"] == sb["networks"] and sa["networks"]["actor"]["topology_updates"] > 0


def test_aggregate_reach_finds_when_each_cell_first_meets_the_reference(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import aggregate

    base = {"script": "td3", "env": "E-v0", "width": None, "total_timesteps": 400}
    rows = [  # dense finals 90 and 110: the reference is their mean, 100
        {
            **base,
            "method": "dense",
            "sparsity": None,
            "final_eval_return": 90.0,
            "evaluations": [[100, 10.0], [200, 50.0], [300, 101.0], [400, 90.0]],
        },
        {
            **base,
            "method": "dense",
            "sparsity": None,
            "final_eval_return": 110.0,
            "evaluations": [[100, 20.0], [200, 80.0], [300, 95.0], [400, 110.0]],
        },
        # set: seed curves 60/140 and 120/70 at step 200 -> mean 130 >= 100 first at step 200, not at 100 (mean 95)
        {
            **base,
            "method": "set",
            "sparsity": 0.5,
            "final_eval_return": 100.0,
            "evaluations": [[100, 60.0], [200, 140.0], [300, 100.0], [400, 100.0]],
        },
        {
            **base,
            "method": "set",
            "sparsity": 0.5,
            "final_eval_return": 99.0,
            "evaluations": [[100, 130.0], [200, 120.0], [300, 99.0], [400, 99.0]],
        },
        {
            **base,
            "method": "static",
            "sparsity": 0.5,
            "final_eval_return": 50.0,
            "evaluations": [[100, 5.0], [200, 20.0], [300, 40.0], [400, 50.0]],
        },
    ]
    assert aggregate.first_step_at(rows[2]["evaluations"], 100.0) == 200
    assert aggregate.first_step_at(rows[4]["evaluations"], 100.0) is None
    assert aggregate.mean_curve(rows[2:4]) == [(100, 95.0), (200, 130.0), (300, 99.5), (400, 99.5)]
    out = aggregate.reach_table(rows, "dense").splitlines()
    set_row = next(line for line in out if "| set |" in line)
    assert "| 100.0 | 200 | 0.50 | 200, 100 |" in set_row
    # dense's mean curve (15, 65, 98, 100) reaches its own mean final only at the last step; one seed at 300
    assert "| 100.0 | 400 | 1.00 | 300, 400 |" in next(line for line in out if "| dense |" in line)
    assert "| never | - | never |" in next(line for line in out if "| static |" in line)
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {
                    **r,
                    "active_weights": 1,
                    "total_weights": 2,
                    "train_flops_vs_dense": 1.0,
                    "mean_last_10_evals": 0.0,
                    "lca": 0.0,
                }
            )
            for r in rows
        )
    )
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path), "--reach", "dense"]
    assert "| 200 | 0.50 | 200, 100 |" in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cmd[-1] = "rigl"
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode != 0 and "no rigl runs" in refused.stderr


def test_denormal_count_counts_only_nonzero_values_below_the_smallest_normal():
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import denormals

    torch.set_flush_denormal(False)  # a run in this process may have left it on, which would zero 1e-39 on creation
    t = torch.tensor([0.0, 1e-39, -1e-40, torch.finfo(torch.float32).tiny, 1.0])
    assert denormals.denormal_count(t) == 2


def test_grid_sync_copies_only_new_rows_and_status_reads_the_logs(tmp_path):
    """benchmark/grid.sh: `sync` appends the grid's finished rows that the committed file lacks, once; `status`
    prints each run log's last progress line."""
    exp, rows = tmp_path / "exp", tmp_path / "committed.jsonl"
    (exp / "logs").mkdir(parents=True)
    row = dict(method="set", sparsity=0.5, seed=2, final_eval_return=11000.4)
    rows.write_text(json.dumps({"id": "a", **row}) + "\n")
    grid_rows = [json.dumps({"id": rid, **row}) for rid in ("a", "b", "c")]
    (exp / "td3_halfcheetah_1m.jsonl").write_text("\n".join(grid_rows) + "\n")
    # what the scripts print (the run plumbing's progress lines), with other lines between them
    progress = [
        "plan: 200,000 steps; random actions until step 25,000, learning after that",
        "step 5,000/200,000 (2.5%) | evaluation return -0.2 | random warm-up until step 25,000 at 4,358 steps/s",
        "layers on sparse kernels (--sparse-kernels 0.95): actor -; qf1 -; qf2 -",
        "step 145,000/200,000 (72.5%) | evaluation return 6165.9 | learning at 25 steps/s | about 36m41s left",
        "checkpoint written",
    ]
    (exp / "logs" / "b.log").write_text("\n".join(progress) + "\n")
    env = {**os.environ, "EXP": str(exp), "ROWS": str(rows), "PYTHON": sys.executable}
    script = os.path.join(ROOT, "benchmark", "grid.sh")

    def run(*args: str) -> str:
        return subprocess.run(["bash", script, *args], env=env, capture_output=True, text=True, check=True).stdout

    lines = run("td3_halfcheetah_1m", "sync").splitlines()
    assert lines == [f"row {rid}: set 0.5 seed 2, final return 11000" for rid in ("b", "c")]
    assert [json.loads(line)["id"] for line in rows.read_text().splitlines()] == ["a", "b", "c"]
    assert run("td3_halfcheetah_1m", "sync") == ""  # nothing new the second time
    assert rows.read_text().count("\n") == 3
    assert run("td3_halfcheetah_1m", "status").strip() == f"b: {progress[3]}"
    refused = subprocess.run(["bash", script, "no_such_grid", "status"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "usage" in refused.stderr


def test_grid_commands_expand_to_the_grids_runs(tmp_path):
    """The sweeps behind each grid, dry-run: [S]'s 15 runs with the ids of the committed rows; the scaling grid's 3
    dense width-256 runs and 6 static width-1024 runs on the kernels at 200k steps, cheapest first, then 3 dense
    width-1024 runs, one one-run sweep each, with the ids they have in one sweep over the union of the grids."""
    env = {**os.environ, "EXP": str(tmp_path), "PYTHON": sys.executable}
    script = os.path.join(ROOT, "benchmark", "grid.sh")

    def dry_runs(grid: str) -> list[list[str]]:
        out = subprocess.run(["bash", script, grid, "commands"], env=env, capture_output=True, text=True, check=True)
        runs = []
        for sweep in out.stdout.splitlines():
            words = shlex.split(sweep)
            i = words.index("--extra")
            cmd = words[:i] + ["--dry-run"] + words[i:]
            printed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
            runs.append([line for line in printed.splitlines() if "--exp-name" in line])
        return runs

    (table2,) = dry_runs("td3_halfcheetah_1m")  # one sweep each
    committed = os.path.join(ROOT, "benchmark", "results", "td3_halfcheetah_1m.jsonl")
    with open(committed) as f:
        ids = {json.loads(line)["id"] for line in f if line.strip()}
    assert len(table2) == 15 and ids <= {line.split("--exp-name sweep_")[1].split()[0] for line in table2}
    # the scaling grid is one shell pipeline (xargs -P 2 over one-run sweeps): run it whole, each sweep dry
    out = subprocess.run(
        ["bash", script, "td3_scaling", "commands"], env=env, capture_output=True, text=True, check=True
    )
    (pipeline,) = out.stdout.splitlines()
    assert "xargs -d '\\n' -P 2" in pipeline and pipeline.count("--workers 1") == 1
    pipeline = pipeline.replace("xargs -d '\\n' -P 2", "xargs -d '\\n' -P 1")  # printed in order
    printed = subprocess.run(
        ["bash", "-c", pipeline.replace("--workers 1", "--dry-run --workers 1")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    scaling = [line for line in printed.splitlines() if "--exp-name" in line]
    dense = [c for c in scaling if "--sparse-method dense" in c]
    wide = [c for c in scaling if "--sparse-method static" in c]
    assert len(scaling) == 12 and scaling[:3] == dense[:3] and all("--hidden-width" not in c for c in dense[:3])
    assert all("--hidden-width 1024 --total-timesteps 200000 --sparse-kernels 0.95" in c for c in wide)
    assert [c.split("--sparsity ")[1].split()[0] for c in wide] == ["0.99"] * 3 + ["0.95"] * 3  # cheapest first
    # the dense width-1024 control comes last: added after the first 9 had finished, the slowest runs
    assert scaling[9:] == dense[3:] and all("--hidden-width 1024 --total-timesteps 200000" in c for c in dense[3:])
    assert [c.split("--seed ")[1].split()[0] for c in scaling] == ["1", "2", "3"] * 4
    sweep = [sys.executable, os.path.join(ROOT, "benchmark", "sweep.py"), "--steps", "200000", "--seeds", "1", "2"]
    sweep += ["3", "--grid", '[{"methods":["dense"]},{"methods":["static"],"sparsities":[0.95,0.99],"widths":[1024]}']
    sweep[-1] += ',{"methods":["dense"],"widths":[1024]}]'
    sweep += ["--results", str(tmp_path / "none.jsonl"), "--dry-run", "--extra", "--sparse-kernels", "0.95"]
    sweep += ["--checkpoint-frequency", "50000", "--checkpoint-buffer"]
    one_sweep = subprocess.run(sweep, capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    assert sorted(one_sweep) == sorted(scaling)  # the same runs, ids included, as the sweep the grid began with
    # a run that two grids of the list both give is run once; flags on the command line apply to every grid
    union = '[{"methods": ["dense"]}, {"methods": ["dense", "set"], "sparsities": [0.5]}]'
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "sweep.py"), "--grid", union, "--seeds", "1", "2"]
    cmd += ["--results", str(tmp_path / "none.jsonl"), "--dry-run"]
    printed = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert printed.startswith("4 runs in the grid") and printed.count("--sparse-method dense") == 2


def test_same_seed_records_a_run_and_compare_names_what_differs(tmp_path):
    """benchmark/same_seed.py: `record` writes a run's summary without its clock and folder; `compare` passes on
    equal records and fails naming the run whose record differs."""
    tool = os.path.join(ROOT, "benchmark", "same_seed.py")
    out = tmp_path / "a.json"
    subprocess.run([sys.executable, tool, "record", ROOT, str(out), "--only", "dqn-dense"], check=True)
    (record,) = json.loads(out.read_text()).values()
    assert record["sparse_method"] == "dense" and record["total_timesteps"] == 1500
    assert "wall_time_s" not in record and "run_dir" not in record
    same = subprocess.run([sys.executable, tool, "compare", str(out), str(out)], capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.strip() == "identical: 1 of 1 runs"
    changed = tmp_path / "b.json"
    changed.write_text(json.dumps({"dqn-dense": {**record, "final_eval_return": -1.0}}))
    differ = subprocess.run([sys.executable, tool, "compare", str(out), str(changed)], capture_output=True, text=True)
    assert differ.returncode == 1 and differ.stdout.strip().endswith("differ or missing on one side: dqn-dense")


def test_step_profile_by_hand_step_matches_autograd_and_products_only_replays_its_products():
    """by_hand is a lower bound only if it does the autograd step's arithmetic: same weights after two steps (one with
    the actor's update); products_only must replay exactly by_hand's matrix products."""
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import numpy as np
    import step_profile as sp

    auto = sp.Td3Step("frozen_q", sp.NumpyBuffer(1000, np.random.default_rng(0)))
    by_hand = sp.ByHandStep(sp.NumpyBuffer(1000, np.random.default_rng(0)))
    nets = ("actor", "q1", "q2", "q1_t", "q2_t", "target_actor")
    start = {net: [p.detach().clone() for p in getattr(auto, net).parameters()] for net in nets}
    for net in nets:  # the same start (both seed 0)
        for a, b in zip(start[net], getattr(by_hand, net).parameters()):
            assert torch.equal(a, b)
    for i in range(sp.POLICY_FREQUENCY):
        torch.manual_seed(i)  # the same target noise on both sides
        auto.step()
        torch.manual_seed(i)
        by_hand.step()
    for net in ("actor", "q1", "q2"):  # the last step's gradients (qf1's from the critics' loss only)
        for a, b in zip(getattr(auto, net).parameters(), getattr(by_hand, net).parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)
    for net in nets:  # every network moved, the same way on both sides
        for a, b, a0 in zip(getattr(auto, net).parameters(), getattr(by_hand, net).parameters(), start[net]):
            assert not torch.equal(a, a0) and torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    products = sp.ProductsOnly(sp.NumpyBuffer(1000, np.random.default_rng(0)))
    counts = [len(calls) for calls in products.calls]
    # critic-only step: target actor 3 + target critics 6 forward, critics 6 forward + 2 x 5 backward; the actor's
    # step adds its forward 3 and backward 5, qf1's forward 3 and its input-gradient products 3
    assert counts == [25, 25 + 14]
    layouts = {
        (f.__name__, tuple(a.shape for a in args[-2:]), tuple(a.is_contiguous() for a in args[-2:]))
        for calls in products.calls
        for f, args in calls
    }
    assert ("mm", ((256, 256), (256, 256)), (False, True)) in layouts  # a weight gradient: dy^T @ h


def test_aggregate_runs_lists_each_run_in_cell_then_seed_order(tmp_path):
    base = {"script": "td3", "env": "E-v0", "width": None, "lca": 0.5, "mean_last_10_evals": 4000.4}
    base |= {"active_weights": 1000, "total_weights": 2000, "train_flops_vs_dense": 0.5}
    rows = [
        {**base, "method": "set", "sparsity": 0.5, "seed": 2, "final_eval_return": 2.0, "wall_time_s": 5400.0},
        {**base, "method": "set", "sparsity": 0.5, "seed": 1, "final_eval_return": 1.0},  # no wall time recorded
        {**base, "method": "dense", "sparsity": None, "seed": 1, "final_eval_return": 3.0, "wall_time_s": 3600.0},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path), "--runs"]
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == 2 + 3
    assert lines[2] == "| td3 | E-v0 | dense | - | default | 1 | 3 | 4000 | 0.500 | 1,000 / 2,000 | 0.500 | 1.00 |"
    assert lines[3].startswith("| td3 | E-v0 | set | 0.5 | default | 1 | 1 |") and lines[3].endswith("| - |")
    assert lines[4].startswith("| td3 | E-v0 | set | 0.5 | default | 2 | 2 |") and lines[4].endswith("| 1.50 |")


def test_aggregate_cost_averages_wall_time_and_flops_per_cell(tmp_path):
    base = {"script": "td3", "env": "E-v0", "lca": 0.5, "mean_last_10_evals": 1.0, "final_eval_return": 1.0}
    base |= {"active_weights": 1000, "total_weights": 2000, "train_flops_vs_dense": 0.5}

    def nets(actor: float, critic: float, train: float) -> dict:
        return {
            "actor": {"inference_flops": actor, "train_flops": train},
            "qf1": {"inference_flops": critic, "train_flops": 1e15},
        }

    rows = [
        {
            **base,
            "method": "static",
            "sparsity": 0.95,
            "width": 1024,
            "seed": 1,
            "wall_time_s": 3600.0,
            "networks": nets(4e5, 5e5, 2e15),
        },
        {
            **base,
            "method": "static",
            "sparsity": 0.95,
            "width": 1024,
            "seed": 2,
            "wall_time_s": 3 * 3600.0,
            "networks": nets(6e5, 5e5, 4e15),
        },
        {**base, "method": "dense", "sparsity": None, "width": None, "seed": 1, "wall_time_s": 1800.0},  # older row
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "aggregate.py"), str(path), "--cost"]
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n\n")[1].splitlines()
    assert len(lines) == 2 + 2
    assert lines[2] == "| td3 | E-v0 | dense | - | default | 1 | 0.50 ± 0.00 | 1,000 / 2,000 | - | - | 0.500 |"
    # means over the two runs: wall 2 ± 1 h, actor 500k, qf1 500k, training (2P + 1P + 4P + 1P) / 2 = 4P
    assert lines[3] == (
        "| td3 | E-v0 | static | 0.95 | 1024 | 2 | 2.00 ± 1.00 | 1,000 / 2,000 | actor 500k, qf1 500k | 4P | 0.500 |"
    )
    rows[1]["networks"]["qf1"].pop("train_flops")  # a summary from before the field: no training FLOPs, not a NaN
    path.write_text("\n".join(json.dumps(r) for r in rows))
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split("\n\n")[1].splitlines()
    assert lines[3].endswith("| actor 500k, qf1 500k | - | 0.500 |")
