"""Training-step time of TD3 and SAC with --sparse-kernels, against the same network masked-dense and dense.

One gradient step as the scripts take it (critic update, the delayed actor update averaged over its period, SAC's
entropy tuning, soft target updates and re-masking), on HalfCheetah-sized inputs (17 observations, 6 actions) and
random minibatches, so environment stepping and replay sampling (the same for every variant) are left out. Per
agent, width and overall sparsity (each script's default distribution and dense layers) three networks are timed:

    dense    --sparse-method dense
    masked   --sparse-method static (masks on dense tensors: the FLOPs are counted, not saved)
    kernels  --sparse-method static --sparse-kernels KERNELS (default auto: each layer takes the faster path)

with one torch thread, in turns (the order rotates each round) for --rounds rounds of --steps steps. The table gives
each variant's median and best per-step time and the speedup over dense (dense time / variant time) from the
medians, with the spread of the per-round speedups. JSON goes to benchmark/results/.

    python benchmark/sparse_kernels.py                               # 256 and 1024 wide, 90/95/99% sparse
    python benchmark/sparse_kernels.py --widths 1024 --sparsities 0.99 --rounds 3 --steps 10
    python benchmark/sparse_kernels.py --agents td3 --widths 1024 --sparsities 0.99 --kernels 0.95 --profile 10

--profile N then runs N more steps of the kernels variant under torch.profiler and prints where its time goes: each
operator's self time per step and share (the profiler inflates small ops, so read the shares, not the totals).
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import sparse_sac_continuous as sac  # noqa: E402
import sparse_td3_continuous as td3  # noqa: E402

OBS, ACT = 17, 6  # HalfCheetah
VARIANTS = ("dense", "masked", "kernels")
SCRIPTS = {"td3": "sparse_td3_continuous", "sac": "sparse_sac_continuous"}


def load_script(root: str, script: str) -> object:
    """An agent's script from another checkout, as a module of its own name (it does not replace this one's)."""
    spec = importlib.util.spec_from_file_location(f"baseline_{script}", os.path.join(root, f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(
    agent: str,
    width: int,
    sparsity: float,
    variant: str,
    kernels: str,
    batch: int,
    dist: str | None,
    scripts: dict | None = None,
) -> dict:
    """The networks, optimizers and sparse state of one agent, built as its script builds them; `scripts`: the
    agents' modules to build from (default: this checkout's)."""
    module = (scripts or {"td3": td3, "sac": sac})[agent]
    defaults = module.Args()
    low, high = -np.ones(ACT, dtype=np.float32), np.ones(ACT, dtype=np.float32)
    critic = module.QNetwork if agent == "td3" else module.SoftQNetwork
    nets = dict(
        actor=module.Actor(OBS, ACT, width, low, high), qf1=critic(OBS, ACT, width), qf2=critic(OBS, ACT, width)
    )
    targets = dict(qf1=critic(OBS, ACT, width), qf2=critic(OBS, ACT, width))
    if agent == "td3":
        targets["actor"] = module.Actor(OBS, ACT, width, low, high)
    kwargs = dict(
        batch_size=batch,
        method="dense" if variant == "dense" else "static",
        sparsity=sparsity,
        distribution=dist or defaults.sparsity_distribution,
        dense_first_layer=defaults.dense_first_layer,
        dense_output_layer=defaults.dense_output_layer,
        sparse_kernels=kernels if variant in ("kernels", "baseline") else "off",
    )
    examples = {"actor": (torch.zeros(1, OBS),), "qf1": (torch.zeros(1, OBS), torch.zeros(1, ACT))}
    examples["qf2"] = examples["qf1"]
    sparse = {name: module.SparseNetwork(net, examples[name], **kwargs) for name, net in nets.items()}
    for name, target in targets.items():
        target.load_state_dict(nets[name].state_dict())
    setup = dict(
        agent=agent,
        nets=nets,
        sparse=sparse,
        targets=targets,
        target_weights=[(sparse[name], sparse[name].weights_of(t)) for name, t in targets.items()],
        online=[p for name in targets for p in nets[name].parameters()],
        target_params=[p for t in targets.values() for p in t.parameters()],
        q_opt=torch.optim.Adam(module.weight_decay_groups([nets["qf1"], nets["qf2"]], 0.0), lr=3e-4, fused=True),
        actor_opt=torch.optim.Adam(module.weight_decay_groups([nets["actor"]], 0.0), lr=3e-4, fused=True),
        policy_frequency=defaults.policy_frequency,
        batch=batch,
        sparse_layers={
            name: [layer for layer, k in s.kernels.kernels.items() if k is not None] for name, s in sparse.items()
        },
        layer_sparsity={name: s.target_sparsity for name, s in sparse.items()},
    )
    if agent == "sac":
        setup["log_alpha"] = torch.zeros(1, requires_grad=True)
        setup["a_opt"] = torch.optim.Adam([setup["log_alpha"]], lr=3e-4, fused=True)
    return setup


def critic_update(s: dict, obs: torch.Tensor, actions: torch.Tensor, next_q: torch.Tensor) -> None:
    nets, sparse = s["nets"], s["sparse"]
    qf1_loss = F.mse_loss(nets["qf1"](obs, actions).view(-1), next_q)
    qf2_loss = F.mse_loss(nets["qf2"](obs, actions).view(-1), next_q)
    s["q_opt"].zero_grad()
    (qf1_loss + qf2_loss).backward()
    for name in ("qf1", "qf2"):
        sparse[name].update_topology_if_due(s["q_opt"])
        sparse[name].mask_gradients()
    s["q_opt"].step()


def soft_update(s: dict) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(s["target_params"], s["online"], 0.005)
    for sparse_net, weights in s["target_weights"]:
        sparse_net.apply_masks_(weights)


def td3_step(s: dict, step: int, batch: tuple) -> None:
    """One TD3 gradient step as sparse_td3_continuous.py takes it."""
    obs, actions, rewards, next_obs, dones = batch
    nets, targets = s["nets"], s["targets"]
    with torch.no_grad():
        noise = (torch.randn_like(actions) * 0.2).clamp(-0.5, 0.5)
        next_actions = (targets["actor"](next_obs) + noise).clamp(-1.0, 1.0)
        min_next = torch.min(targets["qf1"](next_obs, next_actions), targets["qf2"](next_obs, next_actions))
        next_q = rewards + (1 - dones) * 0.99 * min_next.view(-1)
    critic_update(s, obs, actions, next_q)
    if step % s["policy_frequency"] == 0:
        nets["qf1"].requires_grad_(False)  # as the script: no critic gradients from the actor's loss
        actor_loss = -nets["qf1"](obs, nets["actor"](obs)).mean()
        s["actor_opt"].zero_grad()
        actor_loss.backward()
        nets["qf1"].requires_grad_(True)
        s["sparse"]["actor"].update_topology_if_due(s["actor_opt"])
        s["sparse"]["actor"].mask_gradients()
        s["actor_opt"].step()
        soft_update(s)


def sac_step(s: dict, step: int, batch: tuple) -> None:
    """One SAC gradient step as sparse_sac_continuous.py takes it (autotuned entropy, target update every step)."""
    obs, actions, rewards, next_obs, dones = batch
    nets, targets = s["nets"], s["targets"]
    alpha = s["log_alpha"].exp().detach()
    with torch.no_grad():
        next_actions, next_log_pi, _ = nets["actor"].get_action(next_obs)
        min_next = torch.min(targets["qf1"](next_obs, next_actions), targets["qf2"](next_obs, next_actions))
        next_q = rewards + (1 - dones) * 0.99 * (min_next - alpha * next_log_pi).view(-1)
    critic_update(s, obs, actions, next_q)
    if step % s["policy_frequency"] == 0:
        for qf in (nets["qf1"], nets["qf2"]):  # as the script: no critic gradients from the actor's loss
            qf.requires_grad_(False)
        for _ in range(s["policy_frequency"]):
            pi, log_pi, _ = nets["actor"].get_action(obs)
            actor_loss = (alpha * log_pi - torch.min(nets["qf1"](obs, pi), nets["qf2"](obs, pi))).mean()
            s["actor_opt"].zero_grad()
            actor_loss.backward()
            s["sparse"]["actor"].update_topology_if_due(s["actor_opt"])
            s["sparse"]["actor"].mask_gradients()
            s["actor_opt"].step()
            with torch.no_grad():
                _, log_pi, _ = nets["actor"].get_action(obs)
            alpha_loss = (-s["log_alpha"].exp() * (log_pi - ACT)).mean()
            s["a_opt"].zero_grad()
            alpha_loss.backward()
            s["a_opt"].step()
            alpha = s["log_alpha"].exp().detach()
        for qf in (nets["qf1"], nets["qf2"]):
            qf.requires_grad_(True)
    soft_update(s)


def time_steps(s: dict, steps: int, batches: list[tuple]) -> float:
    """Mean seconds per gradient step over `steps` steps (a multiple of the policy period)."""
    take = td3_step if s["agent"] == "td3" else sac_step
    start = time.perf_counter()
    for i in range(steps):
        take(s, i + 1, batches[i % len(batches)])
    return (time.perf_counter() - start) / steps


def cpu_model() -> str:
    """The CPU's model name (speedups differ between machines: the results say which one measured them)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def profile_steps(s: dict, steps: int, batches: list[tuple]) -> list[dict]:
    """Self CPU time per step of each operator over `steps` profiled steps, largest first (the top 15 printed)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_steps(s, steps, batches)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)
    out = [
        dict(
            op=e.key,
            calls_per_step=e.count / steps,
            self_ms_per_step=e.self_cpu_time_total / 1e3 / steps,
            share=e.self_cpu_time_total / total,
        )
        for e in top
    ]
    print(f"profile of {steps} kernels steps ({total / 1e3 / steps:.1f} ms/step under the profiler):")
    for row in out[:15]:
        print(f"  {row['share']:6.1%}  {row['self_ms_per_step']:6.2f} ms  x{row['calls_per_step']:.1f}  {row['op']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", choices=["td3", "sac"], default=["td3", "sac"])
    parser.add_argument("--widths", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--sparsities", nargs="+", type=float, default=[0.9, 0.95, 0.99])
    parser.add_argument("--kernels", default="auto", help="the --sparse-kernels value of the kernels variant")
    parser.add_argument("--distribution", help="sparsity distribution (default: each script's)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="gradient steps per timing (even)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline",
        help="a checkout of another commit (e.g. from `git worktree add`): its kernels are timed as a fourth variant, "
        "'baseline', in the same rotation, for a paired before/after ratio",
    )
    parser.add_argument("--profile", type=int, default=0, help="steps of the kernels variant to profile after timing")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmark", "results", "sparse_kernels.json"))
    opts = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)  # the 1-minute load average: how busy the machine was
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    variants, base_scripts, base_commit = VARIANTS, None, None
    if opts.baseline:
        variants = (*VARIANTS, "baseline")
        base_scripts = {agent: load_script(opts.baseline, script) for agent, script in SCRIPTS.items()}
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        base_commit = subprocess.run(cmd, capture_output=True, text=True, cwd=opts.baseline).stdout.strip()
    rows = []
    print(f"one thread, batch {opts.batch_size}, {opts.rounds} rounds of {opts.steps} steps; kernels={opts.kernels}")
    print(
        "| agent | width | sparsity | variant | ms/step: median | best | speedup vs dense: median | per-round range |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for agent in opts.agents:
        for width in opts.widths:
            for sparsity in opts.sparsities:
                try:
                    setups = {
                        v: build(
                            agent,
                            width,
                            sparsity,
                            v,
                            opts.kernels,
                            opts.batch_size,
                            opts.distribution,
                            base_scripts if v == "baseline" else None,
                        )
                        for v in variants
                    }
                except (td3.BadInput, sac.BadInput) as e:  # e.g. TD3's dense output layer at 99% and width 256
                    print(f"| {agent} | {width} | {sparsity} | skipped: {e} |||||")
                    rows.append(dict(agent=agent, width=width, sparsity=sparsity, skipped=str(e)))
                    continue
                b = opts.batch_size
                batches = [
                    (
                        torch.randn(b, OBS),
                        torch.rand(b, ACT) * 2 - 1,
                        torch.randn(b),
                        torch.randn(b, OBS),
                        (torch.rand(b) < 0.01).float(),
                    )
                    for _ in range(4)
                ]
                for setup in setups.values():
                    time_steps(setup, 2, batches)  # warm-up
                times: dict[str, list[float]] = {v: [] for v in variants}
                n = len(variants)
                for r in range(opts.rounds):
                    for v in variants[r % n :] + variants[: r % n]:
                        times[v].append(time_steps(setups[v], opts.steps, batches))
                for v in variants:
                    ratios = [d / t for d, t in zip(times["dense"], times[v])]
                    row = dict(
                        agent=agent,
                        width=width,
                        sparsity=sparsity,
                        variant=v,
                        ms_per_step=[1e3 * t for t in times[v]],
                        median_ms=1e3 * statistics.median(times[v]),
                        best_ms=1e3 * min(times[v]),
                        speedup_median=statistics.median(times["dense"]) / statistics.median(times[v]),
                        speedup_range=[min(ratios), max(ratios)],
                        **(
                            dict(vs_baseline=[b / t for b, t in zip(times["baseline"], times[v])])
                            if v == "kernels" and opts.baseline
                            else {}
                        ),
                        sparse_kernel_layers=setups[v]["sparse_layers"],
                        layer_sparsity=setups[v]["layer_sparsity"],
                    )
                    rows.append(row)
                    print(
                        f"| {agent} | {width} | {sparsity} | {v} | {row['median_ms']:.2f} | {row['best_ms']:.2f} "
                        f"| {row['speedup_median']:.2f}x | {min(ratios):.2f}-{max(ratios):.2f} |",
                        flush=True,
                    )
                if opts.profile:
                    kernels_row = next(r for r in reversed(rows) if r.get("variant") == "kernels")
                    kernels_row["profile"] = profile_steps(setups["kernels"], opts.profile, batches)
                if opts.baseline:
                    paired = rows[-2]["vs_baseline"]
                    print(
                        f"| {agent} | {width} | {sparsity} | kernels vs baseline {base_commit} | median "
                        f"{statistics.median(paired):.2f}x | per-round {min(paired):.2f}-{max(paired):.2f} |||",
                        flush=True,
                    )
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    meta = dict(
        command=" ".join(["python", "benchmark/sparse_kernels.py", *sys.argv[1:]]),
        commit=commit.stdout.strip(),
        torch=torch.__version__,
        cpu=cpu_model(),
        load_average_at_start=load_at_start,
        threads=1,
        batch_size=opts.batch_size,
        steps=opts.steps,
        rounds=opts.rounds,
        kernels=opts.kernels,
        distribution=opts.distribution,
        baseline_commit=base_commit,
    )
    with open(opts.out, "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    print(f"wrote {os.path.relpath(opts.out, ROOT)}")


if __name__ == "__main__":
    main()
