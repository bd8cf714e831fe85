"""Short real runs of sparse_sac_continuous.py: every method trains with [G]'s tuned settings, which flags override.
(What all scripts share is tested in test_scripts_common.py.)"""

import glob
import os

import numpy as np
import pytest

import sparse_sac_continuous as sac

# 600 steps, learning from step 100: 500 critic and 500 actor gradient steps; ERK at 80%, every layer sparse.
SHORT = dict(
    total_timesteps=600,
    learning_starts=100,
    batch_size=32,
    buffer_size=1000,
    eval_frequency=600,
    eval_episodes=1,
    hidden_width=64,
    sparsity=0.8,
    update_end=400,
    prune_start=100,
    prune_end=400,
)


@pytest.mark.parametrize("method", ["dense", "static", "set", "rigl", "prune"])
def test_short_run_per_method_uses_tuned_settings(method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = sac.train(sac.Args(**SHORT, sparse_method=method))
    assert summary["tuned"] == sac.TUNED[method]
    assert np.isfinite(summary["final_eval_return"])
    assert glob.glob(os.path.join(summary["run_dir"], "events.out.tfevents.*"))
    nets = summary["networks"]
    for net in nets.values():
        ratio = net["active_weights"] / net["total_weights"]
        assert ratio == 1.0 if method == "dense" else ratio == pytest.approx(0.2, abs=0.002)
        assert "sparse_kernel_layers" not in net  # reported only with --sparse-kernels
    # tuned Delta T: set 250 -> an update at gradient step 250 (500 is past update_end 400); rigl 1000 -> none;
    # prune 1000 -> only the window's end (step 400, where it reaches 80%): at its start (step 100) the schedule is
    # still 0%, which prunes nothing and is not counted
    expected_updates = {"dense": 0, "static": 0, "set": 1, "rigl": 0, "prune": 1}[method]
    assert nets["qf1"]["topology_updates"] == nets["actor"]["topology_updates"] == expected_updates


def test_flags_override_tuned_settings(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    args = sac.Args(
        **SHORT,
        sparse_method="rigl",
        update_interval=50,
        drop_fraction=0.2,
        weight_decay=0.0,
        sparsity_aware_init=False,
    )
    summary = sac.train(args)
    assert summary["tuned"] == dict(weight_decay=0.0, update_interval=50, drop_fraction=0.2, sparsity_aware_init=False)
    # gradient steps 50, 100, ..., 350; at 400 (update_end) the cosine drop fraction is 0: no update
    assert summary["networks"]["qf2"]["topology_updates"] == 7
    events = EventAccumulator(summary["run_dir"])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in [
        "losses/alpha",
        "losses/alpha_loss",
        "losses/actor_loss",
        "eval/episodic_return",
        "sparsity/actor/density/fc_out",
        "sparsity/qf1/mask_change",
        "sparsity/train_flops_vs_dense",
    ]:
        assert tag in tags, tag
    # cosine decay from 0.2 to 0 over 400 steps. Logged at gradient steps 0, 50, ..., 400: the first update replaces
    # at most f(50) = 0.2 * (1 + cos(pi / 8)) / 2 of the weights (k is floored per layer); at 400 f is 0, which is no
    # update, so the change logged there is still the one of step 350, f(350) = 0.2 * (1 + cos(7 pi / 8)) / 2.
    changes = [e.value for e in events.Scalars("sparsity/qf1/mask_change")]
    assert 0.12 < changes[1] <= 0.2 * (1 + np.cos(np.pi / 8)) / 2
    assert changes[8] == changes[7] and 0 < changes[7] <= 0.2 * (1 + np.cos(7 * np.pi / 8)) / 2
