"""Where a dense TD3 / SAC learning step spends its time on one CPU thread, and what candidate rewrites would save.

    python benchmark/step_profile.py profile --script td3     # the script's own step under torch.profiler
    python benchmark/step_profile.py phases                   # a replica of the TD3 step, timed phase by phase
    python benchmark/step_profile.py candidates --rounds 5    # prototypes of faster steps, alternated against it
    python benchmark/step_profile.py candidates --variants by_hand products_only compiled --reference frozen_q

`profile` runs the real script (dense, HalfCheetah-v5, batch 256) for a few hundred learning steps under
torch.profiler and groups the operators' self time: matrix products, Adam, elementwise and the rest, with the time
outside operators (Python, the dispatcher, the environment) as what is left of the wall time. The profiler inflates
small ops, so the shares, not the absolute times, are the result; the unprofiled ms/step is printed beside them.

`phases` and `candidates` use a replica of sparse_td3_continuous.py's dense learning step (same shapes: 17
observations, 6 actions, 256-256 networks; numpy replay buffer sampled as the script does; fused Adam; foreach lerp
for the targets), so each phase can be timed alone and each rewrite tried without touching the script. Candidates:
  torch_sample  replay buffer as preallocated torch tensors, torch.randint + index_select (no numpy -> torch copies)
  twin_bmm      both critics (and both target critics) as one network: weights stacked [2, out, in], torch.baddbmm
  lean          fewer small ops: noise made in place, one cat of (obs, action) reused by both critics, no .view calls
  all           the three together
  frozen_q      no critic weight gradients from the actor's loss (critic requires_grad off around it); the scripts
                now do this, so their step is this variant, not "baseline" (docs/vs-cleanrl.md)
  compiled      frozen_q with both losses under torch.compile (inductor on the CPU; compile time printed)
  by_hand       frozen_q without autograd: the backward products written out, in place where possible; the same
                arithmetic (tests check the weights after two steps), so the least an eager op-by-op step can cost
  products_only the matrix products of by_hand's step alone, recorded from it (same shapes and layouts), on fixed
                operands: what the step would take if everything else cost nothing
Each round runs every variant for --steps steps in a rotated order; the table gives ms/step medians and each
variant's per-round ratio to the reference (--reference, default baseline; median and range), the noise-robust
figure on a busy machine. --variants picks some (the reference is always run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OBS, ACT, WIDTH, BATCH = 17, 6, 256, 256
GAMMA, TAU, POLICY_NOISE, NOISE_CLIP, POLICY_FREQUENCY = 0.99, 0.005, 0.2, 0.5, 2


# --- profile: the script's own step ---


def category(op: str) -> str:
    if op in ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm"):
        return "matrix products (forward and backward)"
    if "adam" in op:
        return "Adam"
    if "foreach" in op or "lerp" in op:
        return "target update (foreach lerp)"
    if op in ("aten::index", "aten::index_select", "aten::randint", "aten::random_", "aten::from_numpy"):
        return "replay sampling ops"
    if op in ("aten::copy_", "aten::empty", "aten::empty_strided", "aten::zero_", "aten::fill_", "aten::zeros"):
        return "copies and allocations"
    return "other ops (elementwise, reductions, autograd bookkeeping)"


def profile(opts: argparse.Namespace) -> None:
    module = importlib.import_module({"td3": "sparse_td3_continuous", "sac": "sparse_sac_continuous"}[opts.script])
    torch.set_num_threads(1)
    os.chdir(tempfile.mkdtemp(prefix="step-profile-"))
    starts, steps = 1000, opts.steps
    settings = dict(
        sparse_method="dense",
        total_timesteps=starts + steps,
        learning_starts=starts,
        buffer_size=starts + steps,
        batch_size=BATCH,
        eval_frequency=10 * (starts + steps),
        eval_episodes=1,
        torch_threads=1,
    )
    plain = module.train(module.Args(**settings))
    ms_per_step = 1e3 / plain["learning_sps"]
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        profiled = module.train(module.Args(**settings))
        wall = time.perf_counter() - t0
    # Only the learning phase matters; the warm-up's ops (acting on random actions: none) are negligible, so all ops
    # are attributed to learning and the wall time of the learning phase is taken from the run's own count.
    learn_s = profiled["learning_sps"] and steps / profiled["learning_sps"]
    groups: dict[str, float] = {}
    top = []
    for avg in prof.key_averages():
        if not avg.key.startswith("aten::"):
            continue
        groups[category(avg.key)] = groups.get(category(avg.key), 0.0) + avg.self_cpu_time_total / 1e6
        top.append((avg.self_cpu_time_total / 1e6, avg.count, avg.key))
    ops_s = sum(groups.values())
    print(f"{opts.script}: {steps} learning steps at batch {BATCH}, one thread")
    print(f"unprofiled: {ms_per_step:.2f} ms per learning step (env step and acting included)")
    print(f"profiled: learning phase {learn_s:.1f} s of {wall:.1f} s wall; aten ops' self time {ops_s:.1f} s")
    print("| share of the profiled learning phase | s | % |\n|---|---|---|")
    for name, s in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.2f} | {100 * s / learn_s:.0f} |")
    rest = learn_s - ops_s
    print(f"| outside aten ops: Python, dispatcher, environment, numpy | {rest:.2f} | {100 * rest / learn_s:.0f} |")
    print("top ops by self time: " + ", ".join(f"{k} {s:.2f}s/{n}" for s, n, k in sorted(top, reverse=True)[:10]))


# --- the replica of the dense TD3 step ---


class QNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(OBS + ACT, WIDTH), nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, a], 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Actor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc_mu = nn.Linear(OBS, WIDTH), nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, ACT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc_mu(F.relu(self.fc2(F.relu(self.fc1(x))))))


def mlp(q: QNetwork, xa: torch.Tensor) -> torch.Tensor:
    """A critic on an already concatenated (observation, action) batch, so two critics share one cat."""
    return q.fc3(F.relu(q.fc2(F.relu(q.fc1(xa)))))


class TwinQ(nn.Module):
    """Two critics as one module: each layer's weights stacked [2, out, in], one baddbmm per layer for both."""

    def __init__(self, q1: QNetwork, q2: QNetwork) -> None:
        super().__init__()
        self.w = nn.ParameterList()
        self.b = nn.ParameterList()
        for l1, l2 in ((q1.fc1, q2.fc1), (q1.fc2, q2.fc2), (q1.fc3, q2.fc3)):
            # [2, in, out] so that x [2, batch, in] @ w gives [2, batch, out] without a transpose per call
            self.w.append(nn.Parameter(torch.stack([l1.weight.T, l2.weight.T]).contiguous()))
            self.b.append(nn.Parameter(torch.stack([l1.bias, l2.bias]).unsqueeze(1).contiguous()))

    def forward(self, xa: torch.Tensor) -> torch.Tensor:
        """xa: [batch, in] shared by both critics, or [2, batch, in]; returns [2, batch]."""
        h = xa.expand(2, *xa.shape[-2:]) if xa.dim() == 2 else xa
        h = torch.relu(torch.baddbmm(self.b[0], h, self.w[0]))
        h = torch.relu(torch.baddbmm(self.b[1], h, self.w[1]))
        return torch.baddbmm(self.b[2], h, self.w[2]).squeeze(-1)

    def q1(self, xa: torch.Tensor) -> torch.Tensor:
        """The first critic alone (the actor's loss uses only Q1)."""
        h = torch.relu(torch.addmm(self.b[0][0], xa, self.w[0][0]))
        h = torch.relu(torch.addmm(self.b[1][0], h, self.w[1][0]))
        return torch.addmm(self.b[2][0], h, self.w[2][0])


class NumpyBuffer:
    """As the script's ReplayBuffer: numpy arrays, numpy indices, one numpy gather and one torch copy per field."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.obs = rng.standard_normal((size, OBS)).astype(np.float32)
        self.next_obs = rng.standard_normal((size, OBS)).astype(np.float32)
        self.actions = rng.uniform(-1, 1, (size, ACT)).astype(np.float32)
        self.rewards = rng.standard_normal(size).astype(np.float32)
        self.terminations = np.zeros(size, np.float32)
        self.size, self.rng = size, np.random.default_rng(0)

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size, size=n)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.as_tensor(a[idx]) for a in arrays)


class TorchBuffer:
    """The same data in preallocated torch tensors: torch.randint and index_select, no numpy on the hot path."""

    def __init__(self, np_buffer: NumpyBuffer) -> None:
        b = np_buffer
        self.fields = [torch.from_numpy(a.copy()) for a in (b.obs, b.actions, b.rewards, b.next_obs, b.terminations)]
        self.size = b.size
        self.gen = torch.Generator().manual_seed(0)

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.size, (n,), generator=self.gen)
        return tuple(f.index_select(0, idx) for f in self.fields)


class Td3Step:
    """One dense TD3 learning step in one of the variants; `step()` runs it, `phases()` times its parts."""

    def __init__(self, variant: str, rb: NumpyBuffer) -> None:
        torch.manual_seed(0)
        self.variant = variant
        self.torch_sample = variant in ("torch_sample", "all")
        self.twin = variant in ("twin_bmm", "all")
        self.lean = variant in ("lean", "all")
        self.frozen_q = variant == "frozen_q"
        self.rb = TorchBuffer(rb) if self.torch_sample else rb
        self.actor, self.target_actor = Actor(), Actor()
        self.target_actor.load_state_dict(self.actor.state_dict())
        q1, q2 = QNetwork(), QNetwork()
        if self.twin:
            self.q = TwinQ(q1, q2)
            self.q_target = TwinQ(q1, q2)
            critic_params = list(self.q.parameters())
            targets = list(self.q_target.parameters()) + list(self.target_actor.parameters())
            online = critic_params + list(self.actor.parameters())
        else:
            self.q1, self.q2, self.q1_t, self.q2_t = q1, q2, QNetwork(), QNetwork()
            self.q1_t.load_state_dict(q1.state_dict())
            self.q2_t.load_state_dict(q2.state_dict())
            critic_params = list(q1.parameters()) + list(q2.parameters())
            targets = [*self.q1_t.parameters(), *self.q2_t.parameters(), *self.target_actor.parameters()]
            online = critic_params + list(self.actor.parameters())
        self.q_opt = torch.optim.Adam(critic_params, lr=3e-4, fused=True)
        self.a_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4, fused=True)
        self.targets, self.online = targets, online
        self.grad_step = 0

    def step(self) -> None:
        self.grad_step += 1
        obs, actions, rewards, next_obs, terms = self.rb.sample(BATCH)
        with torch.no_grad():
            if self.lean:
                noise = torch.randn_like(actions).mul_(POLICY_NOISE).clamp_(-NOISE_CLIP, NOISE_CLIP)
                next_actions = self.target_actor(next_obs).add_(noise).clamp_(-1.0, 1.0)
            else:
                noise = (torch.randn_like(actions) * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP)
                next_actions = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            if self.twin:
                q_next = self.q_target(torch.cat([next_obs, next_actions], 1)).min(0).values
            elif self.lean:
                xa = torch.cat([next_obs, next_actions], 1)
                q_next = torch.min(mlp(self.q1_t, xa), mlp(self.q2_t, xa)).squeeze(1)
            else:
                q_next = torch.min(self.q1_t(next_obs, next_actions), self.q2_t(next_obs, next_actions)).view(-1)
            if self.lean:
                target = torch.addcmul(rewards, 1 - terms, q_next, value=GAMMA)
            else:
                target = rewards + (1 - terms) * GAMMA * q_next
        if self.twin:
            q = self.q(torch.cat([obs, actions], 1))
            loss = F.mse_loss(q, target.expand(2, -1), reduction="sum") / BATCH
        elif self.lean:
            xa = torch.cat([obs, actions], 1)
            loss = F.mse_loss(mlp(self.q1, xa).squeeze(1), target) + F.mse_loss(mlp(self.q2, xa).squeeze(1), target)
        else:
            q1, q2 = self.q1(obs, actions).view(-1), self.q2(obs, actions).view(-1)
            loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        if self.grad_step % POLICY_FREQUENCY == 0:
            if self.frozen_q:
                self.q1.requires_grad_(False)
            pi = self.actor(obs)
            if self.twin:
                actor_loss = -self.q.q1(torch.cat([obs, pi], 1)).mean()
            else:
                actor_loss = -self.q1(obs, pi).mean()
            self.a_opt.zero_grad()
            actor_loss.backward()
            if self.frozen_q:
                self.q1.requires_grad_(True)
            self.a_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(self.targets, self.online, TAU)

    def phases(self, steps: int) -> dict[str, float]:
        """The baseline step cut into phases, each timed alone (one thread: every op finishes before the next)."""
        t: dict[str, float] = {}

        def tick(name: str, since: float) -> float:
            now = time.perf_counter()
            t[name] = t.get(name, 0.0) + now - since
            return now

        for i in range(steps):
            s = time.perf_counter()
            obs, actions, rewards, next_obs, terms = self.rb.sample(BATCH)
            s = tick("replay sampling (numpy gather + torch copy)", s)
            with torch.no_grad():
                noise = (torch.randn_like(actions) * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP)
                next_actions = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
                q_next = torch.min(self.q1_t(next_obs, next_actions), self.q2_t(next_obs, next_actions)).view(-1)
                target = rewards + (1 - terms) * GAMMA * q_next
            s = tick("target: target actor + 2 target critics", s)
            q1, q2 = self.q1(obs, actions).view(-1), self.q2(obs, actions).view(-1)
            loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
            s = tick("critics forward + loss", s)
            self.q_opt.zero_grad()
            loss.backward()
            s = tick("critics backward", s)
            self.q_opt.step()
            s = tick("critics Adam (fused)", s)
            if (i + 1) % POLICY_FREQUENCY == 0:
                actor_loss = -self.q1(obs, self.actor(obs)).mean()
                self.a_opt.zero_grad()
                actor_loss.backward()
                s = tick("actor forward + backward (every 2nd step)", s)
                self.a_opt.step()
                s = tick("actor Adam (every 2nd step)", s)
                with torch.no_grad():
                    torch._foreach_lerp_(self.targets, self.online, TAU)
                s = tick("target lerp (every 2nd step)", s)
        return {k: v / steps for k, v in t.items()}


class CompiledStep(Td3Step):
    """frozen_q's step with the critics' and the actor's losses under torch.compile (inductor, CPU); the compile
    happens in the warm-up and is timed there. Its random noise comes from inductor's generator, not eager's."""

    def __init__(self, rb: NumpyBuffer) -> None:
        super().__init__("frozen_q", rb)
        self.variant = "compiled"

        def critic_loss(obs, actions, rewards, next_obs, terms):  # noqa: ANN001, ANN202
            with torch.no_grad():
                noise = (torch.randn_like(actions) * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP)
                next_actions = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
                q_next = torch.min(self.q1_t(next_obs, next_actions), self.q2_t(next_obs, next_actions)).view(-1)
                target = rewards + (1 - terms) * GAMMA * q_next
            q1, q2 = self.q1(obs, actions).view(-1), self.q2(obs, actions).view(-1)
            return F.mse_loss(q1, target) + F.mse_loss(q2, target)

        def actor_loss(obs):  # noqa: ANN001, ANN202
            return -self.q1(obs, self.actor(obs)).mean()

        self.critic_loss, self.actor_loss = torch.compile(critic_loss), torch.compile(actor_loss)

    def step(self) -> None:
        self.grad_step += 1
        obs, actions, rewards, next_obs, terms = self.rb.sample(BATCH)
        loss = self.critic_loss(obs, actions, rewards, next_obs, terms)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        if self.grad_step % POLICY_FREQUENCY == 0:
            self.q1.requires_grad_(False)
            actor_loss = self.actor_loss(obs)
            self.a_opt.zero_grad()
            actor_loss.backward()
            self.q1.requires_grad_(True)
            self.a_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(self.targets, self.online, TAU)


class ByHandStep(Td3Step):
    """frozen_q's step without autograd: every backward product written out, in place where it can be, into
    gradient tensors kept from step to step. The same matrix products as autograd's, and nothing else that eager
    PyTorch can drop: the lower bound of an op-by-op eager step (not a candidate for the scripts: it would replace
    nn.Linear and autograd with hand-written calculus)."""

    def __init__(self, rb: NumpyBuffer) -> None:
        super().__init__("frozen_q", rb)
        self.variant = "by_hand"
        for p in [*self.q_opt.param_groups[0]["params"], *self.a_opt.param_groups[0]["params"]]:
            p.grad = torch.zeros_like(p)

    @staticmethod
    def forward(layers: list[nn.Linear], x: torch.Tensor, tanh: bool = False) -> tuple[torch.Tensor, ...]:
        h1 = torch.addmm(layers[0].bias, x, layers[0].weight.t()).relu_()
        h2 = torch.addmm(layers[1].bias, h1, layers[1].weight.t()).relu_()
        y = torch.addmm(layers[2].bias, h2, layers[2].weight.t())
        return (y.tanh_() if tanh else y), h1, h2

    @staticmethod
    def backward(
        layers: list[nn.Linear],
        x: torch.Tensor,
        h1: torch.Tensor,
        h2: torch.Tensor,
        dy: torch.Tensor,
        weights: bool = True,
        inputs: bool = False,
    ) -> torch.Tensor | None:
        """Gradients of the three layers' weights and biases into .grad (if `weights`); returns d loss / d x."""
        if weights:
            torch.mm(dy.t(), h2, out=layers[2].weight.grad)
            torch.sum(dy, 0, out=layers[2].bias.grad)
        dh2 = torch.mm(dy, layers[2].weight).mul_(h2 > 0)
        if weights:
            torch.mm(dh2.t(), h1, out=layers[1].weight.grad)
            torch.sum(dh2, 0, out=layers[1].bias.grad)
        dh1 = torch.mm(dh2, layers[1].weight).mul_(h1 > 0)
        if weights:
            torch.mm(dh1.t(), x, out=layers[0].weight.grad)
            torch.sum(dh1, 0, out=layers[0].bias.grad)
        return torch.mm(dh1, layers[0].weight) if inputs else None

    @torch.no_grad()
    def step(self) -> None:
        self.grad_step += 1
        obs, actions, rewards, next_obs, terms = self.rb.sample(BATCH)
        q1 = [self.q1.fc1, self.q1.fc2, self.q1.fc3]
        ta = [self.target_actor.fc1, self.target_actor.fc2, self.target_actor.fc_mu]
        noise = (torch.randn_like(actions) * POLICY_NOISE).clamp_(-NOISE_CLIP, NOISE_CLIP)
        next_actions = self.forward(ta, next_obs, tanh=True)[0].add_(noise).clamp_(-1.0, 1.0)
        xn = torch.cat([next_obs, next_actions], 1)
        q_next = torch.min(*(self.forward([q.fc1, q.fc2, q.fc3], xn)[0] for q in (self.q1_t, self.q2_t)))
        target = rewards.unsqueeze(1) + (1 - terms.unsqueeze(1)) * GAMMA * q_next
        xa = torch.cat([obs, actions], 1)
        for layers in (q1, [self.q2.fc1, self.q2.fc2, self.q2.fc3]):
            q, h1, h2 = self.forward(layers, xa)
            self.backward(layers, xa, h1, h2, (q - target).mul_(2.0 / BATCH))  # d mse / d q
        self.q_opt.step()
        if self.grad_step % POLICY_FREQUENCY == 0:
            a_layers = [self.actor.fc1, self.actor.fc2, self.actor.fc_mu]
            pi, g1, g2 = self.forward(a_layers, obs, tanh=True)
            xpi = torch.cat([obs, pi], 1)
            q, h1, h2 = self.forward(q1, xpi)
            dx = self.backward(q1, xpi, h1, h2, torch.full_like(q, -1.0 / BATCH), weights=False, inputs=True)
            self.backward(a_layers, obs, g1, g2, dx[:, OBS:].mul_(1 - pi * pi))  # through tanh
            self.a_opt.step()
            torch._foreach_lerp_(self.targets, self.online, TAU)


class ProductsOnly:
    """Only the matrix products of by_hand's step (recorded from two steps of it, one with the actor's update: same
    shapes, same transposes), on fixed random operands: what the step would take if all else cost nothing."""

    def __init__(self, rb: NumpyBuffer) -> None:
        self.variant, self.grad_step = "products_only", 0
        self.calls: list[list[tuple]] = []

        class Record(torch.overrides.TorchFunctionMode):
            def __init__(self, calls: list) -> None:
                super().__init__()
                self.calls = calls

            def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
                if func in (torch.addmm, torch.mm):
                    self.calls.append((func, tuple(like(a) for a in args)))
                return func(*args, **(kwargs or {}))

        def like(t: torch.Tensor) -> torch.Tensor:
            """Random operand of t's shape and layout (a transposed view stays a transposed view)."""
            return torch.randn(t.shape) if t.is_contiguous() else torch.randn(t.shape[::-1]).t()

        by_hand = ByHandStep(rb)
        for _ in range(POLICY_FREQUENCY):  # the critic-only step(s) and the one with the actor's update
            self.calls.append([])
            with Record(self.calls[-1]):
                by_hand.step()

    def step(self) -> None:
        self.grad_step += 1
        for func, args in self.calls[(self.grad_step - 1) % POLICY_FREQUENCY]:
            func(*args)


def matmul_gflops() -> float:
    """One thread's rate on the step's typical product: [256, 256] @ [256, 256]."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    for _ in range(50):
        a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(200):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 200)
    return 2 * 256**3 / best / 1e9


STEP_FLOPS = 440e6  # issue 15's count for a dense TD3 step at batch 256 (forward, backward, target; actor every 2nd)


def phases(opts: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    step = Td3Step("baseline", NumpyBuffer(100_000, np.random.default_rng(0)))
    step.phases(50)  # warm-up
    best: dict[str, float] = {}
    for _ in range(opts.rounds):
        for k, v in step.phases(opts.steps).items():
            best[k] = min(best.get(k, float("inf")), v)
    total = sum(best.values())
    gflops = matmul_gflops()
    print(f"replica of the dense TD3 step, batch {BATCH}, one thread; best of {opts.rounds} x {opts.steps} steps")
    print("| phase | ms/step | % |\n|---|---|---|")
    for k, v in best.items():
        print(f"| {k} | {1e3 * v:.3f} | {100 * v / total:.0f} |")
    print(f"| total | {1e3 * total:.3f} | 100 |")
    floor_ms = 1e3 * STEP_FLOPS / gflops / 1e9
    print(f"matmul 256^3 on this thread: {gflops:.0f} GFLOP/s -> FLOP floor {floor_ms:.2f} ms/step")


VARIANTS = ("baseline", "torch_sample", "twin_bmm", "lean", "all", "frozen_q", "compiled", "by_hand", "products_only")
SPECIAL = {"compiled": CompiledStep, "by_hand": ByHandStep, "products_only": ProductsOnly}


def candidates(opts: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    rb = NumpyBuffer(100_000, np.random.default_rng(0))
    variants = list(opts.variants or VARIANTS)
    variants = variants if opts.reference in variants else [opts.reference, *variants]
    steps = {v: SPECIAL[v](rb) if v in SPECIAL else Td3Step(v, rb) for v in variants}
    for v, s in steps.items():
        t0 = time.perf_counter()
        for _ in range(50):
            s.step()
        if v == "compiled":
            print(f"compiled: warm-up (torch.compile of both losses) {time.perf_counter() - t0:.1f} s")
    ms: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(opts.rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            t0 = time.perf_counter()
            for _ in range(opts.steps):
                steps[v].step()
            ms[v].append(1e3 * (time.perf_counter() - t0) / opts.steps)
    print(f"TD3 step candidates, batch {BATCH}, one thread, {opts.rounds} rounds x {opts.steps} steps, rotated order")
    print(f"| variant | ms/step median | best | time vs {opts.reference} per round: median | range |")
    print("|---|---|---|---|---|")
    for v in variants:
        ratios = [a / b for a, b in zip(ms[v], ms[opts.reference])]
        print(
            f"| {v} | {statistics.median(ms[v]):.2f} | {min(ms[v]):.2f} | {statistics.median(ratios):.3f} "
            f"| {min(ratios):.3f}-{max(ratios):.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["profile", "phases", "candidates"])
    parser.add_argument("--script", choices=["td3", "sac"], default="td3")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, help="candidates: these only (default: all)")
    parser.add_argument("--reference", choices=VARIANTS, default="baseline", help="candidates: ratios against it")
    opts = parser.parse_args()
    {"profile": profile, "phases": phases, "candidates": candidates}[opts.mode](opts)


if __name__ == "__main__":
    main()
