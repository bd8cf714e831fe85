"""What every agent script must do alike: repeat itself for a seed, save and reload, store gymnasium 1.x vector
transitions correctly, and reject bad input with one line before training."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT, CounterEnv

import sparse_sac_continuous as sac
import sparse_td3_continuous as td3

SHORT = dict(
    total_timesteps=600,
    learning_starts=100,
    batch_size=32,
    buffer_size=1000,
    update_interval=50,
    update_end=400,
    prune_start=100,
    prune_end=400,
    eval_frequency=600,
    eval_episodes=1,
    hidden_width=64,
    sparsity=0.8,
)
MODULES = {"td3": td3, "sac": sac}


@pytest.mark.parametrize("name", MODULES)
def test_same_seed_same_results(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = MODULES[name]
    short = {**SHORT, "eval_frequency": 300, "sparse_method": "rigl"}
    a = module.train(module.Args(**short, seed=3))
    b = module.train(module.Args(**short, seed=3))
    c = module.train(module.Args(**short, seed=4))
    assert a["evaluations"] == b["evaluations"]
    assert a["evaluations"] != c["evaluations"]


@pytest.mark.parametrize("name", MODULES)
def test_saved_model_loads_and_evaluates_the_same(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = MODULES[name]
    summary = module.train(module.Args(**SHORT, sparse_method="set", save_model=True))
    with open(os.path.join(summary["run_dir"], "summary.json")) as f:
        assert json.load(f)["model_path"] == summary["model_path"]  # the file names the model too
    ckpt = torch.load(summary["model_path"], weights_only=False)
    actor = module.Actor(
        ckpt["obs_dim"], ckpt["act_dim"], ckpt["args"]["hidden_width"], ckpt["action_low"], ckpt["action_high"]
    )
    actor.load_state_dict(ckpt["actor"])
    assert ckpt["masks"]["actor"] and ckpt["masks"]["qf1"]
    for name_, mask in ckpt["masks"]["actor"].items():
        assert (dict(actor.named_modules())[name_].weight[mask == 0] == 0).all()
    env = gym.make(ckpt["args"]["env_id"])
    returns = module.evaluate(actor, env, 1, ckpt["args"]["seed"] + 100, torch.device("cpu"))
    assert returns.mean() == pytest.approx(summary["final_eval_return"])
    # target networks, after soft updates across topology changes, are exactly as sparse as the online ones
    for net in ("qf1", "qf2", "actor") if name == "td3" else ("qf1", "qf2"):
        target = ckpt[f"target_{net}" if net == "actor" else f"{net}_target"]
        for layer, mask in ckpt["masks"][net].items():
            assert (target[f"{layer}.weight"][mask == 0] == 0).all()


@pytest.mark.parametrize("name", MODULES)
def test_vector_env_transitions_keep_final_observations(name):
    module = MODULES[name]
    # env 0 is truncated by a 5-step time limit, env 1 terminates after 3 steps
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(CounterEnv(), 5), lambda: gym.wrappers.TimeLimit(CounterEnv(3), 5)]
    )
    rb = module.ReplayBuffer(100, 1, 1, seed=0)
    obs, _ = envs.reset(seed=0)
    autoreset = np.zeros(2, dtype=bool)
    for _ in range(12):
        actions = envs.action_space.sample()
        next_obs, rewards, terminations, truncations, _ = envs.step(actions)
        rb.add(obs, actions, rewards, next_obs, terminations, autoreset)
        autoreset = np.logical_or(terminations, truncations)
        obs = next_obs
    stored = list(zip(rb.obs[: rb.pos, 0], rb.next_obs[: rb.pos, 0], rb.terminations[: rb.pos]))
    assert all(n == o + 1 for o, n, _ in stored)  # no (final obs -> reset obs) transition was stored
    assert (4.0, 5.0, 0.0) in stored  # truncation: the true final observation, and it bootstraps
    assert all(n == 3.0 for _, n, done in stored if done)  # only env 1's third step terminates
    assert stored.count((2.0, 3.0, 1.0)) == 3 and stored.count((2.0, 3.0, 0.0)) == 2
    # 12 steps: env 0 stores 5 + 5 (2 skipped resets), env 1 stores 3 + 3 + 3 (3 skipped resets)
    assert rb.pos == 10 + 9


BAD_INPUT = [
    (["--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
    (["--critic-sparsity", "-0.2"], "--critic-sparsity must be in [0, 1)"),
    (["--drop-fraction", "2"], "--drop-fraction must be in [0, 1]"),
    (["--env-id", "CartPole-v1"], "needs a continuous (Box) one"),
    (["--env-id", "NoSuchEnv-v0"], "cannot make --env-id NoSuchEnv-v0"),
    (["--buffer-size", "50", "--batch-size", "100"], "--buffer-size (50) must be at least --batch-size (100)"),
    (["--sparse-method", "prune", "--prune-start", "50", "--prune-end", "40"], "--prune-end (40) must be after"),
    (["--sparsity", "0.999", "--dense-first-layer", "--dense-output-layer"], "cannot be reached"),
]


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("flags, message", BAD_INPUT)
def test_bad_input_fails_with_one_line(name, flags, message, refused):
    short = ["--total-timesteps", "10", "--learning-starts", "0"]  # flags given after these win
    assert message in refused(MODULES[name].__name__, *short, *flags)


@pytest.mark.parametrize("name", MODULES)
def test_unknown_method_rejected_by_cli(name):
    script = os.path.join(ROOT, f"{MODULES[name].__name__}.py")
    result = subprocess.run([sys.executable, script, "--sparse-method", "magic"], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "magic" in result.stderr


@pytest.mark.parametrize("script", ["sparse_td3_continuous", "sparse_sac_continuous", "sparse_dqn_atari", "sparse_ppo"])
@pytest.mark.parametrize("flag, module", [("--capture-video", "moviepy"), ("--track", "wandb")])
def test_optional_dependency_missing_fails_with_one_line(script, flag, module):
    try:
        __import__(module)
        pytest.skip(f"{module} is installed here")
    except ImportError:
        pass
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, f"{script}.py"),
            flag,
            "--env-id",
            "CartPole-v1" if script in ("sparse_dqn_atari", "sparse_ppo") else "HalfCheetah-v5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"error: {flag} needs {module}: pip install {module}" in result.stderr


@pytest.mark.parametrize("script", ["td3", "sac"])
def test_the_actor_update_computes_no_critic_gradients(script, monkeypatch):
    """The actor's loss backpropagates through the critics, but only the actor steps on it: the critics' weights
    do not require gradients during that backward (nothing is computed for them), and do again afterwards."""
    import test_sac
    import test_td3

    module, short = (test_td3.td3, test_td3.SHORT) if script == "td3" else (test_sac.sac, test_sac.SHORT)
    critic_class = module.QNetwork if script == "td3" else module.SoftQNetwork
    calls, forward, networks = [], critic_class.forward, []

    def recording_forward(self, x, a):
        if self not in networks:
            networks.append(self)
        calls.append((torch.is_grad_enabled(), self.fc1.weight.requires_grad))
        return forward(self, x, a)

    monkeypatch.setattr(critic_class, "forward", recording_forward)
    module.train(module.Args(**{**short, "total_timesteps": 300}))
    with_grad = [requires for enabled, requires in calls if enabled]
    assert True in with_grad and False in with_grad  # critic losses, and actor losses through frozen critics
    assert all(p.requires_grad for net in networks for p in net.parameters())
