"""What every script does around training, alike: a first run says where it logs, what it will do and how far it
is; the thread count is a recorded setting; a run that cannot do what was asked says so; and a refusal writes
nothing."""

import importlib
import os
import re
import subprocess
import sys
import types

import pytest
import torch
from conftest import ROOT

SCRIPTS = ["sparse_td3_continuous", "sparse_sac_continuous", "sparse_dqn_atari", "sparse_ppo"]
CONTINUOUS = dict(
    env_id="InvertedPendulum-v5",
    total_timesteps=300,
    learning_starts=100,
    batch_size=16,
    buffer_size=300,
    hidden_width=16,
    eval_frequency=300,
    eval_episodes=1,
    sparse_method="set",
)
# A few hundred steps per script: each trains, evaluates once and writes its summary.
TINY = {
    "sparse_td3_continuous": CONTINUOUS,
    "sparse_sac_continuous": CONTINUOUS,
    "sparse_dqn_atari": dict(
        env_id="CartPole-v1",
        total_timesteps=300,
        learning_starts=100,
        batch_size=16,
        hidden_width=16,
        eval_frequency=300,
        eval_episodes=1,
        sparse_method="set",
    ),
    "sparse_ppo": dict(
        env_id="CartPole-v1",
        total_timesteps=256,
        num_steps=64,
        hidden_width=16,
        eval_frequency=256,
        eval_episodes=1,
        sparse_method="set",
    ),
}


def test_first_run_prints_its_plan_and_progress_and_no_warnings(tmp_path):
    """The README's first command (DS-TD3 on HalfCheetah-v5), on a short budget: the run folder and the plan come
    first, every evaluation line says how far the run is, how fast it learns and how long it has left, and nothing
    else (no MuJoCo deprecation warnings, no MUJOCO_LOG.TXT) appears."""
    flags = ["--total-timesteps", "600", "--learning-starts", "200", "--eval-frequency", "200"]
    flags += ["--eval-episodes", "1", "--update-interval", "100", "--update-end", "300"]
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "sparse_td3_continuous.py"), *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert os.listdir(tmp_path) == ["runs"]
    (run,) = os.listdir(tmp_path / "runs")
    lines = result.stdout.splitlines()
    assert lines[0] == f"run folder: runs/{run} (watch it with: tensorboard --logdir runs)"
    assert lines[1] == (
        "plan: 600 steps; random actions until step 200, learning after that; a 1-episode evaluation every 200 "
        "steps and at the end; no checkpoints (--checkpoint-frequency N writes one every N steps)"
    )
    # one line per evaluation (on a slow machine, lines every minute may come in between)
    evaluations = [line for line in lines if "| evaluation return" in line]
    evaluation, learning = r"evaluation return -?[\d.]+", r"learning at [\d,]+ steps/s"
    assert re.fullmatch(rf"step 200/600 \(33\.3%\) \| {evaluation} \| time left: .*", evaluations[0])
    assert re.fullmatch(rf"step 400/600 \(66\.7%\) \| {evaluation} \| {learning} \| about \S+ left", evaluations[1])
    assert re.fullmatch(rf"step 600/600 \(100\.0%\) \| {evaluation} \| {learning}", evaluations[2])
    assert len(evaluations) == 3 and lines[-6].startswith("=== sparse_td3_continuous set on HalfCheetah-v5")


def test_progress_lines_measure_learning_speed_and_time_left(monkeypatch, capsys):
    td3 = importlib.import_module("sparse_td3_continuous")
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(td3, "time", types.SimpleNamespace(time=lambda: clock.now))

    def at(seconds: float, step: int, **evaluation) -> str:
        clock.now = seconds
        progress.update(step, **evaluation)
        return capsys.readouterr().out.strip()

    progress = td3.Progress(total=10_000, warmup=1_000, eval_frequency=5_000, every_s=60)
    assert at(1, 500) == ""  # nothing due yet
    assert at(61, 900) == (
        "step 900/10,000 (9.0%) | random warm-up until step 1,000 at 15 steps/s | time left: estimated once "
        "learning has started"
    )
    assert at(62, 1_000) == ""
    # 4,000 learning steps in 45 s, of which 5 s of evaluation: 100 steps/s; 5,000 steps and one evaluation to go
    assert at(107, 5_000, eval_return=1.5, eval_seconds=5.0) == (
        "step 5,000/10,000 (50.0%) | evaluation return 1.5 | learning at 100 steps/s | about 55s left"
    )
    assert at(132, 7_500) == ""
    assert at(157, 10_000, eval_return=2.0, eval_seconds=0.0) == (
        "step 10,000/10,000 (100.0%) | evaluation return 2.0 | learning at 100 steps/s"
    )
    assert td3.duration(3 * 3600 + 7 * 60 + 5) == "3h07m" and td3.duration(725) == "12m05s"


@pytest.mark.parametrize("script", SCRIPTS)
def test_thread_count_is_a_recorded_setting(script, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = importlib.import_module(script)
    assert module.Args().torch_threads == 1
    # as short as a run gets (two threads on a busy machine are slow): a few gradient steps, one evaluation
    shorter = dict(total_timesteps=128, eval_frequency=128, num_steps=32) if script == "sparse_ppo" else {}
    shorter = shorter or dict(total_timesteps=120, learning_starts=100, eval_frequency=120)
    try:
        summary = module.train(module.Args(**{**TINY[script], **shorter}, torch_threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert summary["args"]["torch_threads"] == 2
    events = EventAccumulator(summary["run_dir"], size_guidance={"tensors": 0})
    events.Reload()
    (text,) = events.Tensors("hyperparameters/text_summary")
    assert "|torch_threads|2|" in text.tensor_proto.string_val[0].decode()


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_run_flushes_denormals_to_zero(script):
    """Weights decaying into the denormal range made long runs ~20x slower; every run flushes them to zero."""
    module = importlib.import_module(script)
    torch.set_flush_denormal(False)  # an earlier run in this process left it on
    tiny = torch.tensor([1e-39])  # a denormal float32
    assert (tiny * 1.0).item() != 0.0
    try:
        module.start_run(module.Args(**TINY[script]))
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_empty_topology_update_window_gets_the_same_note(script, monkeypatch, capsys):
    """set and rigl with no update step inside the run: every script says so before it starts."""

    class Started(Exception):
        pass

    module = importlib.import_module(script)
    monkeypatch.setattr(module, "start_run", lambda *a, **k: (_ for _ in ()).throw(Started))
    with pytest.raises(Started):
        module.train(module.Args(**{**TINY[script], "update_start": 0, "update_end": 0}))
    note = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and note[0].startswith("note: no topology updates happen: set updates masks every")


REFUSALS = [
    (SCRIPTS, dict(sparsity=0.999, dense_first_layer=True, dense_output_layer=True), "cannot be reached"),
    (SCRIPTS, dict(torch_threads=0), "--torch-threads must be at least 1, got 0"),
    (SCRIPTS, dict(sparse_kernels="fast"), "--sparse-kernels must be off, auto or a sparsity in [0, 1], got 'fast'"),
    (SCRIPTS[:3], dict(learning_starts=300, total_timesteps=300), "--learning-starts (300) must be less than"),
    (SCRIPTS[:2], dict(env_id="ALE/Pong-v5"), "ALE/Pong-v5 is an Atari game, with discrete actions"),
    (SCRIPTS[3:], dict(env_id="ALE/Pong-v5"), "for Atari use sparse_dqn_atari.py"),
]


@pytest.mark.parametrize(
    "script, flags, message", [(s, flags, message) for scripts, flags, message in REFUSALS for s in scripts]
)
def test_a_refusal_is_one_line_and_writes_nothing(script, flags, message, tmp_path):
    module = importlib.import_module(script)
    with pytest.raises(module.BadInput) as e:
        module.train(module.Args(**{**TINY[script], **flags}))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_entry_point_turns_a_refusal_into_one_error_line(script, tmp_path, monkeypatch):
    """Bad input is raised where it is found (BadInput) and printed once, by main, as `error: ...`."""
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--torch-threads", "0"])
    with pytest.raises(SystemExit) as e:
        module.main(module.train, module.Args)
    assert e.value.code == "error: --torch-threads must be at least 1, got 0"
    assert os.listdir(tmp_path) == []


def test_command_line_flags():
    td3 = importlib.import_module("sparse_td3_continuous")
    argv = ["--resume", "runs/x", "--total-timesteps=5", "--no-dense-output-layer", "--hidden_width", "7"]
    assert td3.command_line_flags(argv) >= {"resume", "total_timesteps", "dense_output_layer", "hidden_width"}
    assert "runs/x" not in td3.command_line_flags(argv)
