"""Checkpoint and resume: a run stopped after a checkpoint and resumed ends exactly where an uninterrupted run ends
(returns, masks, weights, tensorboard logs) in the folder it started in, and bad checkpoints are refused with
one-line errors before anything is written."""

import glob
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import Interrupted, run_dirs

# Per script: a short run (1000 steps) whose topology updates, pruning, evaluations and episode ends fall on both
# sides of the checkpoint at step 500.
CONTINUOUS = dict(
    total_timesteps=1000,
    learning_starts=200,
    batch_size=32,
    buffer_size=2000,
    update_interval=50,
    update_end=700,
    eval_frequency=250,
    eval_episodes=1,
    hidden_width=32,
    sparsity=0.8,
    env_id="InvertedPendulum-v5",
)
RUNS = {
    "sparse_td3_continuous": dict(CONTINUOUS, sparse_method="rigl"),
    "sparse_sac_continuous": dict(CONTINUOUS, sparse_method="set"),
    "sparse_dqn_atari": dict(
        env_id="CartPole-v1",
        total_timesteps=1000,
        learning_starts=200,
        batch_size=32,
        hidden_width=32,
        update_interval=50,
        update_end=700,
        eval_frequency=250,
        eval_episodes=2,
        sparse_method="rigl",
        sparsity=0.8,
    ),
}


PPO = dict(
    env_id="CartPole-v1",
    total_timesteps=1024,
    num_steps=128,
    eval_frequency=256,
    eval_episodes=1,
    hidden_width=32,
    update_interval=4,
    update_end=40,
    sparse_method="rigl",
    drop_fraction=0.3,
)


def saved_model(summary: dict) -> dict:
    return torch.load(summary["model_path"], weights_only=False)


def logged(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tensorboard shows for a run folder, as (step, value) pairs per tag (what a purge dropped is
    gone)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_same_logs(full: str, resumed: str) -> None:
    """The resumed run's tensorboard curves are the uninterrupted run's: every point once, at the same steps, with
    the same values (speeds aside)."""
    a, b = logged(full), logged(resumed)
    assert a.keys() == b.keys()
    for tag in a:
        assert [step for step, _ in a[tag]] == [step for step, _ in b[tag]], tag
        if tag != "charts/SPS":
            assert a[tag] == b[tag], tag


def files(folder: str) -> dict[str, bytes]:
    """Every file under `folder` with its contents."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.mark.parametrize("script", sorted(RUNS))
def test_stopped_and_resumed_run_equals_uninterrupted_run(script, tmp_path, monkeypatch, stopped_run):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(script)
    settings = dict(RUNS[script], checkpoint_frequency=500, checkpoint_buffer=True, save_model=True)
    full = module.train(module.Args(**settings, exp_name="full"))
    run_dir = stopped_run(module, module.Args(**settings, exp_name="stopped"))
    assert os.path.exists(os.path.join(run_dir, "checkpoint.pt"))
    resumed = module.train(module.Args(resume=run_dir))
    assert resumed["run_dir"] == run_dir  # the same run folder (and tensorboard run) continues
    assert resumed["evaluations"] == full["evaluations"] and len(full["evaluations"]) == 4
    assert_same_logs(full["run_dir"], run_dir)  # the evaluation at the checkpoint's step (500) included
    assert resumed["networks"] == full["networks"]  # active weights, FLOPs and topology-update counts
    assert resumed["train_flops_vs_dense"] == full["train_flops_vs_dense"]
    a, b = saved_model(full), saved_model(resumed)
    assert any(net["topology_updates"] > 0 for net in full["networks"].values())
    for key, value in a.items():
        if isinstance(value, dict) and all(torch.is_tensor(v) for v in value.values()):  # a state dict
            assert value.keys() == b[key].keys()
            for name in value:
                assert torch.equal(value[name], b[key][name]), f"{key}.{name} differs after resuming"
    for net, masks in a["masks"].items():
        for layer, mask in masks.items():
            assert torch.equal(mask, b["masks"][net][layer]), f"mask {net}.{layer} differs after resuming"


@pytest.mark.parametrize("script", sorted(RUNS))
def test_resume_without_buffer_refills_it_and_finishes(script, tmp_path, monkeypatch, capsys, stopped_run):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(script)
    settings = dict(RUNS[script], checkpoint_frequency=500)
    run_dir = stopped_run(module, module.Args(**settings, exp_name="stopped"))
    summary = module.train(module.Args(resume=run_dir, hidden_width=7))
    out = capsys.readouterr().out
    assert "refilling it with" in out
    assert "ignored: --hidden-width" in out  # a resumed run keeps the checkpoint's settings
    assert [step for step, _ in summary["evaluations"]] == [250, 500, 750, 1000]
    assert summary["args"]["hidden_width"] == 32


def test_atari_run_resumes_exactly(tmp_path, monkeypatch, stopped_run):
    """Pong with sticky actions, no-op starts, frame stacking across the checkpoint and short (truncated) episodes."""
    monkeypatch.chdir(tmp_path)
    dqn = importlib.import_module("sparse_dqn_atari")
    settings = dict(
        env_id="ALE/Pong-v5",
        total_timesteps=400,
        learning_starts=100,
        train_frequency=4,
        buffer_size=1000,
        batch_size=8,
        max_episode_steps=60,
        update_interval=10,
        update_end=60,
        eval_frequency=200,
        eval_episodes=1,
        sparse_method="set",
        checkpoint_frequency=200,
        checkpoint_buffer=True,
        save_model=True,
    )
    full = dqn.train(dqn.Args(**settings, exp_name="full"))
    run_dir = stopped_run(dqn, dqn.Args(**settings, exp_name="stopped"))
    resumed = dqn.train(dqn.Args(resume=run_dir))
    assert resumed["evaluations"] == full["evaluations"]
    assert resumed["networks"] == full["networks"] and full["networks"]["q_network"]["topology_updates"] > 0
    a, b = saved_model(full), saved_model(resumed)
    for name, value in a["q_network"].items():
        assert torch.equal(value, b["q_network"][name]), name
    for name, value in a["masks"]["q_network"].items():
        assert torch.equal(value, b["masks"]["q_network"][name]), name


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "CartPole-v1"])
def test_ppo_run_resumes_exactly(env_id, tmp_path, monkeypatch, stopped_run):
    """PPO checkpoints after a rollout's update: observation and reward normalization, the learning-rate anneal and
    the minibatch shuffling continue as in an uninterrupted run."""
    monkeypatch.chdir(tmp_path)
    ppo = importlib.import_module("sparse_ppo")
    settings = dict(
        env_id=env_id,
        total_timesteps=1024,
        num_steps=128,
        num_minibatches=4,
        update_epochs=2,
        eval_frequency=256,
        eval_episodes=1,
        hidden_width=32,
        update_interval=4,
        update_end=40,
        sparse_method="rigl",
        drop_fraction=0.3,
        checkpoint_frequency=500,  # taken after the rollout that crosses it (512 steps)
        save_model=True,
    )
    full = ppo.train(ppo.Args(**settings, exp_name="full"))
    run_dir = stopped_run(ppo, ppo.Args(**settings, exp_name="stopped"))
    assert torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)["global_step"] == 512
    resumed = ppo.train(ppo.Args(resume=run_dir))
    assert resumed["evaluations"] == full["evaluations"] and len(full["evaluations"]) >= 2
    assert resumed["networks"] == full["networks"]
    assert_same_logs(full["run_dir"], run_dir)  # the checkpoint's rollout (step 512) logged once
    a, b = saved_model(full), saved_model(resumed)
    for name, value in a["agent"].items():
        assert torch.equal(value, b["agent"][name]), name
    for net, masks in a["masks"].items():
        for layer, mask in masks.items():
            assert torch.equal(mask, b["masks"][net][layer]), f"{net}.{layer}"
    if a["obs_rms"] is not None:
        for key in ("mean", "var", "count"):
            assert np.array_equal(a["obs_rms"][key], b["obs_rms"][key]), key


def test_bad_checkpoints_are_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys, stopped_run):
    monkeypatch.chdir(tmp_path)
    td3 = importlib.import_module("sparse_td3_continuous")
    sac = importlib.import_module("sparse_sac_continuous")
    settings = dict(RUNS["sparse_td3_continuous"], checkpoint_frequency=500)
    run_dir = stopped_run(td3, td3.Args(**settings, exp_name="stopped"))
    path = os.path.join(run_dir, "checkpoint.pt")
    good = open(path, "rb").read()

    def refused(module, resume: str) -> str:
        before = files(str(tmp_path))
        with pytest.raises(module.BadInput) as e:
            module.train(module.Args(resume=resume))
        assert files(str(tmp_path)) == before  # nothing written: no run folder, no tensorboard purge marker
        assert "Traceback" not in capsys.readouterr().err and "\n" not in str(e.value)
        return str(e.value)

    assert "is a checkpoint of sparse_td3_continuous.py, not of sparse_sac_continuous.py" in refused(sac, run_dir)
    assert "no checkpoint at" in refused(td3, os.path.join(run_dir, "missing.pt"))

    # a checkpoint whose recorded settings build other networks than its weights fit (a copy outside its folder
    # continues its run's folder, so this is refused only once the networks are built): the first mismatch is named
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["args"]["hidden_width"] = 16
    torch.save(checkpoint, os.path.join(tmp_path, "other_shape.pt"))
    message = refused(td3, os.path.join(tmp_path, "other_shape.pt"))
    assert "does not match this run's networks" in message and "size mismatch for fc1.weight" in message

    # truncated on disk: refused as a file, and as the only checkpoint of a folder
    with open(path, "wb") as f:
        f.write(good[: len(good) // 2])
    assert "truncated or corrupted" in refused(td3, path)
    assert "truncated or corrupted" in refused(td3, run_dir)

    # a finished run: its last checkpoint is before the end, so resuming would repeat the steps after it
    with open(path, "wb") as f:
        f.write(good)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        f.write("{}")
    assert "has finished" in refused(td3, run_dir)
    assert "has finished" in refused(td3, path)


def test_kill_during_checkpoint_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    td3 = importlib.import_module("sparse_td3_continuous")
    settings = dict(RUNS["sparse_td3_continuous"], checkpoint_frequency=300)
    real_save, calls = torch.save, []

    def dies_on_second_write(obj, f) -> None:  # the second checkpoint's write is cut off halfway
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 partial")
            raise Interrupted
        real_save(obj, f)

    monkeypatch.setattr(td3.torch, "save", dies_on_second_write)
    with pytest.raises(Interrupted):
        td3.train(td3.Args(**settings, exp_name="killed"))
    monkeypatch.setattr(td3.torch, "save", real_save)
    (run_dir,) = run_dirs("killed")
    assert os.path.exists(os.path.join(run_dir, "checkpoint.pt.tmp"))  # the torn write
    checkpoint = td3.load_checkpoint(run_dir, "sparse_td3_continuous")
    assert checkpoint["global_step"] == 300  # the previous, complete checkpoint
    summary = td3.train(td3.Args(resume=run_dir, checkpoint_frequency=0))
    assert summary["evaluations"][-1][0] == 1000
    # a finished run cannot be resumed: its checkpoints (and the torn write) are gone
    assert not [name for name in os.listdir(run_dir) if name.startswith("checkpoint")]


def test_killed_process_resumes_from_the_command_line(tmp_path):
    """A real SIGKILL of a training process at an arbitrary moment, then `--resume RUN_FOLDER` on the command line."""
    from conftest import ROOT

    script = os.path.join(ROOT, "sparse_td3_continuous.py")
    flags = ["--env-id", "InvertedPendulum-v5", "--total-timesteps", "100000", "--learning-starts", "100"]
    flags += ["--batch-size", "16", "--hidden-width", "16", "--checkpoint-frequency", "50", "--exp-name", "killed"]
    proc = subprocess.Popen([sys.executable, script, *flags], cwd=tmp_path, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "runs" / "*" / "checkpoint.prev.pt")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.37)  # somewhere among the next checkpoint writes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "*"))
    td3 = importlib.import_module("sparse_td3_continuous")
    step = td3.load_checkpoint(run_dir, td3.SCRIPT)["global_step"]
    assert step >= 100 and step % 50 == 0
    # resume with a shorter budget would be ignored (the checkpoint's settings win), so finish it off by patching
    # the checkpoint's total: the run then ends after a few more steps
    path = os.path.join(run_dir, "checkpoint.pt")
    if not os.path.exists(path):
        path = os.path.join(run_dir, "checkpoint.prev.pt")
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["args"]["total_timesteps"] = step + 100
    torch.save(checkpoint, path)
    # flags given with --resume lose to the checkpoint's settings, and the note names each one that differs, even
    # one given at its default value (--total-timesteps 1000000); --hidden-width 16 is the run's own value
    resume = ["--resume", run_dir, "--total-timesteps", "1000000", "--hidden-width", "16"]
    done = subprocess.run([sys.executable, script, *resume], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (note,) = [line for line in done.stdout.splitlines() if "ignored:" in line]
    assert note.endswith(f"ignored: --total-timesteps 1000000 (the run's: {step + 100})"), note
    assert f"resumed {run_dir} at step {step}" in done.stdout
    assert f"{step + 100} steps ===" in done.stdout


def test_a_second_checkpoint_keeps_the_first_as_previous_until_the_run_ends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    td3 = importlib.import_module("sparse_td3_continuous")
    original, writes = td3.save_checkpoint, []

    def save_and_look(run_dir: str, checkpoint: dict) -> str:
        """Write, then note the steps of checkpoint.pt and checkpoint.prev.pt (None: absent)."""
        path = original(run_dir, checkpoint)
        prev = os.path.join(run_dir, "checkpoint.prev.pt")
        steps = [torch.load(p, weights_only=False)["global_step"] if os.path.exists(p) else None for p in (path, prev)]
        writes.append(tuple(steps))
        return path

    monkeypatch.setattr(td3, "save_checkpoint", save_and_look)
    summary = td3.train(td3.Args(**dict(RUNS["sparse_td3_continuous"], checkpoint_frequency=400), exp_name="two"))
    assert writes == [(400, None), (800, 400)]  # the second checkpoint keeps the first as the previous one
    # the finished run can no longer be resumed, so its checkpoints are deleted
    assert sorted(name for name in os.listdir(summary["run_dir"]) if not name.startswith("events")) == ["summary.json"]


@pytest.mark.parametrize("script", [*sorted(RUNS), "sparse_ppo"])
def test_resume_continues_in_its_run_folder_and_never_touches_a_finished_run(
    script, tmp_path, monkeypatch, stopped_run
):
    """Resuming a run folder by its absolute path from another working directory finishes the run in that folder;
    afterwards a copy of its checkpoint taken elsewhere, or the folder itself, is refused without writing anything."""
    module = importlib.import_module(script)
    settings = dict(RUNS.get(script, PPO), checkpoint_frequency=500)
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    run_dir = os.path.abspath(stopped_run(module, module.Args(**settings, exp_name="stopped")))
    (tmp_path / "elsewhere").mkdir()
    copy = str(tmp_path / "elsewhere" / "checkpoint.pt")
    shutil.copy(os.path.join(run_dir, "checkpoint.pt"), copy)
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "second")
    summary = module.train(module.Args(resume=run_dir))
    assert summary["run_dir"] == run_dir and summary["evaluations"][-1][0] == summary["total_timesteps"]
    assert os.listdir(tmp_path / "second") == []  # nothing written where the command ran
    assert not [name for name in os.listdir(run_dir) if name.startswith("checkpoint")]  # finished: deleted
    before = files(str(tmp_path))
    for resume in (copy, run_dir):
        with pytest.raises(module.BadInput) as e:
            module.train(module.Args(resume=resume))
        assert "has finished" in str(e.value)
        assert files(str(tmp_path)) == before  # summary.json and the logs untouched


def test_a_checkpoint_copied_out_of_its_folder_continues_its_own_run(tmp_path, monkeypatch, stopped_run):
    """A copy of an unfinished run's checkpoint continues that run in its folder, wherever the copy is and whatever
    the working directory; a copy whose run folder is nowhere to be found is refused."""
    td3 = importlib.import_module("sparse_td3_continuous")
    settings = dict(RUNS["sparse_td3_continuous"], checkpoint_frequency=500)
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    run_dir = os.path.abspath(stopped_run(td3, td3.Args(**settings, exp_name="stopped")))
    checkpoint = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)
    (tmp_path / "elsewhere").mkdir()
    torch.save(checkpoint, tmp_path / "elsewhere" / "checkpoint.pt")
    checkpoint["run_dir_abs"] = str(tmp_path / "gone")
    torch.save(checkpoint, tmp_path / "elsewhere" / "lost.pt")
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(td3.BadInput) as e:
        td3.train(td3.Args(resume="lost.pt"))
    assert f"put the checkpoint in a folder named {os.path.basename(run_dir)}" in str(e.value)
    summary = td3.train(td3.Args(resume="checkpoint.pt"))
    assert summary["run_dir"] == run_dir and os.path.exists(os.path.join(run_dir, "summary.json"))
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["checkpoint.pt", "lost.pt"]


def test_resuming_from_inside_the_run_folder_keeps_the_run_and_its_name(tmp_path, monkeypatch):
    td3 = importlib.import_module("sparse_td3_continuous")
    folder = tmp_path / "Env-v0__stopped__set__1__123"
    folder.mkdir()
    monkeypatch.chdir(folder)
    checkpoint = {"run_dir": "runs/Env-v0__stopped__set__1__123", "run_dir_abs": "/nowhere"}
    assert td3.checkpoint_run_dir("checkpoint.pt", checkpoint) == "."
    run_name, run_dir, _ = td3.start_run(td3.Args(), {"run_dir": "."})
    assert (run_name, run_dir) == ("Env-v0__stopped__set__1__123", ".")  # the name, hence the wandb id, is kept


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "CartPole-v1", "HalfCheetah-v5"])
def test_env_state_round_trip_continues_identically(env_id):
    """A fresh env given a saved state continues exactly as the original: physics, emulator, sticky actions, RNGs,
    time limits and episode statistics, across episode ends (autoreset)."""
    import gymnasium as gym
    import numpy as np

    dqn = importlib.import_module("sparse_dqn_atari")

    def make() -> gym.Env:
        if env_id.startswith("ALE"):
            env = dqn.make_env(env_id, 0, 0, False, "x", max_episode_steps=150)
        else:
            env = lambda: gym.make(env_id, max_episode_steps=150)  # noqa: E731
        return gym.wrappers.vector.RecordEpisodeStatistics(gym.vector.SyncVectorEnv([env, env]))

    original = make()
    original.reset(seed=1)
    original.action_space.seed(1)
    for steps_before in (37, 83, 51):  # several points: states differ in the last action, episode phase, ...
        for _ in range(steps_before):
            original.step(original.action_space.sample())
        saved = torch.load(_round_trip(dqn.env_state(original)), weights_only=False)
        expected = [original.step(original.action_space.sample()) for _ in range(200)]
        copy = make()
        copy.reset(seed=123)
        dqn.set_env_state(copy, saved)
        for step, want in enumerate(expected):
            got = copy.step(copy.action_space.sample())
            for a, b in zip(want[:4], got[:4], strict=True):
                assert np.array_equal(a, b), f"{env_id}: differs {step} steps after restoring"
            assert np.array_equal(want[4].get("_episode", []), got[4].get("_episode", []))


def _round_trip(obj: object):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer
