"""sparse_ppo.py: short runs on CartPole (categorical) and HalfCheetah (Gaussian, normalized) for every method,
truncation bootstrapping, repeatability, a saved model that evaluates as before, and bad input."""

import glob
import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, CounterEnv

import sparse_ppo as ppo

SCRIPT = os.path.join(ROOT, "sparse_ppo.py")
# CartPole: 4 envs x 128 steps, 4 epochs x 4 minibatches -> 16 gradient steps per rollout, 4 rollouts = 64.
CARTPOLE = dict(
    env_id="CartPole-v1",
    total_timesteps=2048,
    eval_frequency=2048,
    eval_episodes=2,
    hidden_width=32,
    update_interval=8,
    update_end=48,
    prune_start=8,
    prune_end=48,
)
# HalfCheetah: 1 env x 256 steps, 2 epochs x 4 minibatches -> 8 per rollout, 4 rollouts = 32.
CHEETAH = dict(
    total_timesteps=1024,
    num_steps=256,
    num_minibatches=4,
    update_epochs=2,
    eval_frequency=1024,
    eval_episodes=1,
    hidden_width=32,
    update_interval=4,
    update_end=24,
    prune_start=4,
    prune_end=24,
)


@pytest.mark.parametrize("method", ["dense", "static", "set", "rigl", "prune"])
@pytest.mark.parametrize("setting", ["cartpole", "cheetah"])
def test_short_run_per_method(setting, method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = ppo.train(
        ppo.Args(**(CARTPOLE if setting == "cartpole" else CHEETAH), sparse_method=method, drop_fraction=0.3)
    )
    assert np.isfinite(summary["final_eval_return"])
    assert glob.glob(os.path.join(summary["run_dir"], "events.out.tfevents.*"))
    for net in summary["networks"].values():
        ratio = net["active_weights"] / net["total_weights"]
        assert ratio == 1.0 if method == "dense" else ratio == pytest.approx(0.1, abs=0.005)
        # set/rigl: Delta T 8 (4) up to 48 (24), but the cosine drop fraction is 0 at 48 (24): 5 updates;
        # prune: 16, ..., 48 (8, ..., 24), since at prune_start 8 (4) the schedule is still 0: 5
        assert net["topology_updates"] == (0 if method in ("dense", "static") else 5)
    settings = summary["settings"]
    assert settings["weight_decay"] == ppo.TUNED[method]["weight_decay"]
    assert settings["norm_obs"] == settings["norm_reward"] == (setting == "cheetah")


def test_default_pruning_window_is_graessers():
    c = ppo.resolve_args(ppo.Args(sparse_method="prune"), continuous=True)
    grad_steps = c["num_iterations"] * c["update_epochs"] * c["num_minibatches"]
    assert grad_steps == 156_480  # 489 rollouts x 10 epochs x 32 minibatches
    assert int(ppo.PRUNE_WINDOW[0] * grad_steps) == 32_000 and int(ppo.PRUNE_WINDOW[1] * grad_steps) == 120_000


def test_truncation_bootstraps_from_the_final_observation():
    # env 0 is truncated at step 4, env 1 terminates at step 4; V(s) = 10 * s for the test
    envs = gym.vector.SyncVectorEnv(
        [
            lambda: gym.wrappers.TimeLimit(CounterEnv(discrete=True), 4),
            lambda: gym.wrappers.TimeLimit(CounterEnv(4, discrete=True), 10),
        ],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs.reset(seed=0)
    for step in range(1, 5):
        obs, reward, terminations, truncations, infos = envs.step(np.zeros(2, dtype=np.int64))
        reward = torch.as_tensor(reward, dtype=torch.float32)
        ppo.bootstrap_truncations(
            reward, terminations, truncations, infos, 0.9, lambda final: torch.as_tensor(10.0 * final[:, 0])
        )
        if step < 4:
            assert reward.tolist() == [1.0, 1.0]
    assert truncations.tolist() == [True, False] and terminations.tolist() == [False, True]
    assert obs[:, 0].tolist() == [0.0, 0.0]  # both already reset (SAME_STEP)
    assert reward.tolist() == pytest.approx([1.0 + 0.9 * 40.0, 1.0])  # final obs 4 -> V = 40; termination: none


def test_same_seed_same_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {**CARTPOLE, "eval_frequency": 1024, "sparse_method": "rigl", "drop_fraction": 0.3}
    a, b, c = (ppo.train(ppo.Args(**args, seed=s)) for s in (5, 5, 6))
    assert a["evaluations"] == b["evaluations"] != c["evaluations"]


def test_saved_model_with_normalization_evaluates_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = ppo.train(ppo.Args(**CHEETAH, sparse_method="set", save_model=True))
    ckpt = torch.load(summary["model_path"], weights_only=False)
    agent = ppo.Agent(ckpt["obs_dim"], ckpt["act_dim"], ckpt["args"]["hidden_width"], ckpt["continuous"])
    agent.load_state_dict(ckpt["agent"])
    obs_rms = ppo.RunningMeanStd()
    obs_rms.mean, obs_rms.var, obs_rms.count = ckpt["obs_rms"]["mean"], ckpt["obs_rms"]["var"], ckpt["obs_rms"]["count"]
    assert obs_rms.count > 1000  # statistics of the whole run, not a fresh start
    returns = ppo.evaluate(
        agent, gym.make("HalfCheetah-v5"), 1, obs_rms, ckpt["args"]["seed"] + 100, torch.device("cpu")
    )
    assert returns.mean() == pytest.approx(summary["final_eval_return"])
    for name, mask in ckpt["masks"]["actor"].items():
        assert (dict(agent.actor.named_modules())[name].weight[mask == 0] == 0).all()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sparsity", "1.2"], "--sparsity must be in [0, 1)"),
        (["--actor-sparsity", "-1"], "--actor-sparsity must be in [0, 1)"),
        (["--env-id", "ALE/Pong-v5"], "Atari game: PPO here trains on environments with flat observation vectors"),
        (["--num-steps", "100", "--num-minibatches", "32"], "must be divisible by --num-minibatches"),
        (["--total-timesteps", "1000"], "is less than one rollout"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make --env-id NoSuchEnv-v0"),
    ],
)
def test_bad_input_fails_with_one_line(flags, message, refused):
    assert message in refused(SCRIPT, *flags)
