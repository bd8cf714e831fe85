"""How much denormal floats slow a layer's matrix products on the CPU, and how many a checkpoint holds.

Weights and Adam moments of units that stop receiving gradient decay under weight decay into the denormal range
(below 1.2e-38), where x86 arithmetic takes a slow path. Every script therefore flushes denormals to zero
(`torch.set_flush_denormal(True)` in `start_run`). This measures the cost it avoids: the forward and backward
products of one Linear layer (x @ W.T and grad.T @ x), one thread, with a given fraction of W's entries denormal,
with flushing off and on, alternated, best of `--rounds`.

    python benchmark/denormals.py                              # 256x256 layer, batch 100, 45% denormal
    python benchmark/denormals.py --checkpoint runs/RUN/checkpoint.pt   # also count denormals in a checkpoint
"""

import argparse
import time

import torch

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32; nonzero values below it are denormal


def denormal_count(t: torch.Tensor) -> int:
    return int(((t != 0) & (t.abs() < TINY)).sum())


def product_ms(w: torch.Tensor, x: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        y = x @ w.T
        y.T @ x
    return (time.perf_counter() - start) / repeats * 1e3


def count_checkpoint(path: str) -> None:
    """Print every tensor of a checkpoint (networks, optimizer moments) that holds denormals."""

    def walk(prefix: str, obj: object) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}[{i}]", v)
        elif torch.is_tensor(obj) and obj.is_floating_point() and (n := denormal_count(obj)):
            print(f"{prefix[1:]} {tuple(obj.shape)}: {n:,} of {obj.numel():,} denormal ({n / obj.numel():.0%})")

    ck = torch.load(path, weights_only=False, map_location="cpu")
    walk("", {k: ck[k] for k in ("modules", "optimizers") if k in ck})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.45, help="fraction of W's entries made denormal")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkpoint", help="a checkpoint.pt whose denormals to count")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    if opts.checkpoint:
        count_checkpoint(opts.checkpoint)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(opts.width, opts.width, generator=gen) * 0.05
    dead = torch.rand(opts.width, opts.width, generator=gen) < opts.fraction
    x = torch.randn(opts.batch, opts.width, generator=gen).relu()
    times: dict[str, list[float]] = {"denormals, no flush": [], "denormals, flushed": [], "no denormals": []}
    for _ in range(opts.rounds):
        torch.set_flush_denormal(False)
        # built with flushing off, or the multiplication itself would flush them
        w_denormal = torch.where(dead, w * 1e-39, w)
        clean = torch.where(dead, torch.zeros_like(w), w)
        times["denormals, no flush"].append(product_ms(w_denormal, x, opts.repeats))
        times["no denormals"].append(product_ms(clean, x, opts.repeats))
        torch.set_flush_denormal(True)
        times["denormals, flushed"].append(product_ms(w_denormal, x, opts.repeats))
    torch.set_flush_denormal(False)
    print(f"{denormal_count(w_denormal):,} of {w.numel():,} weights denormal; width {opts.width}, batch {opts.batch}")
    for name, t in times.items():
        print(f"{name}: best {min(t):.2f} ms, median {sorted(t)[len(t) // 2]:.2f} ms per forward+backward product")


if __name__ == "__main__":
    main()
