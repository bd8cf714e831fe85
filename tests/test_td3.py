"""Short real runs of sparse_td3_continuous.py: every method trains on DS-TD3's schedule and logs what it should.
(What all scripts share is tested in test_scripts_common.py.)"""

import glob
import os

import numpy as np
import pytest

import sparse_td3_continuous as td3

# 700 steps, learning from step 100: 600 critic and 300 actor gradient steps, so the schedule below really fires:
# topology updates every 50 critic steps up to 400, pruning from step 100 to 400.
SHORT = dict(
    total_timesteps=700,
    learning_starts=100,
    batch_size=32,
    buffer_size=1000,
    update_interval=50,
    update_end=400,
    prune_start=100,
    prune_end=400,
    eval_frequency=350,
    eval_episodes=1,
    hidden_width=64,
)


def short_args(**overrides) -> td3.Args:
    return td3.Args(**{**SHORT, **overrides})


@pytest.mark.parametrize("method", ["dense", "static", "set", "rigl", "prune"])
def test_short_run_per_method(method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = td3.train(short_args(sparse_method=method, sparsity=0.8, sparsity_distribution="erk"))
    assert [step for step, _ in summary["evaluations"]] == [350, 700]
    assert np.isfinite(summary["final_eval_return"])
    assert glob.glob(os.path.join(summary["run_dir"], "events.out.tfevents.*"))
    assert os.path.exists(os.path.join(summary["run_dir"], "summary.json"))
    nets = summary["networks"]
    for net in nets.values():
        if method == "dense":
            assert net["active_weights"] == net["total_weights"] and net["topology_updates"] == 0
        else:
            assert net["active_weights"] < 0.35 * net["total_weights"]  # 80% sparse, output layer dense
    if method in ("set", "rigl"):
        assert nets["qf1"]["topology_updates"] == 8  # critic steps 50, 100, ..., 400
        assert nets["actor"]["topology_updates"] == 8  # actor steps 25, 50, ..., 200: the same iterations
    if method == "prune":
        assert nets["qf1"]["topology_updates"] == 6  # critic steps 150, ..., 400 (at 100 the schedule is still 0)
    expected_ratio = {"dense": 1.0, "static": 0.25, "set": 0.25, "rigl": 0.3, "prune": 0.6}[method]
    assert summary["train_flops_vs_dense"] == pytest.approx(expected_ratio, abs=0.15)


def test_tensorboard_tags(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    # 1200 steps per env: every env finishes a 1000-step episode and autoresets
    summary = td3.train(
        short_args(sparse_method="set", sparsity=0.8, num_envs=2, total_timesteps=2400, eval_frequency=2400)
    )
    events = EventAccumulator(summary["run_dir"])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in [
        "charts/episodic_return",
        "charts/SPS",
        "losses/qf_loss",
        "losses/actor_loss",
        "eval/episodic_return",
        "sparsity/actor/density",
        "sparsity/qf1/mask_change",
        "sparsity/qf2/ever_active",
        "sparsity/actor/density/fc2",
        "sparsity/qf1/inference_flops",
        "sparsity/train_flops_vs_dense",
    ]:
        assert tag in tags, tag
    changes = [e.value for e in events.Scalars("sparsity/qf1/mask_change")]
    assert max(changes) == pytest.approx(0.05, abs=0.01)  # DS-TD3's constant drop fraction
    ever = [e.value for e in events.Scalars("sparsity/qf1/ever_active")]
    assert ever[-1] > ever[0]
