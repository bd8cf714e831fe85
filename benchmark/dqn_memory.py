"""Memory of sparse_dqn_atari.py's replay buffer: its size at 1M Atari transitions, the resident memory right after
it is created (pages are mapped lazily) and after every row is written, and the process's peak resident memory.

    python benchmark/dqn_memory.py                # 1M transitions of 84x84 frames, about 7 GB of writes
    python benchmark/dqn_memory.py --size 100000
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sparse_dqn_atari import ReplayBuffer  # noqa: E402


def status_kib(field: str) -> int:
    """A field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="transitions (one 84x84 frame each)")
    opts = parser.parse_args()
    gib = 2**30
    start = status_kib("VmRSS")
    rb = ReplayBuffer(opts.size, 1, (84, 84), np.uint8, stack=4, seed=0)
    arrays = (rb.obs, rb.actions, rb.rewards, rb.terminations, rb.first, rb.valid)
    allocated = sum(a.nbytes for a in arrays)
    created = status_kib("VmRSS")
    frame = np.random.default_rng(0).integers(0, 256, (1, 84, 84), dtype=np.uint8)
    one, zero, act = np.ones(1, bool), np.zeros(1, bool), np.zeros(1, np.int64)
    t0 = time.time()
    for t in range(opts.size):
        rb.add(frame, zero if t % 1000 else one, act, np.zeros(1, np.float32), zero, one)
    fill_s = time.time() - t0
    filled = status_kib("VmRSS")
    t0 = time.time()
    for _ in range(100):
        rb.sample(32, torch.device("cpu"))
    sample_ms = (time.time() - t0) * 10
    print(f"replay buffer of {opts.size:,} transitions (84x84 uint8 frames stored once, stacks of 4 built on sampling)")
    print("| what | GiB |")
    print("|---|---|")
    print(f"| arrays allocated (frames {rb.obs.nbytes / gib:.2f} GiB) | {allocated / gib:.2f} |")
    print(f"| resident right after creation | {(created - start) / 2**20:.2f} |")
    print(f"| resident after writing every row | {(filled - start) / 2**20:.2f} |")
    print(f"| process peak resident (VmHWM) | {status_kib('VmHWM') / 2**20:.2f} |")
    print(f"filling took {fill_s:.1f} s; sampling a batch of 32 stacked transitions takes {sample_ms:.2f} ms")


if __name__ == "__main__":
    main()
