"""Short real runs of sparse_td3_continuous.py: every method trains, logs, repeats itself and rejects bad input."""

import glob
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT

import sparse_td3_continuous as td3

SCRIPT = os.path.join(ROOT, "sparse_td3_continuous.py")

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
        assert nets["qf1"]["topology_updates"] == 7  # critic steps 100, 150, ..., 400
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


def test_same_seed_same_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = td3.train(short_args(sparse_method="rigl", sparsity=0.8, seed=3))
    b = td3.train(short_args(sparse_method="rigl", sparsity=0.8, seed=3))
    c = td3.train(short_args(sparse_method="rigl", sparsity=0.8, seed=4))
    assert a["evaluations"] == b["evaluations"]
    assert a["evaluations"] != c["evaluations"]


def test_saved_model_loads_and_evaluates_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = td3.train(short_args(sparse_method="set", sparsity=0.8, save_model=True))
    ckpt = torch.load(summary["model_path"], weights_only=False)
    actor = td3.Actor(
        ckpt["obs_dim"], ckpt["act_dim"], ckpt["args"]["hidden_width"], ckpt["action_low"], ckpt["action_high"]
    )
    actor.load_state_dict(ckpt["actor"])
    for name, mask in ckpt["masks"]["actor"].items():
        assert (dict(actor.named_modules())[name].weight[mask == 0] == 0).all()
    env = gym.make(ckpt["args"]["env_id"])
    returns = td3.evaluate(actor, env, 1, ckpt["args"]["seed"] + 100, torch.device("cpu"))
    assert returns.mean() == pytest.approx(summary["final_eval_return"])


def run_cli(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *flags, "--total-timesteps", "10"], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
        (["--critic-sparsity", "-0.2"], "--critic-sparsity must be in [0, 1)"),
        (["--drop-fraction", "2"], "--drop-fraction must be in [0, 1]"),
        (["--env-id", "CartPole-v1"], "needs a continuous (Box) one"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make --env-id NoSuchEnv-v0"),
        (["--buffer-size", "50", "--batch-size", "100"], "--buffer-size (50) must be at least --batch-size (100)"),
        (["--sparse-method", "prune", "--prune-start", "50", "--prune-end", "40"], "--prune-end (40) must be after"),
        (["--sparsity", "0.999", "--dense-first-layer"], "cannot be reached"),
    ],
)
def test_bad_input_fails_with_one_line(flags, message):
    result = run_cli(*flags)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_unknown_method_rejected_by_cli():
    result = run_cli("--sparse-method", "magic")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "magic" in result.stderr


class CounterEnv(gym.Env):
    """Observation = steps taken in the episode; terminates after `terminate_at` steps when given."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at, self.t = terminate_at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == self.terminate_at, False, {}


def test_vector_env_transitions_keep_final_observations():
    # env 0 is truncated by a 5-step time limit, env 1 terminates after 3 steps
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(CounterEnv(), 5), lambda: gym.wrappers.TimeLimit(CounterEnv(3), 5)]
    )
    rb = td3.ReplayBuffer(100, 1, 1, seed=0)
    obs, _ = envs.reset(seed=0)
    autoreset = np.zeros(2, dtype=bool)
    for _ in range(12):
        actions = envs.action_space.sample()
        next_obs, rewards, terminations, truncations, _ = envs.step(actions)
        td3.add_transitions(rb, obs, actions, rewards, next_obs, terminations, autoreset)
        autoreset = np.logical_or(terminations, truncations)
        obs = next_obs
    stored = list(zip(rb.obs[: rb.pos, 0], rb.next_obs[: rb.pos, 0], rb.terminations[: rb.pos]))
    assert all(n == o + 1 for o, n, _ in stored)  # no (final obs -> reset obs) transition was stored
    assert (4.0, 5.0, 0.0) in stored  # truncation: the true final observation, and it bootstraps
    assert all(n == 3.0 for _, n, done in stored if done)  # only env 1's third step terminates
    assert stored.count((2.0, 3.0, 1.0)) == 3 and stored.count((2.0, 3.0, 0.0)) == 2
    # 12 steps: env 0 stores 5 + 5 (2 skipped resets), env 1 stores 3 + 3 + 3 (3 skipped resets)
    assert rb.pos == 10 + 9
