import os
import sys

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
