"""Run one of CleanRL 0.4.8's scripts, unmodified, on one torch thread: `python cleanrl_run.py SCRIPT [its flags]`.

Runs in CleanRL's own virtual environment (benchmark/setup_cleanrl.sh), not the project's, and imports nothing from
the project. What it adds before running the script as __main__:
- torch.set_num_threads(1), which the script has no flag for (OMP_NUM_THREADS=1 alone leaves torch's intra-op pool
  at its default on some builds);
- `gym.wrappers.Monitor`, which the scripts import at the top but use only with --capture-video: gym removed it after
  0.22, and gym 0.25.2 is the oldest release with a HalfCheetah that needs no mujoco-py. The stand-in raises if used.
"""

import os
import runpy
import sys

import gym.wrappers
import torch

torch.set_num_threads(1)
if not hasattr(gym.wrappers, "Monitor"):

    class Monitor:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("gym.wrappers.Monitor is not in this gym release; run without --capture-video")

    gym.wrappers.Monitor = Monitor

import cleanrl  # noqa: E402  (after the stand-in: the scripts import Monitor from gym.wrappers)

script = os.path.join(os.path.dirname(cleanrl.__file__), sys.argv[1] + ".py")
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
