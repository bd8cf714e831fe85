"""sparse_dqn_atari.py: the frame-once replay buffer, Dopamine-style preprocessing, and short real runs on CartPole
and Pong for every method."""

import glob
import os
import resource

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT

import sparse_dqn_atari as dqn

SCRIPT = os.path.join(ROOT, "sparse_dqn_atari.py")


class FrameEnv(gym.Env):
    """2x2 uint8 frames filled with 10 * episode + step, so every frame says where it came from; terminates after
    `terminate_at` steps when given (a TimeLimit truncates the others)."""

    observation_space = gym.spaces.Box(0, 255, (2, 2), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at, self.episode, self.t = terminate_at, 0, 0

    def frame(self) -> np.ndarray:
        return np.full((2, 2), 10 * self.episode + self.t, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self.frame(), {}

    def step(self, action):
        self.t += 1
        return self.frame(), 1.0, self.t == self.terminate_at, False, {}


def test_replay_rebuilds_stacked_states_across_episode_boundaries():
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(FrameEnv(), 6), lambda: gym.wrappers.TimeLimit(FrameEnv(3), 6)]
    )
    rb = dqn.ReplayBuffer(100, 2, (2, 2), np.uint8, stack=4, seed=0)
    obs, _ = envs.reset(seed=0)
    state = np.zeros((2, 4, 2, 2), np.uint8)
    state[:, -1] = obs
    first, autoreset = np.ones(2, bool), np.zeros(2, bool)
    acted_on = []
    for _ in range(20):
        acted_on.append(state.copy())
        actions = envs.action_space.sample()
        next_obs, rewards, terminations, truncations, _ = envs.step(actions)
        state, first, autoreset = dqn.record_step(
            rb, state, first, autoreset, actions, rewards, next_obs, terminations, truncations
        )
    for row, expected in enumerate(acted_on):  # the buffer rebuilds exactly what the agent acted on
        for env in range(2):
            got = rb.states(np.array([row]), np.array([env]))[0]
            np.testing.assert_array_equal(got, expected[env])
    # planted values, env 1 (3-step episodes): rows 0-3 are frames 10-13 (13 final, stored by the reset step),
    # rows 4-7 are 20-23; row 6 is the third state of episode 2, zero-padded, and row 3 is not a transition
    assert [v[0, 0] for v in rb.states(np.array([6]), np.array([1]))[0]] == [0, 20, 21, 22]
    assert [v[0, 0] for v in rb.states(np.array([7]), np.array([1]))[0]] == [20, 21, 22, 23]
    assert rb.valid[:8, 1].tolist() == [True, True, True, False, True, True, True, False]
    # sampled transitions: next state = state shifted by one frame of the same episode
    s, a, r, s2, done = rb.sample(64, torch.device("cpu"))
    last, nxt = s[:, -1, 0, 0].numpy().astype(int), s2[:, -1, 0, 0].numpy().astype(int)
    assert (nxt == last + 1).all()  # never a jump to a reset frame
    np.testing.assert_array_equal(s2[:, :-1].numpy(), s[:, 1:].numpy())
    terminal_frames = nxt[done.numpy() == 1] % 10
    assert len(terminal_frames) and (terminal_frames == 3).all()  # only env 1's third step terminates


def test_replay_memory_is_one_frame_per_transition_and_lazy():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rb = dqn.ReplayBuffer(1_000_000, 1, (84, 84), np.uint8, stack=4, seed=0)
    total = sum(a.nbytes for a in (rb.obs, rb.actions, rb.rewards, rb.terminations, rb.first, rb.valid))
    assert rb.obs.nbytes == 1_000_000 * 84 * 84  # each frame once: 6.6 GiB for 1M transitions
    assert total < 7.0 * 2**30
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert after - before < 200 * 1024  # untouched pages are not resident: a default run starts at once


def test_area_resize_and_max_pool():
    m = dqn.AtariPreprocessing.area_matrix(210, 84)
    assert m.shape == (84, 210)
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
    # 210 -> 84 is 2.5 input rows per output row: row 0 averages rows 0, 1 and half of row 2
    np.testing.assert_allclose(m[0, :3], [0.4, 0.4, 0.2], rtol=1e-6)
    env = dqn.make_env("ALE/Pong-v5", 0, 0, False, "x")()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8
    # the banded resize equals the full area-averaging matrix product
    wrapper = env
    while not isinstance(wrapper, dqn.AtariPreprocessing):
        wrapper = wrapper.env
    pooled = np.maximum(wrapper.frames[0], wrapper.frames[1]).astype(np.float32)
    full = np.rint(m @ pooled @ dqn.AtariPreprocessing.area_matrix(160, 84).T).astype(np.uint8)
    np.testing.assert_array_equal(obs, full)
    # sticky actions: v5's 0.25, applied by the wrapper (ALE's own are off, see test_sticky_actions)
    assert wrapper.sticky == 0.25 and env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    frame_before = env.unwrapped.ale.getEpisodeFrameNumber()
    env.step(0)
    assert env.unwrapped.ale.getEpisodeFrameNumber() - frame_before == 4  # frame skip 4


def test_sticky_actions():
    """ALE's rule, per emulator frame: with probability p the previous action is repeated; a reset clears it."""
    assert dqn.make_env("PongNoFrameskip-v4", 0, 0, False, "x")().sticky == 0.0  # v4 registers none
    env = dqn.make_env("ALE/Pong-v5", 0, 0, False, "x")()
    env.reset(seed=0)
    wrapper = env
    repeated, frames = 0, 0
    for t in range(400):
        previous = wrapper.last_action
        action = 1 + t % 5  # never the no-op, and never the same twice in a row
        wrapper.emulate(action)
        repeated += wrapper.last_action == previous
        frames += 1
        assert wrapper.last_action in (previous, action)
    assert repeated / frames == pytest.approx(0.25, abs=0.07)  # 400 Bernoulli(0.25) draws: std 0.022
    wrapper.sticky = 1.0
    env.reset(seed=0)
    env.step(3)
    assert wrapper.last_action == 0  # always sticky: the no-op set by reset is repeated forever
    wrapper.sticky = 0.0
    env.step(3)
    assert wrapper.last_action == 3


# Dopamine's Nature CNN, the network [G] trained, on 84x84x4 frames with TF 'SAME' padding; and CleanRL's, which
# pads 'valid'. Conv weights 8*8*4*32 + 4*4*32*64 + 3*3*64*64 = 77,824; fc1 7744*512 = 3,964,928 (valid: 3136*512 =
# 1,605,632); the output layer 512 * actions.
CNNS = {
    "same": dict(fc1_in=7744, maps=[21, 11, 11], total={6: 4_045_824, 18: 4_051_968}),
    "valid": dict(fc1_in=3136, maps=[20, 9, 7], total={6: 1_686_528, 18: 1_692_672}),
}


def conv_maps(q: torch.nn.Module) -> list[tuple[int, ...]]:
    """The (channels, height, width) each conv layer of `q` outputs for one 84x84x4 input."""
    out = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: out.append(tuple(o.shape[1:])))
        for m in q.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    q(torch.zeros(1, 4, 84, 84))
    for hook in hooks:
        hook.remove()
    return out


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("n_actions", [6, 18])
def test_atari_cnn_layer_shapes_and_weight_count(padding, n_actions):
    cnn = CNNS[padding]
    q = dqn.QNetwork((4, 84, 84), n_actions, 512, True, padding)
    shapes = [tuple(m.weight.shape) for m in dqn.maskable_layers(q).values()]
    fc1 = (512, cnn["fc1_in"])
    assert shapes == [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3), fc1, (n_actions, 512)]
    assert sum(m.weight.numel() for m in dqn.maskable_layers(q).values()) == cnn["total"][n_actions]
    assert conv_maps(q) == [(c, n, n) for c, n in zip([32, 64, 64], cnn["maps"])]
    # the layers keep their names whatever the padding, so logs (sparsity/q_network/density/network.7) line up
    assert list(dqn.maskable_layers(q)) == ["network.0", "network.2", "network.4", "network.7", "network.9"]
    assert q(torch.zeros(3, 4, 84, 84)).shape == (3, n_actions)


def test_dopamine_cnn_is_the_default_and_pads_like_tensorflow():
    assert dqn.Args().cnn_padding == "same"
    q = dqn.QNetwork((4, 84, 84), 6, 512, True)
    assert tuple(q.network[7].weight.shape) == (512, 7744)
    # TF 'SAME': total padding (ceil(in / stride) - 1) * stride + kernel - in, the odd pixel at the bottom/right
    assert [q.network[i].pad for i in (0, 2, 4)] == [(2, 2, 2, 2), (1, 2, 1, 2), (1, 1, 1, 1)]
    assert dqn.same_padding(21, 4, 2) == (1, 2) and dqn.same_padding(84, 8, 4) == (2, 2)
    # the second conv on 21x21 ones with unit weights: output (0, 0) sees rows and columns -1..2 (3x3 of them are
    # inside), output (10, 10) sees 19..22 (2x2 inside); symmetric padding could not give 11 outputs
    conv = q.network[2]
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        out = conv(torch.ones(1, 32, 21, 21))
    assert out.shape == (1, 64, 11, 11)
    assert out[0, 0, 0, 0] == 9 * 32 and out[0, 0, 10, 10] == 4 * 32 and out[0, 0, 5, 5] == 16 * 32


@pytest.mark.parametrize(
    "sparsity, expected",
    [(0.9, [0.706, 0.853, 0.832, 0.904, 0.0]), (0.99, [0.972, 0.986, 0.984, 0.991, 0.743])],
)
def test_erk_of_dopamine_cnn_matches_rigl(sparsity, expected):
    """Check values from rigl's ERK for Dopamine's network (18 actions, every layer sparse); at 90% ERK makes the
    output layer dense."""
    q = dqn.QNetwork((4, 84, 84), 18, 512, True)
    shapes = {name: tuple(m.weight.shape) for name, m in dqn.maskable_layers(q).items()}
    got = dqn.layer_sparsities(shapes, sparsity, "erk")
    assert [round(s, 3) for s in got.values()] == pytest.approx(expected, abs=1e-9)
    # what a run builds with the default flags (no dense first or output layer)
    args = dqn.Args()
    assert not args.dense_first_layer and not args.dense_output_layer and args.sparsity_distribution == "erk"
    sparse = dqn.SparseNetwork(q, (torch.zeros(1, 4, 84, 84),), batch_size=32, method="rigl", sparsity=sparsity)
    assert sparse.target_sparsity == got
    assert sparse.active_weights() / sparse.total_weights() == pytest.approx(1 - sparsity, abs=1e-4)


CARTPOLE = dict(
    env_id="CartPole-v1",
    total_timesteps=600,
    learning_starts=100,
    eval_frequency=600,
    eval_episodes=2,
    update_end=400,
    update_interval=50,
    prune_start=100,
    prune_end=400,
    batch_size=32,
    hidden_width=64,
)
PONG = dict(
    total_timesteps=300,
    learning_starts=100,
    eval_frequency=300,
    eval_episodes=1,
    update_end=40,
    update_interval=10,
    prune_start=10,
    prune_end=40,
    buffer_size=1000,
    train_frequency=4,
)


# Every method on CartPole; on Pong (12 s a run) the two whose Atari settings differ: rigl (sparsity-aware init, dense
# gradients through the convolutions) and prune ([G]'s Atari pruning keeps the dense init). Dense, static and set on
# the CNN differ from these only in what CartPole already covers.
PER_METHOD = [("cartpole", m) for m in ("dense", "static", "set", "rigl", "prune")] + [
    ("pong", "rigl"),
    ("pong", "prune"),
]


@pytest.mark.parametrize("setting, method", PER_METHOD)
def test_short_run_per_method(setting, method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = dqn.train(dqn.Args(**(CARTPOLE if setting == "cartpole" else PONG), sparse_method=method))
    assert np.isfinite(summary["final_eval_return"])
    assert glob.glob(os.path.join(summary["run_dir"], "events.out.tfevents.*"))
    net = summary["networks"]["q_network"]
    ratio = net["active_weights"] / net["total_weights"]
    assert ratio == 1.0 if method == "dense" else ratio == pytest.approx(0.1, abs=0.001)
    # updates every Delta T within the window, except the no-ops at its ends (the cosine drop fraction is 0 at
    # update_end, the pruning schedule is 0 at prune_start). cartpole: set/rigl 50, ..., 350 (7), prune 150, ..., 400
    # (6); pong: set/rigl 10, 20, 30 and prune 20, 30, 40 (3)
    expected = {"dense": 0, "static": 0, "prune": 6 if setting == "cartpole" else 3}.get(method)
    expected = expected if expected is not None else (7 if setting == "cartpole" else 3)
    assert net["topology_updates"] == expected
    if setting == "pong":
        assert summary["evaluations"][-1][1] >= -21  # at most 200 steps: the evaluation episode is truncated
        assert summary["settings"]["weight_decay"] == 0.0 and summary["settings"]["loss"] == "huber"
        assert summary["settings"]["sparsity_aware_init"] == (method != "prune")
        assert net["total_weights"] == CNNS["same"]["total"][6]  # Dopamine's network by default (Pong: 6 actions)


def test_valid_padding_run_and_checkpoints_of_the_old_network(tmp_path, monkeypatch, capsys, stopped_run):
    """--cnn-padding valid trains CleanRL's network. A checkpoint written before the flag existed (a 'valid' network,
    no cnn_padding among its args) is refused by the default network with the one-line error, and resumes when
    --cnn-padding valid is given."""
    monkeypatch.chdir(tmp_path)
    settings = dict(PONG, sparse_method="rigl", cnn_padding="valid", checkpoint_frequency=200, save_model=True)
    summary = dqn.train(dqn.Args(**settings))
    net = summary["networks"]["q_network"]
    assert net["total_weights"] == CNNS["valid"]["total"][6] and net["topology_updates"] == 3  # 10, 20, 30
    ckpt = torch.load(summary["model_path"], weights_only=False)
    q = dqn.QNetwork(ckpt["obs_shape"], ckpt["n_actions"], 512, ckpt["atari"], ckpt["args"]["cnn_padding"])
    q.load_state_dict(ckpt["q_network"])
    assert tuple(q.network[7].weight.shape) == (512, 3136)

    # A finished run deletes its checkpoints, and a finished run is not resumed: take the checkpoint from the same
    # run stopped (as if killed) right after it wrote its first one, at step 200.
    stopped = stopped_run(dqn, dqn.Args(**settings, exp_name="stopped"))
    checkpoint = torch.load(os.path.join(stopped, "checkpoint.pt"), weights_only=False)
    del checkpoint["args"]["cnn_padding"]  # as the script wrote them before --cnn-padding
    old = str(tmp_path / "old.pt")
    torch.save(checkpoint, old)
    capsys.readouterr()
    with pytest.raises(dqn.BadInput) as e:
        dqn.train(dqn.Args(resume=old))
    message = str(e.value)
    assert message.startswith("the checkpoint does not match this run's networks") and "\n" not in message
    assert "Traceback" not in capsys.readouterr().err
    resumed = dqn.train(dqn.Args(resume=old, cnn_padding="valid"))
    assert resumed["networks"]["q_network"]["total_weights"] == CNNS["valid"]["total"][6]
    assert [step for step, _ in resumed["evaluations"]] == [300]


def test_same_seed_same_results_and_saved_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = dqn.train(dqn.Args(**{**CARTPOLE, "eval_frequency": 300}, sparse_method="set", seed=2, save_model=True))
    b = dqn.train(dqn.Args(**{**CARTPOLE, "eval_frequency": 300}, sparse_method="set", seed=2))
    c = dqn.train(dqn.Args(**{**CARTPOLE, "eval_frequency": 300}, sparse_method="set", seed=3))
    assert a["evaluations"] == b["evaluations"] != c["evaluations"]
    ckpt = torch.load(a["model_path"], weights_only=False)
    q = dqn.QNetwork(ckpt["obs_shape"], ckpt["n_actions"], ckpt["settings"]["hidden_width"], ckpt["atari"])
    q.load_state_dict(ckpt["q_network"])
    for name, mask in ckpt["masks"]["q_network"].items():
        assert (dict(q.named_modules())[name].weight[mask == 0] == 0).all()
    env = dqn.make_env("CartPole-v1", 0, 1, False, "x")()
    returns = dqn.evaluate(q, env, 2, 0.0, 1, 2 + 100, torch.device("cpu"))
    assert returns.mean() == pytest.approx(a["final_eval_return"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--env-id", "Pendulum-v1"], "DQN needs a discrete one"),
        (["--env-id", "CartPole-v1", "--buffer-size", "64", "--batch-size", "128"], "--buffer-size (64) must be"),
        (["--sparsity", "1.0"], "--sparsity must be in [0, 1)"),
        (["--env-id", "CartPole-v1", "--eval-epsilon", "2"], "--eval-epsilon must be in [0, 1]"),
        (["--env-id", "ALE/NoSuchGame-v5"], "cannot make --env-id ALE/NoSuchGame-v5"),
    ],
)
def test_bad_input_fails_with_one_line(flags, message, refused):
    assert message in refused(SCRIPT, *flags, "--total-timesteps", "10")
