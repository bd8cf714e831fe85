"""benchmark/vs_cleanrl.py's logic, without CleanRL's virtual environment: the order of the runs, the ratios, the
parsing of CleanRL's output, and that both sides get the same hyperparameters under flags their scripts accept."""

import argparse
import importlib
import importlib.util
import os
import shutil
import sys

import pytest
import tyro
from conftest import ROOT

spec = importlib.util.spec_from_file_location("vs_cleanrl", os.path.join(ROOT, "benchmark", "vs_cleanrl.py"))
vs = importlib.util.module_from_spec(spec)
sys.modules["vs_cleanrl"] = vs  # dataclasses look their module up there
spec.loader.exec_module(vs)

SCRIPTS = {
    "td3": "sparse_td3_continuous",
    "sac": "sparse_sac_continuous",
    "ppo": "sparse_ppo",
    "dqn": "sparse_dqn_atari",
}


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_pairs_alternate_which_side_goes_first():
    assert vs.pair_order(4) == [
        ("project", "cleanrl"),
        ("cleanrl", "project"),
        ("project", "cleanrl"),
        ("cleanrl", "project"),
    ]


def test_ratio_stats_are_per_pair():
    stats = vs.ratio_stats([8.0, 12.0, 9.0], [10.0, 10.0, 10.0])
    assert stats["ratios"] == pytest.approx([0.8, 1.2, 0.9])
    assert (stats["median"], stats["min"], stats["max"]) == pytest.approx((0.9, 0.8, 1.2))
    # Pairs, not pooled medians: 1/2 and 4/1 give ratios 0.5 and 4 (median 2.25), pooled medians would give 1.0.
    assert vs.ratio_stats([1.0, 4.0], [2.0, 1.0])["median"] == pytest.approx(2.25)
    with pytest.raises(ValueError):
        vs.ratio_stats([1.0], [1.0, 2.0])


def test_cleanrl_learning_time_from_episode_lines():
    stamped = [
        (1.0, "some warning"),
        (2.0, "global_step=999, episode_reward=-3.0"),
        (3.0, "global_step=1999, episode_reward=-2.0"),
        (7.0, "global_step=2999, episode_reward=-1.0"),
        (11.0, "global_step=3999, episode_reward=0.5"),
    ]
    # Learning from step 1500: from the line at 1999 (t=3) to the last (t=11), over 2000 steps.
    assert vs.learning_seconds_per_step(stamped, 1500) == pytest.approx(8.0 / 2000)
    assert vs.learning_seconds_per_step(stamped[:3], 1500) is None  # one line after learning starts: no interval


def test_compare_runs_sides_in_the_alternated_order(monkeypatch):
    calls = []
    fake_wall = {"project": iter([8.0, 9.0, 10.0]), "cleanrl": iter([10.0, 10.0, 10.0])}

    def fake_run_side(side, agent, budget, opts):
        calls.append(side)
        return {"wall_s": next(fake_wall[side]), "learning_s_per_step": 0.01 if side == "project" else 0.02}

    monkeypatch.setattr(vs, "run_side", fake_run_side)
    result = vs.compare("td3", vs.Budget(100, 50), argparse.Namespace(pairs=3), log=lambda *_: None)
    assert calls == ["project", "cleanrl", "cleanrl", "project", "project", "cleanrl"]
    assert result["wall"]["median"] == pytest.approx(0.9)
    assert result["learning"]["median"] == pytest.approx(0.5)
    assert "td3" in vs.report(result) and "0.90x" in vs.report(result)


def test_pinned_prefixes_taskset():
    cmd = ["python", "x.py"]
    assert vs.pinned(cmd, None) == cmd
    if shutil.which("taskset"):
        assert vs.pinned(cmd, 1) == ["taskset", "-c", "1", "python", "x.py"]


@pytest.mark.parametrize("agent", vs.AGENTS)
def test_both_sides_get_the_same_settings(agent):
    budget = vs.Budget(**vs.BUDGETS["issue"][agent])
    mine, theirs = vs.project_command(agent, budget), vs.cleanrl_command(agent, budget)
    assert flag(mine, "--total-timesteps") == flag(theirs, "--total-timesteps") == str(budget.total)
    assert flag(mine, "--env-id") == flag(theirs, "--gym-id")
    shared = {
        "td3": ["--learning-starts", "--batch-size", "--learning-rate", "--policy-frequency", "--buffer-size"],
        "sac": ["--learning-starts", "--batch-size", "--policy-lr", "--q-lr", "--policy-frequency", "--buffer-size"],
        "ppo": ["--num-envs", "--num-steps", "--update-epochs", "--learning-rate"],
        "dqn": ["--learning-starts", "--batch-size", "--learning-rate", "--target-network-frequency", "--end-e"],
    }[agent]
    for name in shared:
        assert float(flag(mine, name)) == float(flag(theirs, name)), name
    if agent == "ppo":
        assert flag(mine, "--num-minibatches") == flag(theirs, "--n-minibatch")
    if agent == "sac":  # CleanRL 0.4.8's SAC learns from the first full batch, whatever --learning-starts says
        assert budget.learning_starts == int(flag(mine, "--batch-size")) + 1
    assert flag(mine, "--sparse-method") == "dense"
    assert int(flag(mine, "--eval-frequency")) > budget.total  # the one evaluation is the one at the end
    assert theirs[2] == vs.CLEANRL_RUNNER and theirs[3] == vs.CLEANRL_SCRIPTS[agent]


@pytest.mark.parametrize("agent", vs.AGENTS)
def test_project_flags_parse(agent):
    """Every flag the harness passes exists in the script's Args (a renamed flag fails here, not an hour into a run)."""
    cmd = vs.project_command(agent, vs.Budget(**vs.BUDGETS["quick"][agent]))
    args = tyro.cli(importlib.import_module(SCRIPTS[agent]).Args, args=cmd[3:])
    assert args.sparse_method == "dense" and args.torch_threads == 1
