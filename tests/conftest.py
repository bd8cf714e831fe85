import glob
import os
import subprocess
import sys
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The networks here are small; one thread keeps runs fast, repeatable and fair to a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: the runs/ a script creates in its working directory (and anything
    else written there) never lands in the checkout, from the test's process or the subprocesses it starts."""
    monkeypatch.chdir(tmp_path)


class CounterEnv(gym.Env):
    """Observation = steps taken in the episode; terminates after `terminate_at` steps when given. For checking how
    scripts store and bootstrap episode ends (wrap it in a TimeLimit for truncations)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def __init__(self, terminate_at: int | None = None, discrete: bool = False) -> None:
        self.terminate_at, self.t = terminate_at, 0
        self.action_space = gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == self.terminate_at, False, {}


class Interrupted(Exception):
    """Stands for the kill that stops a run right after a checkpoint is written."""


def run_dirs(pattern: str) -> list[str]:
    """The run folders under runs/ of the working directory whose name holds `__pattern__` (an --exp-name)."""
    return sorted(glob.glob(os.path.join("runs", f"*__{pattern}__*")))


@pytest.fixture
def stopped_run(monkeypatch) -> Callable:
    """stopped_run(module, args): train until the first checkpoint is written, then stop as if killed; returns the
    run folder."""

    def stop(module, args) -> str:
        original = module.save_checkpoint

        def save_then_stop(run_dir: str, checkpoint: dict) -> str:
            original(run_dir, checkpoint)
            raise Interrupted

        monkeypatch.setattr(module, "save_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            module.train(args)
        monkeypatch.setattr(module, "save_checkpoint", original)
        (run_dir,) = run_dirs(args.exp_name)
        return run_dir

    return stop


@pytest.fixture
def refused(tmp_path) -> Callable:
    """refused(script, *flags): run a script's command line, check that it refuses with exactly one line
    `error: ...` on stderr, no traceback, a failing exit status and nothing written in the working directory (the
    test's own temporary folder: no runs/); returns that line."""

    def run(script: str, *flags: str) -> str:
        path = os.path.join(ROOT, script if script.endswith(".py") else f"{script}.py")
        result = subprocess.run([sys.executable, path, *flags], capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        assert os.listdir(tmp_path) == []
        return lines[0]

    return run
