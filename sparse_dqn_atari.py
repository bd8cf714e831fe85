"""Sparse DQN, in one file.

DQN (Mnih et al., Nature 2015) with a sparse Q-network trained from scratch, as in [G]: a Nature CNN on Atari under
Dopamine's protocol (the default: Pong), or a 2x512 MLP on classic control. RigL at 90% sparsity (ERK) by default;
static masks, SET and gradual magnitude pruning through --sparse-method.

[G] Graesser, Evci, Elsen, Castro, "The State of Sparse Training in Deep Reinforcement Learning", ICML 2022
    (code: google-research/rigl, rigl/rl);
[S] Sokar, Mocanu, Mocanu, Pechenizkiy, Stone, "Dynamic Sparse Training for Deep Reinforcement Learning",
    IJCAI 2022 (DS-TD3; code: GhadaSokar/Dynamic-Sparse-Training-for-Deep-Reinforcement-Learning).

Map of the file, in learning order: `Args`; the sparse-training section (masks, per-layer sparsities, init, SET / RigL /
gradual pruning, schedules, FLOP counts); DQN's Q-networks (Dopamine's 'SAME' padding), epsilon schedule and replay
buffer (frame stacks and episode ends: `record_step`); `train()`, its setup and loop; what train() calls around it
(environments and Atari preprocessing, evaluation, resumed-buffer refill, checks, tuned settings: `resolve_args`); the
optional sparse-kernels section; the run infrastructure (`Run`: logs, summaries, checkpoints, resume; skip it on a
first read). The three sections are the same text in every script. Results and deviations from the papers: docs/dqn.md.
"""

import collections
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter

gym.register_envs(ale_py)
# ALE prints its banner on stderr for every emulator made (training and evaluation envs); its warnings still show.
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be enabled when available"""
    torch_threads: int = 1
    """torch's CPU threads; a seed repeats a run exactly only at the same count (docs/ used 1: see start_run)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "sparse-rl"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the agent (first training env; needs `pip install moviepy`)"""
    save_model: bool = False
    """whether to save weights, masks and args to `runs/{run_name}/{exp_name}.pt`"""
    checkpoint_frequency: int = 0
    """environment steps between checkpoints (`runs/{run_name}/checkpoint.pt`, the one before kept); 0: none"""
    checkpoint_buffer: bool = False
    """store the replay buffer in checkpoints (~7 GB for 1M Atari frames); else a resumed run refills it first"""
    resume: str | None = None
    """continue the run of this checkpoint file or run folder, with the checkpoint's settings"""

    # Algorithm specific arguments. None: the protocol's value, Atari (Dopamine, [G]) or classic control ([G]'s
    # TF-Agents setup), chosen from --env-id; see docs/dqn.md.
    env_id: str = "ALE/Pong-v5"
    """an Atari id (ALE/<Game>-v5 with sticky actions, or <Game>NoFrameskip-v4) or a classic-control id (CartPole-v1)"""
    total_timesteps: int | None = None
    """agent steps (Atari: 4 frames each); None: Atari 10M (40M frames), classic 100k"""
    learning_rate: float | None = None
    """Adam learning rate; None: Atari 2.5e-4, classic 1e-3"""
    num_envs: int = 1
    """the number of parallel environments"""
    buffer_size: int | None = None
    """replay capacity in transitions; None: Atari 1M, classic 100k"""
    gamma: float = 0.99
    """the discount factor gamma"""
    target_network_frequency: int | None = None
    """agent steps between copies of the Q-network into the target network; None: Atari 8000, classic 100"""
    batch_size: int | None = None
    """the batch size of sample from the replay memory; None: Atari 32, classic 128"""
    start_e: float = 1.0
    """the starting epsilon for exploration"""
    end_e: float = 0.01
    """the final epsilon for exploration"""
    exploration_steps: int | None = None
    """agent steps, after learning starts, over which epsilon decays linearly; None: Atari 250k, classic 0"""
    learning_starts: int | None = None
    """agent steps of uniformly random actions before learning; None: Atari 20k, classic 1000"""
    train_frequency: int | None = None
    """agent steps per gradient step; None: Atari 4, classic 1"""
    loss: Literal["huber", "mse"] | None = None
    """TD loss; None: Atari huber (Dopamine), classic mse (TF-Agents)"""
    eval_epsilon: float | None = None
    """epsilon of evaluation episodes; None: Atari 0.001 (Dopamine), classic 0 (greedy)"""
    eval_frequency: int | None = None
    """agent steps between evaluations; None: Atari 250k, classic 2000"""
    eval_episodes: int | None = None
    """episodes per evaluation; None: Atari 10, classic 20"""
    hidden_width: int | None = None
    """units of the MLP's hidden layers, or of the CNN's fully connected layer; None: 512"""
    cnn_padding: Literal["same", "valid"] = "same"
    """padding of the Atari CNN's conv layers: same (TF's 'SAME': Dopamine's network, which [G] trained; fc1 7744x512,
    4.05M weights on Pong) or valid (CleanRL's: fc1 3136x512, 1.69M weights on Pong); see docs/dqn.md"""
    max_episode_steps: int | None = None
    """agent steps after which an episode is truncated; None: Atari 27000 (108k frames, as Dopamine), classic: env's"""

    # Sparse training (the same names in every script). None: [G]'s tuned value for the protocol and method.
    sparse_method: Literal["dense", "static", "set", "rigl", "prune"] = "rigl"
    """dense, static (fixed random mask), set (magnitude drop, random grow), rigl (gradient grow), prune"""
    sparsity: float = 0.9
    """overall sparsity of the Q-network, in [0, 1)"""
    sparsity_distribution: Literal["uniform", "er", "erk"] = "erk"
    """how the network's sparsity is spread over its layers (conv layers: ERK uses the kernel shape)"""
    dense_first_layer: bool = False
    """keep the first layer dense (it still counts against the sparsity budget)"""
    dense_output_layer: bool = False
    """keep the output layer dense ([G] masks every layer)"""
    sparsity_aware_init: bool | None = None
    """re-initialize active weights with [G]'s sparsity-aware init; None: yes (Atari prune: no)"""
    weight_decay: float | None = None
    """L2 weight decay on weight matrices (not biases); None: Atari 0, classic 1e-6"""
    update_interval: int | None = None
    """Delta T: gradient steps between topology updates or pruning steps; None: Atari 5000, classic 1000"""
    drop_fraction: float | None = None
    """initial fraction of each layer's active weights replaced per update; None: Atari 0.3, classic 0.5"""
    drop_schedule: Literal["cosine", "constant"] = "cosine"
    """drop-fraction schedule over the topology-update window"""
    update_start: int = 0
    """gradient step at which topology updates start"""
    update_end: int | None = None
    """gradient step after which topology updates stop; None: Atari 80%, classic 75% of the gradient steps"""
    prune_start: int | None = None
    """gradient step at which gradual pruning starts; None: 20% of the gradient steps"""
    prune_end: int | None = None
    """gradient step at which gradual pruning reaches its target; None: Atari 80%, classic 75% of gradient steps"""
    sparse_kernels: str = "off"
    """off; auto (masked Linear layers on sparse CSR kernels where timed faster); or a sparsity: those that sparse"""


# The two protocols of [G] (its appendix), as (Atari, classic) pairs. Atari: Dopamine's DQN with Adam; classic
# control: TF-Agents' DQN as in rigl/rl/tfagents/configs/dqn_gym_*.gin. Step counts are agent steps; *_frac are
# fractions of the gradient steps.
SETTINGS_BY_PROTOCOL = dict(
    total_timesteps=(10_000_000, 100_000),
    learning_rate=(2.5e-4, 1e-3),
    buffer_size=(1_000_000, 100_000),
    target_network_frequency=(8000, 100),
    batch_size=(32, 128),
    exploration_steps=(250_000, 0),
    learning_starts=(20_000, 1000),
    train_frequency=(4, 1),
    loss=("huber", "mse"),
    eval_epsilon=(0.001, 0.0),
    eval_frequency=(250_000, 2000),
    eval_episodes=(10, 20),
    hidden_width=(512, 512),
    max_episode_steps=(27_000, None),
    sparsity_aware_init=(True, True),
    weight_decay=(0.0, 1e-6),
    update_interval=(5000, 1000),
    drop_fraction=(0.3, 0.5),
    update_end_frac=(0.8, 0.75),
    prune_start_frac=(0.2, 0.2),
    prune_end_frac=(0.8, 0.75),
)
PROTOCOLS = {kind: {k: v[i] for k, v in SETTINGS_BY_PROTOCOL.items()} for i, kind in enumerate(("atari", "classic"))}


# --- sparse training (identical in every script) ---
# Masks, topology updates, pruning and cost accounting for the Linear and Conv2d weights of any torch module.
# The recipe: a network keeps dense weight tensors plus one float 0/1 mask per sparse layer. Inactive weights are
# exactly zero and stay zero because their gradients are zeroed before every optimizer step (one elementwise op per
# layer) and their optimizer moments are zero, so neither Adam nor L2 weight decay can move them. Biases are never
# masked. The formulas below are written out in the docstrings; they follow RigL's code (Evci et al., ICML 2020) and
# the sparse-RL code of [G] (google-research/rigl, rigl/rl), against which they are tested.


def maskable_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The Linear and Conv2d layers of `net` in registration order; the first and last are its input and output."""
    return {name: m for name, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def active_count(numel: int, sparsity: float) -> int:
    """Active weights of a layer at `sparsity`; as RigL, the number of zeros is floor(sparsity * numel)."""
    return numel - math.floor(sparsity * numel)


def layer_sparsities(
    shapes: dict[str, tuple[int, ...]], sparsity: float, distribution: str, dense_layers: set[str] = frozenset()
) -> dict[str, float]:
    """Per-layer sparsities giving one network the overall `sparsity`.

    The budget is the same for every distribution: the network has sum_l floor(sparsity * n_l) zeros (n_l: weights
    of layer l), and layers in `dense_layers` are dense and spend part of it, so the other layers make up their zeros.
    uniform: every sparse layer gets the same sparsity (with dense layers, the zeros they keep are shared by the
    sparse layers in proportion to their size, a leftover zero each to the largest). er / erk: density = eps * p_l with
    p_l = sum(shape) / prod(shape) (erk: every dimension of a conv kernel; er: only its two channel dimensions), eps
    solved so the network keeps its budget. When eps * p_l would exceed 1, the layers with the largest p_l become dense
    and eps is solved again (ERK, Evci et al. 2020, as in [G]). Raise BadInput when the budget cannot be met.
    """
    if distribution == "uniform":
        return _uniform_sparsities(shapes, sparsity, set(dense_layers))
    dense = set(dense_layers)
    eps, raw = 0.0, {}
    while True:
        budget, divisor, raw = 0.0, 0.0, {}
        for name, shape in shapes.items():
            numel = math.prod(shape)
            zeros = math.floor(sparsity * numel)
            if name in dense:
                budget -= zeros  # a dense layer keeps the zeros the other layers now have to make up for
            else:
                budget += numel - zeros
                dims = shape if distribution == "erk" else shape[:2]
                raw[name] = sum(dims) / math.prod(dims)
                divisor += raw[name] * numel
        if not raw:
            break
        eps = budget / divisor
        if eps <= 0:
            raise BadInput(f"sparsity {sparsity} cannot be reached with layers {sorted(dense)} kept dense")
        p_max = max(raw.values())
        if eps * p_max <= 1.0:
            break
        dense |= {name for name, p in raw.items() if p == p_max}
    return {name: 0.0 if name in dense else 1.0 - eps * raw[name] for name in shapes}


def _uniform_sparsities(shapes: dict[str, tuple[int, ...]], sparsity: float, dense: set[str]) -> dict[str, float]:
    """uniform: `sparsity` in every layer; with dense layers, the same total number of zeros as without them."""
    if not dense:
        return dict.fromkeys(shapes, sparsity)
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    budget = sum(math.floor(sparsity * n) for n in numel.values())
    sparse = sorted((name for name in shapes if name not in dense), key=lambda name: -numel[name])
    room = sum(numel[name] for name in sparse)
    if budget >= room:  # a layer left with no weight at all is not a sparse layer
        raise BadInput(f"sparsity {sparsity} cannot be reached with layers {sorted(dense)} kept dense")
    zeros = {name: budget * numel[name] // room for name in sparse}
    for name in sparse[: budget - sum(zeros.values())]:  # fewer leftover zeros than sparse layers
        zeros[name] += 1
    if any(zeros[name] >= numel[name] for name in sparse):
        raise BadInput(f"sparsity {sparsity} cannot be reached with layers {sorted(dense)} kept dense")
    out = dict.fromkeys(shapes, 0.0)
    for name in sparse:
        s = zeros[name] / numel[name]
        if math.floor(s * numel[name]) < zeros[name]:  # the float fell just below: step up to the next float
            s = math.nextafter(s, 1.0)
        out[name] = s
    return out


def random_mask(shape: tuple[int, ...], sparsity: float) -> torch.Tensor:
    """A float 0/1 mask with exactly active_count(numel, sparsity) ones at uniformly random positions."""
    numel = math.prod(shape)
    mask = torch.zeros(numel)
    mask[torch.randperm(numel)[: active_count(numel, sparsity)]] = 1.0
    return mask.view(shape)


@torch.no_grad()
def sparse_init_(weight: torch.Tensor, mask: torch.Tensor) -> None:
    """[G]'s sparsity-aware init: active w ~ U(-L, L), L = sqrt(3 / max(1, (fan_in + fan_out) / 2)), where fan_in
    counts the active inputs of the weight's output unit and fan_out the active outputs of its input unit."""
    m = mask.reshape(mask.shape[0], mask.shape[1], -1)  # (out, in, kernel positions); a Linear has one position
    fan_in = m.sum(dim=(1, 2), keepdim=True)
    fan_out = m.sum(dim=(0, 2), keepdim=True)
    limit = torch.sqrt(3.0 / torch.clamp((fan_in + fan_out) / 2, min=1.0)).expand_as(m).reshape(weight.shape)
    weight.copy_((torch.rand_like(weight) * 2 - 1) * limit * mask)


def drop_fraction_at(step: int, initial: float, end: int, schedule: str) -> float:
    """Drop fraction f(t): constant, or RigL's cosine decay f0 / 2 * (1 + cos(pi * min(t, end) / end))."""
    if schedule == "constant" or end <= 0:
        return initial
    return initial * 0.5 * (1 + math.cos(math.pi * min(step, end) / end))


def pruning_sparsity_at(step: int, final: float, start: int, end: int) -> float:
    """Zhu & Gupta's cubic schedule from 0 at `start` to `final` at `end`: s_t = s_f * (1 - (1 - progress)^3)."""
    if step < start:
        return 0.0
    if step >= end:
        return final
    return final * (1.0 - (1.0 - (step - start) / (end - start)) ** 3)


def weight_decay_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """Optimizer parameter groups with L2 weight decay on weight tensors only ([G]: weights, not biases)."""
    params = [p for m in modules for p in m.parameters()]
    return [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]


class SparseNetwork:
    """The masks, sparse-training schedule and cost counters of one network (an actor, one critic, a Q-network).

    Use: build it right after the network (it draws the masks and zeroes the inactive weights), then on every gradient
    step of that network call `update_topology_if_due(optimizer)` and then `mask_gradients()`, in that order, between
    `loss.backward()` and `optimizer.step()`. Steps count this network's own gradient updates. A target copy stays as
    sparse as the online network with `apply_masks_(self.weights_of(target))` after each soft update.
    """

    def __init__(
        self,
        net: nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        batch_size: int,
        method: str = "dense",
        sparsity: float = 0.0,
        distribution: str = "erk",
        dense_first_layer: bool = False,
        dense_output_layer: bool = False,
        sparsity_aware_init: bool = False,
        update_interval: int = 1000,
        drop_fraction: float = 0.3,
        drop_schedule: str = "cosine",
        update_start: int = 0,
        update_end: int = 0,
        prune_start: int = 0,
        prune_end: int = 0,
        sparse_kernels: str = "off",
    ) -> None:
        self.method, self.batch_size, self.update_start, self.update_end = method, batch_size, update_start, update_end
        self.update_interval, self.drop_fraction, self.drop_schedule = update_interval, drop_fraction, drop_schedule
        self.prune_start, self.prune_end = prune_start, prune_end
        self.layers = maskable_layers(net)
        names = list(self.layers)
        dense = {names[0]} if dense_first_layer else set()
        dense |= {names[-1]} if dense_output_layer else set()
        shapes = {name: tuple(layer.weight.shape) for name, layer in self.layers.items()}
        self.target_sparsity = (
            dict.fromkeys(names, 0.0) if method == "dense" else layer_sparsities(shapes, sparsity, distribution, dense)
        )
        self.masks: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, layer in self.layers.items():
                if self.target_sparsity[name] == 0.0:
                    # dense layer: no mask, no extra work. [G] re-initializes every layer it wraps, so with
                    # sparsity-aware init a dense layer gets plain Glorot uniform (an all-ones mask); otherwise a
                    # network's init would depend on which layers the distribution happened to leave dense.
                    if sparsity_aware_init:
                        sparse_init_(layer.weight, torch.ones_like(layer.weight))
                    continue
                w = layer.weight
                # prune starts dense and removes weights; the other methods start at their final sparsity
                mask = torch.ones_like(w) if method == "prune" else random_mask(w.shape, self.target_sparsity[name])
                mask = mask.to(w)
                if sparsity_aware_init:
                    sparse_init_(w, mask)
                else:
                    w.mul_(mask)
                self.masks[name] = mask
        self.ever_active = {name: mask.bool() for name, mask in self.masks.items()}
        self._weights = [self.layers[name].weight for name in self.masks]
        self._mask_list = list(self.masks.values())
        self.step, self.updates, self.last_mask_change = 0, 0, 0.0  # gradient steps, mask updates, last change
        self.train_flops = self.dense_train_flops = 0.0  # cumulative training FLOPs, and a dense network's
        # Output positions per sample of each layer (1 for Linear, H*W for Conv2d), read off one forward pass.
        self._positions: dict[str, int] = {}
        name_of = {id(layer): name for name, layer in self.layers.items()}

        def record(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            self._positions[name_of[id(module)]] = out[0, 0].numel() if out.dim() > 2 else 1

        hooks = [layer.register_forward_hook(record) for layer in self.layers.values()]
        with torch.no_grad():
            net(*[x[:1] for x in example_inputs])
        for hook in hooks:
            hook.remove()
        self.dense_flops = self.forward_flops(dense=True)
        # Off by default; the optional sparse-kernels section near the end of the file runs sparse layers faster.
        self.kernels = SparseKernels(self, sparse_kernels)
        self.refresh_counts()

    def weights_of(self, other: nn.Module) -> list[torch.Tensor]:
        """The weights of the layers of `other` (a copy of this network) that this network masks, in mask order."""
        layers = maskable_layers(other)
        self.kernels.attach(layers)  # with --sparse-kernels, the copy (a target) computes on them too
        return [layers[name].weight for name in self.masks]

    @torch.no_grad()
    def apply_masks_(self, weights: list[torch.Tensor] | None = None) -> None:
        """Zero the inactive positions of `weights` (default: this network's own): one op for all layers."""
        if self._mask_list:
            torch._foreach_mul_(self._weights if weights is None else weights, self._mask_list)

    def forward_flops(self, dense: bool = False) -> float:
        """Inference FLOPs per sample, counted as [G] does (MicroNet's rules): per output position, nnz(W) multiplies,
        nnz(W) - n_out adds, n_out bias adds and n_out activation FLOPs (no activation counted after the last layer).
        A training step costs 3x the forward FLOPs (forward, gradient of the input, gradient of the weights)."""
        total = 0.0
        last = list(self.layers)[-1]
        for name, layer in self.layers.items():
            w = layer.weight
            nnz = w.numel() if dense or name not in self.masks else self.nnz[name]
            n_out = w.shape[0]
            flops = 2 * nnz - n_out + (n_out if layer.bias is not None else 0) + (n_out if name != last else 0)
            total += flops * self._positions[name]
        return total

    def refresh_counts(self) -> None:
        """Recount the active weights and FLOPs after the masks changed."""
        self.nnz = {name: int(mask.sum().item()) for name, mask in self.masks.items()}  # active weights per mask
        self.flops = self.forward_flops()
        self.kernels.refresh()

    def _due(self, start: int, end: int, ahead: int = 0) -> bool:
        step = self.step + ahead  # ahead=1: will the next update_topology_if_due() call be due
        return start <= step <= end and (step - start) % self.update_interval == 0

    @torch.no_grad()
    def update_topology_if_due(self, optimizer: torch.optim.Optimizer) -> bool:
        """Count one gradient step of this network; if its schedule says so, change the topology (SET / RigL
        drop-and-grow, or a gradual-pruning step); then add the step's training FLOPs under the topology now in force.
        Call after loss.backward() (RigL grows by the dense gradient, so before mask_gradients()) and before
        optimizer.step(). Returns True on a mask update."""
        self.step += 1
        updated = False
        if self.method in ("set", "rigl") and self.masks and self._due(self.update_start, self.update_end):
            updated = self._drop_and_grow(optimizer)
        elif (
            self.method == "prune"
            and self.masks
            and (self._due(self.prune_start, self.prune_end) or self.step == self.prune_end)
        ):
            updated = self._prune(optimizer)
        if self.method == "rigl" and self.step <= self.update_end:
            # RigL also needs the dense gradient on its update steps: one in Delta T + 1 steps costs
            # 2 * sparse + dense forward FLOPs instead of 3 * sparse (RigL's and [G]'s accounting)
            dt = self.update_interval
            step_flops = (3 * self.flops * dt + 2 * self.flops + self.dense_flops) / (dt + 1)
        else:
            step_flops = 3 * self.flops
        self.train_flops += step_flops * self.batch_size
        self.dense_train_flops += 3 * self.dense_flops * self.batch_size
        return updated

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of inactive weights, so that optimizer.step() leaves them at zero: one op for all
        layers. Call after update_topology_if_due() (the masks of this step) and before optimizer.step()."""
        if self._mask_list:
            torch._foreach_mul_([w.grad for w in self._weights], self._mask_list)

    def _drop_and_grow(self, optimizer: torch.optim.Optimizer) -> bool:
        """SET / RigL: per layer drop the k smallest-|w| active weights and grow k inactive ones, k = f(t) * nnz.
        Growth is random (set) or by the largest |dense gradient| of the current minibatch (rigl)."""
        fraction = drop_fraction_at(self.step, self.drop_fraction, self.update_end, self.drop_schedule)
        if all(math.floor(fraction * self.nnz[name]) == 0 for name in self.masks):
            return False  # nothing to drop (the cosine schedule ends at 0): not an update, as in RigL's code
        new_masks = {}
        for name, mask in self.masks.items():
            w = self.layers[name].weight
            k = math.floor(fraction * self.nnz[name])
            active = mask.bool().flatten()
            if k == 0:
                new_masks[name] = active.view_as(w)
                continue
            drop_score = torch.where(active, w.abs().flatten(), torch.inf)
            kept = active.clone()
            kept[torch.topk(drop_score, k, largest=False).indices] = False
            if self.method == "rigl":
                if w.grad is None:
                    raise RuntimeError("rigl needs the dense gradient: update the topology after loss.backward()")
                grow_score = w.grad.abs().flatten().clone()
            else:
                grow_score = torch.rand(w.numel(), device=w.device)
            # Only positions not kept are candidates: a just-dropped position may come back (and keeps its value).
            grow_score.masked_fill_(kept, -torch.inf)
            kept[torch.topk(grow_score, k).indices] = True
            new_masks[name] = kept.view_as(w)
        self._set_masks(new_masks, optimizer)
        return True

    def _prune(self, optimizer: torch.optim.Optimizer) -> bool:
        """Gradual magnitude pruning: each layer keeps its top-|w| weights for its scheduled sparsity. A step that
        would remove nothing (the schedule is 0 at prune_start) is not an update."""
        scheduled = {
            name: pruning_sparsity_at(self.step, self.target_sparsity[name], self.prune_start, self.prune_end)
            for name in self.masks
        }
        if all(active_count(m.numel(), scheduled[name]) == self.nnz[name] for name, m in self.masks.items()):
            return False
        new_masks = {}
        for name, mask in self.masks.items():
            w = self.layers[name].weight
            s = scheduled[name]
            score = torch.where(mask.bool(), w.abs(), -1.0).flatten()  # pruned weights never come back
            keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
            keep[torch.topk(score, active_count(w.numel(), s)).indices] = True
            new_masks[name] = keep.view_as(w)
        self._set_masks(new_masks, optimizer)
        return True

    def _set_masks(self, new_masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Install new boolean masks: dropped and newly grown weights restart at 0 with zeroed optimizer state."""
        removed, before = 0, 0
        for name, new in new_masks.items():
            old = self.masks[name].bool()
            w = self.layers[name].weight
            flipped = old ^ new
            w.masked_fill_(flipped, 0.0)
            for value in optimizer.state.get(w, {}).values():
                if torch.is_tensor(value) and value.shape == w.shape:  # Adam's m and v (and any other moments)
                    value.masked_fill_(flipped, 0.0)
            removed += int((old & ~new).sum().item())
            before += self.nnz[name]
            self.masks[name].copy_(new)  # in place: the cached mask list stays valid
            self.ever_active[name] |= new
        self.last_mask_change = removed / max(before, 1)
        self.updates += 1
        self.refresh_counts()

    def active_weights(self) -> int:
        return sum(self.nnz.get(name, layer.weight.numel()) for name, layer in self.layers.items())

    def total_weights(self) -> int:
        return sum(layer.weight.numel() for layer in self.layers.values())


# --- end sparse training ---

SCRIPT = "sparse_dqn_atari"  # checkpoints name the script that wrote them


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's 'SAME' padding of one spatial dimension: (before, after) zeros so the output has ceil(size / stride)
    positions. TF puts the odd pixel of an odd total after (bottom/right), which torch's symmetric padding cannot."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class PaddedConv2d(nn.Conv2d):
    """A Conv2d that zero-pads its input by (left, right, top, bottom) first. A subclass rather than a ZeroPad2d
    module before the conv, so the layers keep the names and indices (network.0, network.2, ...) of the unpadded
    network: logs and masks of the two paddings line up."""

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class QNetwork(nn.Module):
    """Nature CNN on stacks of 4 84x84 frames (Atari) or a 2-hidden-layer MLP on a flat observation.

    The CNN is Dopamine's (conv 8x8/4 -> 32, 4x4/2 -> 64, 3x3/1 -> 64, then `width` units) with `padding` "same":
    TF's 'SAME' padding, so 84x84 inputs give 21x21, 11x11 and 11x11 feature maps and fc1 is 7744 x 512, the
    network [G] trained. "valid" is CleanRL's and the Nature paper's: 20x20, 9x9, 7x7 and fc1 3136 x 512."""

    def __init__(
        self, obs_shape: tuple[int, ...], n_actions: int, width: int, atari: bool, padding: str = "same"
    ) -> None:
        super().__init__()
        self.atari = atari
        if atari:
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
            layers: list[nn.Module] = []
            channels, height, width_px = obs_shape
            for out_channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
                if padding == "same":
                    top, bottom = same_padding(height, kernel, stride)
                    left, right = same_padding(width_px, kernel, stride)
                    conv = PaddedConv2d(channels, out_channels, kernel, stride=stride, pad=(left, right, top, bottom))
                    height, width_px = math.ceil(height / stride), math.ceil(width_px / stride)
                else:
                    conv = nn.Conv2d(channels, out_channels, kernel, stride=stride)
                    height, width_px = (height - kernel) // stride + 1, (width_px - kernel) // stride + 1
                layers += [conv, nn.ReLU()]
                channels = out_channels
            self.network = nn.Sequential(
                *layers,
                nn.Flatten(),
                nn.Linear(channels * height * width_px, width),
                nn.ReLU(),
                nn.Linear(width, n_actions),
            )
        else:
            self.network = nn.Sequential(
                nn.Linear(int(np.prod(obs_shape)), width),
                nn.ReLU(),
                nn.Linear(width, width),
                nn.ReLU(),
                nn.Linear(width, n_actions),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0 if self.atari else x.flatten(1))


def linear_schedule(start_e: float, end_e: float, duration: int, t: int) -> float:
    if duration <= 0:
        return end_e
    return max(end_e, start_e + (end_e - start_e) * t / duration)


class ReplayBuffer:
    """Replay that stores every observation once. Row t holds, for each env, the observation seen at vector step t,
    the action taken from it, the reward and `terminated` of that step, and whether the observation starts an
    episode; the next observation is row t + 1. A state is the last `stack` observations of one env, zero-padded
    before the episode's first one (as the agent sees them when acting). Rows whose step only reset an env
    (gymnasium 1.x autoreset) hold the episode's true final observation and are never sampled as transitions."""

    def __init__(
        self, size: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, stack: int, seed: int
    ) -> None:
        self.rows = max(size // num_envs, stack + 2)
        self.num_envs, self.stack = num_envs, stack
        # np.zeros maps pages lazily: a 1M Atari buffer takes memory as it fills, so a run starts at once
        self.obs = np.zeros((self.rows, num_envs, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.rows, num_envs), dtype=np.int64)
        self.rewards = np.zeros((self.rows, num_envs), dtype=np.float32)
        self.terminations = np.zeros((self.rows, num_envs), dtype=np.bool_)
        self.first = np.zeros((self.rows, num_envs), dtype=np.bool_)
        self.valid = np.zeros((self.rows, num_envs), dtype=np.bool_)
        self.pos, self.full = 0, False
        self.rng = np.random.default_rng(seed)

    def add(
        self,
        obs: np.ndarray,
        first: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """One vector step: newest observations (one frame each), whether they start episodes, and what followed."""
        t = self.pos
        self.obs[t], self.first[t], self.actions[t] = obs, first, actions
        self.rewards[t], self.terminations[t], self.valid[t] = rewards, terminations, valid
        self.pos = (self.pos + 1) % self.rows
        self.full = self.full or self.pos == 0

    def states(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """Stacked states ending at `rows` for `envs`: frames t - stack + 1 .. t, zeros before an episode start."""
        offsets = np.arange(-self.stack + 1, 1)
        idx = (rows[:, None] + offsets) % self.rows  # (batch, stack)
        frames = self.obs[idx, envs[:, None]]  # (batch, stack, *obs_shape)
        # frame k is padding if an episode starts at a later frame k' <= last: look at starts in frames k+1 .. last
        starts = self.first[idx, envs[:, None]]
        later_start = np.flip(np.cumsum(np.flip(starts[:, 1:], 1), 1), 1) > 0
        pad = np.concatenate([later_start, np.zeros((len(rows), 1), dtype=bool)], 1)
        frames[pad] = 0
        return frames if self.stack > 1 else frames[:, 0]

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        # Candidate rows: written, with their next row written (not the newest) and their stack not reaching past
        # the oldest row; then keep the rows that are real transitions.
        n = self.rows if self.full else self.pos
        rows, envs = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        while len(rows) < batch_size:
            r = self.rng.integers(0, n - 1 - (self.stack - 1 if self.full else 0), size=2 * batch_size)
            r = (r + (self.pos + self.stack - 1 if self.full else 0)) % self.rows
            e = self.rng.integers(0, self.num_envs, size=2 * batch_size)
            keep = self.valid[r, e]
            rows, envs = np.concatenate([rows, r[keep]]), np.concatenate([envs, e[keep]])
        rows, envs = rows[:batch_size], envs[:batch_size]
        obs, next_obs = self.states(rows, envs), self.states((rows + 1) % self.rows, envs)
        terminations = self.terminations[rows, envs].astype(np.float32)
        data = obs, self.actions[rows, envs], self.rewards[rows, envs], next_obs, terminations
        return tuple(torch.as_tensor(a, device=device) for a in data)


def record_step(
    rb: ReplayBuffer,
    state: np.ndarray,
    first: np.ndarray,
    autoreset: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_obs: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store the vector step just taken and advance the agent's stacked states.

    `state` holds each env's last observations (zeros before its episode's first one), `first` whether the newest
    one starts an episode, `autoreset` whether the step just taken only reset the env (gymnasium 1.x resets on the
    step after an episode ends). That step's row keeps the episode's final observation but is not a transition.
    Returns the new (state, first, autoreset)."""
    rb.add(state[:, -1], first, actions, rewards, terminations, ~autoreset)
    first = autoreset  # the observation a reset step returns starts an episode
    autoreset = np.logical_or(terminations, truncations)
    state = np.roll(state, -1, axis=1)
    state[first] = 0
    state[:, -1] = next_obs
    return state, first, autoreset


def train(args: Args, given: set[str] | None = None) -> dict:
    """Train DQN with the chosen sparse method; returns the end-of-run summary (also written to summary.json).
    `given`: the flags named on the command line, for the note on flags a resumed run ignores (resume_args)."""
    flags, checkpoint = load_run(args, SCRIPT, given)
    atari = check_env(flags.env_id)
    settings = resolve_args(flags, atari)
    args = resolved(flags, settings)  # the protocol's settings in place of the flags left at None
    # Gradient steps: one every train_frequency vector steps once learning has started.
    iterations = args.total_timesteps // args.num_envs
    grad_steps = max(0, iterations - math.ceil(args.learning_starts / args.num_envs)) // args.train_frequency
    window = (int(args.update_end_frac * grad_steps), int(args.prune_start_frac * grad_steps))
    default_end = f"{args.update_end_frac:.0%} of the gradient steps"
    schedule = topology_schedule(args, grad_steps, *window, int(args.prune_end_frac * grad_steps), default_end)
    run = Run(SCRIPT, flags, checkpoint, {"settings": settings})
    device = run.device

    envs = make_envs(args, run.name)
    frame_shape = envs.single_observation_space.shape
    stack = 4 if atari else 1
    obs_shape = (stack, *frame_shape) if atari else frame_shape
    n_actions = int(envs.single_action_space.n)

    q_network = QNetwork(obs_shape, n_actions, args.hidden_width, atari, args.cnn_padding).to(device)
    example = (torch.zeros(1, *obs_shape, device=device),)
    sparse = SparseNetwork(q_network, example, sparsity=args.sparsity, **sparse_kwargs(args, args.batch_size, schedule))
    sparse_nets = {"q_network": sparse}
    # Fused Adam: no slow path on the zeros that inactive weights leave in exp_avg_sq (see docs/td3.md).
    optimizer = torch.optim.Adam(weight_decay_groups([q_network], args.weight_decay), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_shape, n_actions, args.hidden_width, atari, args.cnn_padding).to(device)
    target_network.load_state_dict(q_network.state_dict())  # a copy of the masked network: exactly as sparse

    obs_dtype = np.uint8 if atari else np.float32
    rb = ReplayBuffer(args.buffer_size, args.num_envs, frame_shape, obs_dtype, stack, args.seed)
    envs.action_space.seed(args.seed)
    eval_env = make_env(args.env_id, args.seed + 100, 1, False, run.name, args.max_episode_steps)()
    obs, _ = envs.reset(seed=args.seed)
    # the agent's view: the last `stack` observations of each env, zeros before the episode's first one
    state = np.zeros((args.num_envs, stack, *frame_shape), dtype=obs_dtype)
    state[:, -1] = obs
    first = np.ones(args.num_envs, dtype=bool)
    autoreset = np.zeros(args.num_envs, dtype=bool)
    grad_step, loss = 0, torch.zeros(())

    def act(state: np.ndarray, global_step: int) -> tuple[np.ndarray, float]:
        """Epsilon-greedy actions: epsilon 1 during warm-up, then decaying linearly. Returns (actions, epsilon)."""
        epsilon = (
            linear_schedule(args.start_e, args.end_e, args.exploration_steps, global_step - args.learning_starts)
            if global_step >= args.learning_starts
            else 1.0
        )
        if random.random() < epsilon:
            return envs.action_space.sample(), epsilon
        with torch.no_grad():
            x = torch.as_tensor(state if stack > 1 else state[:, 0], device=device)
            return q_network(x.float()).argmax(dim=1).cpu().numpy(), epsilon

    def loop_state() -> dict:
        """What the loop carries from one iteration to the next: a checkpoint saves it, a resumed run starts from it."""
        return {"grad_step": grad_step, "loss": loss.detach(), "state": state, "first": first, "autoreset": autoreset}

    modules = {"q_network": q_network, "target_network": target_network}
    start_iteration, saved = run.restore(modules, {"optimizer": optimizer}, sparse_nets, envs, rb, loop_state)
    grad_step, loss, state, first, autoreset = saved.values()
    if run.refill:
        state, first, autoreset = refill_buffer(envs, rb, act, state, autoreset, start_iteration * args.num_envs, args)
    writer = run.open(iterations * args.num_envs, args.learning_starts, args.eval_frequency, args.eval_episodes)

    for iteration in range(start_iteration, iterations):
        global_step = iteration * args.num_envs
        actions, epsilon = act(state, global_step)

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        if "episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)
                writer.add_scalar("charts/epsilon", epsilon, global_step)

        clipped = np.clip(rewards, -1.0, 1.0) if atari else rewards  # Dopamine clips rewards in the agent
        state, first, autoreset = record_step(
            rb, state, first, autoreset, actions, clipped, next_obs, terminations, truncations
        )

        # (iteration > 0: the first row has no next observation yet, so there is nothing to sample)
        if global_step >= args.learning_starts and iteration > 0 and iteration % args.train_frequency == 0:
            run.clock.learning()
            grad_step += 1
            b_obs, b_actions, b_rewards, b_next_obs, b_terminations = rb.sample(args.batch_size, device)
            with torch.no_grad():
                target_max = target_network(b_next_obs.float()).max(dim=1).values
                td_target = b_rewards + args.gamma * target_max * (1 - b_terminations)
            old_val = q_network(b_obs.float()).gather(1, b_actions[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(td_target, old_val) if args.loss == "huber" else F.mse_loss(td_target, old_val)
            optimizer.zero_grad()
            loss.backward()
            # The sparse step: a due SET / RigL drop-and-grow or pruning step (RigL reads the dense gradient), then
            # inactive weights lose their gradients so the optimizer cannot move them.
            sparse.update_topology_if_due(optimizer)
            sparse.mask_gradients()
            optimizer.step()

            if grad_step % 100 == 0:
                writer.add_scalar("losses/td_loss", loss.item(), global_step)
                writer.add_scalar("losses/q_values", old_val.mean().item(), global_step)
                writer.add_scalar("charts/SPS", int(global_step / run.clock.wall_s()), global_step)
            if grad_step % args.update_interval == 0:
                log_sparsity(writer, sparse_nets, global_step)

        if (
            iteration + 1
        ) * args.num_envs // args.target_network_frequency > global_step // args.target_network_frequency:
            target_network.load_state_dict(q_network.state_dict())

        step, last = global_step + args.num_envs, iteration == iterations - 1
        run.evaluate_if_due(
            step,
            last,
            lambda: evaluate(
                q_network, eval_env, args.eval_episodes, args.eval_epsilon, stack, args.seed + 100, device
            ),
        )
        run.checkpoint_if_due(step, iteration + 1, last)
        run.progress.update(step)

    model = dict(obs_shape=obs_shape, n_actions=n_actions, atari=atari)
    learned_steps = grad_step * args.train_frequency * args.num_envs
    return run.finish(iterations * args.num_envs, learned_steps, model, close=(envs, eval_env))


def is_atari(env_id: str) -> bool:
    return "ale_py" in str(gym.spec(env_id).entry_point)


def make_envs(args: types.SimpleNamespace, run_name: str) -> gym.vector.VectorEnv:
    """The training envs, with episode statistics; env i's action space is seeded with seed + i."""
    env_fns = [
        make_env(args.env_id, args.seed + i, i, args.capture_video, run_name, args.max_episode_steps)
        for i in range(args.num_envs)
    ]
    return gym.wrappers.vector.RecordEpisodeStatistics(gym.vector.SyncVectorEnv(env_fns))


def make_env(
    env_id: str, seed: int, idx: int, capture_video: bool, run_name: str, max_episode_steps: int | None = None
) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        render_mode = "rgb_array" if capture_video and idx == 0 else None
        if is_atari(env_id):
            # frameskip=1: the wrapper skips frames itself so it can max-pool the last two. Sticky actions have the
            # probability the id registers (v5: 0.25, NoFrameskip-v4: none), applied by the wrapper, not ALE. ALE
            # truncates at the frame limit.
            frames = 4 * max_episode_steps if max_episode_steps else 108_000
            sticky = float(gym.spec(env_id).kwargs.get("repeat_action_probability", 0.0))
            env = gym.make(
                env_id,
                frameskip=1,
                repeat_action_probability=0.0,
                obs_type="grayscale",
                render_mode=render_mode,
                max_num_frames_per_episode=frames,
            )
            if render_mode:
                env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
            env = AtariPreprocessing(env, sticky=sticky)
        else:
            env = gym.make(env_id, render_mode=render_mode, max_episode_steps=max_episode_steps)
            if render_mode:
                env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        env.action_space.seed(seed)
        return env

    return thunk


class AtariPreprocessing(gym.Wrapper):
    """Dopamine's Atari preprocessing without opencv: sticky actions, `noop_max` random no-ops at reset, each action
    repeated `frame_skip` times (rewards summed, episode stops at a terminal frame), the max of the last two
    grayscale frames, and an area-averaging resize to `size` x `size` (what cv2.INTER_AREA computes). Observations
    are single uint8 frames; stacking is done by the agent and the replay buffer.

    Sticky actions follow ALE's rule, on every emulator frame: with probability `sticky` the previous frame's action
    is repeated instead of the one asked for. They are applied here, with the env's RNG, rather than inside ALE,
    because ALE's saved states do not include the previous action: this way a checkpoint captures them exactly."""

    def __init__(
        self, env: gym.Env, sticky: float = 0.0, noop_max: int = 30, frame_skip: int = 4, size: int = 84
    ) -> None:
        super().__init__(env)
        self.sticky, self.noop_max, self.frame_skip = sticky, noop_max, frame_skip
        self.last_action = 0
        height, width = env.observation_space.shape[:2]
        # Each output pixel averages a few input rows and columns: keep those (index, weight) pairs, so the resize
        # is two gathers and weighted sums, not matrix products that a multithreaded BLAS would slow down when
        # several runs share the cores.
        self.row_idx, self.row_w = self.banded(self.area_matrix(height, size))
        self.col_idx, self.col_w = self.banded(self.area_matrix(width, size))
        self.frames = np.zeros((2, height, width), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    @staticmethod
    def area_matrix(n_in: int, n_out: int) -> np.ndarray:
        """(n_out, n_in) weights: output pixel i averages input interval [i, i+1) * n_in / n_out, by overlap."""
        edges = np.arange(n_out + 1) * n_in / n_out
        m = np.zeros((n_out, n_in), dtype=np.float32)
        for i in range(n_out):
            for j in range(int(edges[i]), min(n_in, math.ceil(edges[i + 1]))):
                m[i, j] = min(edges[i + 1], j + 1) - max(edges[i], j)
        return m / m.sum(axis=1, keepdims=True)

    @staticmethod
    def banded(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, n_out) indices and weights of the (at most k) non-zero entries of each row of `m`."""
        k = int((m > 0).sum(axis=1).max())
        idx = np.argsort(m <= 0, axis=1, kind="stable")[:, :k]  # the non-zero columns, in order
        return idx.T, np.take_along_axis(m, idx, axis=1).T

    def observation(self) -> np.ndarray:
        pooled = np.maximum(self.frames[0], self.frames[1]).astype(np.float32)
        rows = (pooled[self.row_idx] * self.row_w[:, :, None]).sum(axis=0)  # (size, width)
        out = (rows[:, self.col_idx] * self.col_w[None]).sum(axis=1)  # (size, size)
        return np.rint(out).astype(np.uint8)

    def emulate(self, action: int) -> tuple:
        """One emulator frame, with sticky actions."""
        if self.sticky == 0.0 or self.np_random.random() >= self.sticky:
            self.last_action = action
        return self.env.step(self.last_action)

    def reset(self, **kwargs) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self.last_action = 0  # ALE's previous action after a reset is a no-op
        for _ in range(self.np_random.integers(1, self.noop_max + 1) if self.noop_max else 0):
            obs, _, terminated, truncated, info = self.emulate(0)
            if terminated or truncated:
                obs, info = self.env.reset()
                self.last_action = 0
        self.frames[0] = self.frames[1] = obs
        return self.observation(), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        total_reward, terminated, truncated, info = 0.0, False, False, {}
        for t in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.emulate(action)
            total_reward += float(reward)
            if t >= self.frame_skip - 2:
                self.frames[t - (self.frame_skip - 2)] = obs
            if terminated or truncated:
                self.frames[0] = self.frames[1] = obs
                break
        return self.observation(), total_reward, terminated, truncated, info


def evaluate(
    q_network: QNetwork, env: gym.Env, episodes: int, epsilon: float, stack: int, seed: int, device: torch.device
) -> np.ndarray:
    """Evaluation episodes with a small epsilon (Dopamine: 0.001); episode i is reset with seed + i."""
    rng = np.random.default_rng(seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        state = np.zeros((stack, *obs.shape), dtype=obs.dtype)
        state[-1] = obs
        done, episode_return = False, 0.0
        while not done:
            if rng.random() < epsilon:
                action = int(rng.integers(env.action_space.n))
            else:
                with torch.no_grad():
                    x = torch.as_tensor(state if stack > 1 else state[0], device=device)[None]
                    action = int(q_network(x.float()).argmax(1).item())
            obs, reward, terminated, truncated, _ = env.step(action)
            state = np.roll(state, -1, axis=0)
            state[-1] = obs
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    return np.array(returns)


def refill_buffer(
    envs: gym.vector.VectorEnv,
    rb: ReplayBuffer,
    act: Callable,
    state: np.ndarray,
    autoreset: np.ndarray,
    step: int,
    args: Args,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A resumed run whose checkpoint holds no replay buffer (no --checkpoint-buffer) collects fresh transitions with
    the current epsilon-greedy policy before training goes on. These steps are extra (not counted, not logged), and
    the buffer now holds only recent experience, so the run differs from an uninterrupted one. Returns the new
    (state, first, autoreset)."""
    refill = max(args.learning_starts, args.batch_size + rb.stack + 1)
    print(f"note: the checkpoint holds no replay buffer; refilling it with {refill} steps before resuming")
    first = np.ones(args.num_envs, dtype=bool)  # the first stored frame starts the buffer's history
    for _ in range(math.ceil(refill / args.num_envs)):
        actions, _ = act(state, step)
        next_obs, rewards, terminations, truncations, _ = envs.step(actions)
        clipped = np.clip(rewards, -1.0, 1.0) if is_atari(args.env_id) else rewards
        state, first, autoreset = record_step(
            rb, state, first, autoreset, actions, clipped, next_obs, terminations, truncations
        )
    return state, first, autoreset


def check_env(env_id: str) -> bool:
    """Refuse (BadInput, one line) an environment this DQN cannot train on; return whether it is an Atari game
    (else a flat-vector one)."""
    try:
        atari = is_atari(env_id)
    except gym.error.Error as e:
        raise BadInput(f"cannot make --env-id {env_id}: {e}") from None
    probe = make_probe(env_id)
    if not isinstance(probe.action_space, gym.spaces.Discrete):
        raise BadInput(f"{env_id} has a {type(probe.action_space).__name__} action space; DQN needs a discrete one")
    if not atari and len(probe.observation_space.shape or ()) != 1:
        raise BadInput(f"{env_id} is neither Atari nor a flat-vector environment; this script handles those two")
    probe.close()
    return atari


def resolve_args(args: Args, atari: bool) -> dict:
    """Validate the arguments and return every protocol setting: the flag's value, or the protocol's tuned one."""
    protocol = PROTOCOLS["atari" if atari else "classic"]
    c = {key: getattr(args, key) if getattr(args, key, None) is not None else value for key, value in protocol.items()}
    if atari and args.sparse_method == "prune" and args.sparsity_aware_init is None:
        c["sparsity_aware_init"] = False  # [G]'s Atari pruning keeps the dense init
    c["drop_fraction"] = c["drop_fraction"] if args.sparse_method in ("set", "rigl") else 0.0
    r = resolved(args, c)  # the checks below read the settings the run will use
    network_sparsities(r)
    names = ("total_timesteps", "buffer_size", "batch_size", "target_network_frequency", "train_frequency")
    check_at_least_one(r, (*names, "eval_frequency", "eval_episodes", "hidden_width"))
    if r.num_envs < 1 or r.total_timesteps < r.num_envs:
        raise BadInput(f"--num-envs must be at least 1 and at most --total-timesteps, got {r.num_envs}")
    if r.buffer_size < r.batch_size:
        raise BadInput(f"--buffer-size ({r.buffer_size}) must be at least --batch-size ({r.batch_size})")
    if r.learning_starts < 0 or r.exploration_steps < 0:
        raise BadInput("--learning-starts and --exploration-steps must be non-negative")
    for name in ("start_e", "end_e", "eval_epsilon"):
        if not 0.0 <= getattr(r, name) <= 1.0:
            raise BadInput(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(r, name)}")
    if r.learning_starts >= r.total_timesteps:
        raise BadInput(
            f"--learning-starts ({r.learning_starts}) must be less than --total-timesteps ({r.total_timesteps}): "
            "the run would never learn"
        )
    iterations = r.total_timesteps // r.num_envs
    if (iterations - math.ceil(r.learning_starts / r.num_envs)) // r.train_frequency < 1:
        raise BadInput(
            f"no gradient step fits between --learning-starts ({r.learning_starts}) and --total-timesteps "
            f"({r.total_timesteps}) at one every --train-frequency ({r.train_frequency}) steps"
        )
    return c


# --- sparse kernels (identical in every script; optional, --sparse-kernels) ---
# The masks above simulate sparsity: the FLOPs are counted, not saved. With --sparse-kernels, a masked Linear layer
# that is sparse enough runs forward and backward on its active weights only, as CSR products, instead of as a dense
# product with zeros in it. Nothing in the sparse-training section changes: the dense weights, masks, optimizer state,
# weight decay and topology updates stay as they are, and the weight's gradient is still a dense tensor, zero at
# inactive positions. Conv2d layers stay masked-dense. A first reading may skip this section.
# torch marks its CSR support as beta with a warning at first use; the products used here are tested below.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def csr_product(
    crow: torch.Tensor,
    col: torch.Tensor,
    values: torch.Tensor,
    shape: tuple,
    dense: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """(CSR matrix) @ dense (+ bias per row). Written as addmm, which writes its output once: torch.mm would first
    zero-fill it and then copy it."""
    sparse = torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)
    if bias is not None:
        return torch.addmm(bias.unsqueeze(1), sparse, dense)
    return torch.addmm(dense.new_zeros(()).expand(shape[0], dense.shape[1]), sparse, dense, beta=0.0)


class SparseLinearFunction(torch.autograd.Function):
    """y = x W^T + b on the active weights, computed feature-major: y^T = W_csr x^T, the input gradient
    W^T_csr grad_y^T, and the weight gradient grad_y^T x sampled at the active positions only. Takes and returns
    [batch, features] tensors laid out as [features, batch] (transposed views)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, k: "LinearKernel"):
        # the active weights, in CSR (row-major) order; index_select gathers about twice as fast as w[idx]
        values = weight.detach().reshape(-1).index_select(0, k.flat)
        x_t = x.t().contiguous()  # no copy when the layer before was feature-major too
        ctx.save_for_backward(x_t, values)
        ctx.k, ctx.weight = k, weight
        return csr_product(k.crow, k.col, values, k.shape, x_t, bias).t()

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        (x_t, values), k = ctx.saved_tensors, ctx.k
        grad_y_t = grad_y.t().contiguous()  # no copy when the gradient arrives feature-major
        grad_x = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = csr_product(k.crow_t, k.col_t, values.index_select(0, k.perm), k.shape[::-1], grad_y_t).t()
        if ctx.needs_input_grad[1]:
            k.add_grad(ctx.weight, torch.sparse.sampled_addmm(k.pattern, grad_y_t, x_t.t(), beta=0.0).values())
        if ctx.needs_input_grad[2]:
            grad_b = grad_y_t.sum(1)
        return grad_x, None, grad_b, None  # the weight's gradient is already in weight.grad (add_grad)


class LinearKernel:
    """One layer's sparsity structure, rebuilt at each mask change so that a step only gathers the active values:
    their flat indices, the CSR indices of W and of W^T, and the order taking W's values to W^T's."""

    def __init__(self, mask: torch.Tensor) -> None:
        n_out, n_in = self.shape = tuple(mask.shape)
        self.flat = mask.reshape(-1).nonzero().squeeze(1)
        rows, self.col = self.flat // n_in, self.flat % n_in
        self.crow = nn.functional.pad(torch.bincount(rows, minlength=n_out).cumsum(0), (1, 0))
        self.perm = torch.argsort(self.col * n_out + rows)
        self.crow_t = nn.functional.pad(torch.bincount(self.col, minlength=n_in).cumsum(0), (1, 0))
        self.col_t = rows[self.perm]
        zeros = torch.zeros(len(self.flat), dtype=mask.dtype, device=mask.device)
        self.pattern = torch.sparse_csr_tensor(self.crow, self.col, zeros, self.shape, check_invariants=False)
        self.grad, self.grad_of = None, None

    def add_grad(self, weight: torch.Tensor, values: torch.Tensor) -> None:
        """Add the gradient at the active positions to weight.grad. The weight's first gradient after zero_grad()
        goes into a dense tensor kept from step to step, so a step writes only the active values instead of
        allocating and zero-filling a whole dense gradient (at width 1024 one of the largest costs). The buffer is
        zero at inactive positions: only active ones are written here, and mask_gradients(), which every gradient
        step runs, zeroes the rest of whatever .grad holds (masking, clipping and weight decay keep zeros at zero)."""
        if weight.grad is not None:
            weight.grad.view(-1).index_add_(0, self.flat, values)
            return
        if self.grad_of is not weight:  # first use, or another copy of the layer: a buffer of its own
            self.grad, self.grad_of = torch.zeros(self.shape, dtype=values.dtype, device=values.device), weight
        self.grad.view(-1).index_copy_(0, self.flat, values)
        weight.grad = self.grad


class SparseKernels:
    """--sparse-kernels for one network: "off"; a sparsity threshold ("0.95": every masked Linear layer at least that
    sparse runs on sparse kernels, a fixed choice, so a seeded run repeats exactly); or "auto": a layer at least half
    sparse runs on them when timing its forward and backward at the training batch size says they are faster by 25%
    (the choice can differ between machines or loads, and with it a seeded run's float rounding). Chosen again at
    each mask change, so a pruned layer switches once it is sparse enough. A drop-and-grow step runs dense: RigL
    grows by the dense gradient, and a grown weight takes its first optimizer step with it (SET too)."""

    def __init__(self, net: "SparseNetwork", mode: str) -> None:
        self.threshold = self.threshold_of(mode)
        self.net, self.timed, self.verdicts = net, mode == "auto", {}
        linear = [name for name, layer in net.layers.items() if isinstance(layer, nn.Linear)]
        # Every Linear layer goes through forward() (the dense ones too: see there); only masked ones get kernels.
        self.routed = linear if self.threshold is not None else []
        self.kernels: dict[str, LinearKernel | None] = {name: None for name in self.routed if name in net.masks}
        self.on = False  # any layer on kernels (refresh(), called once the masks exist, sets it)
        self.attach(net.layers)

    @staticmethod
    def threshold_of(mode: str) -> float | None:
        """The sparsity from which layers run on sparse kernels (auto: 0.5, then timed); None when off."""
        message = f"--sparse-kernels must be off, auto or a sparsity in [0, 1], got {mode!r}"
        try:
            threshold = None if mode == "off" else 0.5 if mode == "auto" else float(mode)
        except ValueError:
            raise BadInput(message) from None
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise BadInput(message)
        return threshold

    def attach(self, layers: dict[str, nn.Module]) -> None:
        """Send these layers (the network's, or a copy's, read at its own weights) through forward(). The forward is
        an instance attribute: the modules and their state_dicts stay as they are."""
        for name in self.routed:
            layers[name].forward = lambda x, name=name, layer=layers[name]: self.forward(name, layer, x)

    def refresh(self) -> None:
        """Rebuild the kernels after a mask change; a layer not sparse enough (auto: not faster) gets none."""
        for name in self.kernels:
            sparsity = 1.0 - self.net.nnz[name] / self.net.masks[name].numel()
            kernel = LinearKernel(self.net.masks[name]) if sparsity >= self.threshold else None
            if kernel is not None and self.timed:
                key = (name, round(sparsity, 2))  # SET and RigL keep the count: one timing per layer
                if key not in self.verdicts:
                    self.verdicts[key] = self._sparse_is_faster(self.net.layers[name], kernel)
                kernel = kernel if self.verdicts[key] else None
            self.kernels[name] = kernel
        self.on = bool(self.layers_on())

    def layers_on(self) -> list[str]:
        """The layers now computed on sparse kernels (the run's summary and logs report them)."""
        return [name for name, kernel in self.kernels.items() if kernel is not None]

    def forward(self, name: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """Once any layer of the network is on kernels, all its Linear layers compute feature-major ([features,
        batch] in memory, handed on as transposed views): MKL's sparse products run about twice as fast with their
        dense operand laid out that way, and activations then pass from layer to layer without transposing copies."""
        if not self.on:
            return nn.functional.linear(x, layer.weight, layer.bias)
        kernel, net = self.kernels.get(name), self.net
        x2 = x.reshape(-1, x.shape[-1])
        if kernel is None or (
            net.method in ("set", "rigl") and torch.is_grad_enabled() and net._due(net.update_start, net.update_end, 1)
        ):
            w, b = layer.weight, layer.bias
            y = (torch.mm(w, x2.t()) if b is None else torch.addmm(b.unsqueeze(1), w, x2.t())).t()
        else:
            y = SparseLinearFunction.apply(x2, layer.weight, layer.bias, kernel)
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def _sparse_is_faster(self, layer: nn.Linear, kernel: LinearKernel, repeats: int = 5) -> bool:
        """Time the layer's forward and backward, dense against sparse, alternated, after one warm-up round; the
        inputs are ones, so timing draws no random numbers."""
        w = layer.weight.detach().clone().requires_grad_()
        # feature-major input and output gradient, as the layer would see them on kernels
        x = torch.ones(w.shape[1], self.net.batch_size, device=w.device).t().requires_grad_()
        g = torch.ones(w.shape[0], self.net.batch_size, device=w.device).t()
        runs = {
            "dense": lambda: nn.functional.linear(x, w).backward(g),
            "sparse": lambda: SparseLinearFunction.apply(x, w, None, kernel).backward(g),
        }
        times: dict[str, list[float]] = {path: [] for path in runs}
        for _ in range(repeats + 1):
            for path, run in runs.items():
                w.grad = x.grad = None
                start = time.perf_counter()
                run()
                times[path].append(time.perf_counter() - start)
        # a 25% margin: a layer's own timing misses costs the step adds around it (measured: at 10%, layers
        # chosen at width 256 made the whole step slower)
        return min(times["sparse"][1:]) < 0.75 * min(times["dense"][1:])


# --- end sparse kernels ---


# --- run infrastructure (identical in every script; a first-time reader may skip it) ---
# Everything a run needs around the algorithm and nothing the algorithm needs: checking the flags, the run folder and
# logs, the clock, progress lines, the end-of-run summary, checkpoints and resuming from them, and the one-line
# refusal of bad input. train() calls these through `Run` and a few helpers.


class BadInput(ValueError):
    """Input a run refuses: a flag, a combination of flags, a checkpoint. Raised where the problem is found (in the
    sparse-training section too: names resolve when called); `main` prints it as the one line `error: ...`, before the
    run has written anything."""


def main(train: Callable[..., dict], args_class: type) -> None:
    """The command line: parse the flags into `args_class` and train. Bad input, wherever it is found, ends the run
    here with one line on stderr and exit status 1 (a bug still shows its traceback: only BadInput is caught)."""
    args = tyro.cli(args_class)
    try:
        train(args, command_line_flags(sys.argv[1:]))
    except BadInput as e:
        sys.exit(f"error: {e}")


def command_line_flags(argv: list[str]) -> set[str]:
    """The argument names written on a command line: `--total-timesteps 5` and `--total-timesteps=5` give
    total_timesteps, a boolean's `--no-cuda` gives cuda (and no_cuda)."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            names |= {name, name[3:]} if name.startswith("no_") else {name}
    return names


def load_run(args: object, script: str, given: set[str] | None) -> tuple[object, dict | None]:
    """The first step of train(): with --resume, the checkpoint and its run's arguments (`resume_args`), else (args,
    None). Also refuses --track or --capture-video without their packages, and quiets MuJoCo's deprecation warning."""
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume, script)
        args = resume_args(args, checkpoint, given)
    for wanted, module, flag in ((args.track, "wandb", "--track"), (args.capture_video, "moviepy", "--capture-video")):
        if wanted:
            try:
                __import__(module)
            except ImportError:
                raise BadInput(f"{flag} needs {module}: pip install {module}") from None
    quiet_mujoco()
    return args, checkpoint


def resolved(args: object, settings: dict) -> types.SimpleNamespace:
    """What train() reads: every argument, with `settings` (the values resolved for flags left at None, and values
    derived from the flags) in their place. The flags as given stay in the summary and checkpoints, so that a resumed
    run resolves them again in the same way."""
    return types.SimpleNamespace(**{**vars(args), **settings})


def check_at_least_one(args: object, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(args, name) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")


def network_sparsities(args: object) -> dict[str, float]:
    """Refuse (BadInput, one line) sparse settings no network can be built with, and a negative checkpoint frequency
    (`args` resolved); return the overall sparsity of the actor and the critic: --actor-sparsity and
    --critic-sparsity, else --sparsity. The method, distribution and drop schedule need no check: the command line's
    Literal types refuse other choices."""
    given = {"sparsity": args.sparsity}
    for net in ("actor", "critic"):
        if getattr(args, f"{net}_sparsity", None) is not None:
            given[f"{net}-sparsity"] = getattr(args, f"{net}_sparsity")
    for flag, value in given.items():
        if not 0.0 <= value < 1.0:
            raise BadInput(f"--{flag} must be in [0, 1), got {value}")
    if not 0.0 <= args.drop_fraction <= 1.0:
        raise BadInput(f"--drop-fraction must be in [0, 1], got {args.drop_fraction}")
    if args.update_interval < 1:
        raise BadInput(f"--update-interval must be at least 1, got {args.update_interval}")
    SparseKernels.threshold_of(args.sparse_kernels)  # refuses a bad value before the run starts
    if args.checkpoint_frequency < 0:
        raise BadInput(
            f"--checkpoint-frequency must be non-negative (0: no checkpoints), got {args.checkpoint_frequency}"
        )
    return {net: given.get(f"{net}-sparsity", args.sparsity) for net in ("actor", "critic")}


def topology_schedule(
    args: object, grad_steps: int, update_end: int, prune_start: int, prune_end: int, default_end: str
) -> dict[str, int]:
    """The gradient steps of topology updates and pruning, from the flags, else the given defaults: SparseNetwork's
    update_start, update_end, prune_start and prune_end. Refuses an empty pruning window, and notes when set or rigl
    would never update a mask: no update step (start, start + interval, ..., from step 1 on) falls inside both the
    update window and the run's gradient steps."""
    given = {k: getattr(args, k) for k in ("update_end", "prune_start", "prune_end")}
    window = dict(update_end=update_end, prune_start=prune_start, prune_end=prune_end)
    window = {"update_start": args.update_start, **{k: v if given[k] is None else given[k] for k, v in window.items()}}
    if args.sparse_method == "prune" and window["prune_end"] <= window["prune_start"]:
        raise BadInput(f"--prune-end ({window['prune_end']}) must be after --prune-start ({window['prune_start']})")
    start, end, interval = args.update_start, window["update_end"], args.update_interval
    if args.sparse_method in ("set", "rigl") and (start if start >= 1 else interval) > min(end, grad_steps):
        print(
            f"note: no topology updates happen: {args.sparse_method} updates masks every {interval} gradient steps "
            f"from step {start} to {end} (--update-start, --update-end; default end: {default_end}), and this run "
            f"takes {grad_steps} gradient steps"
        )
    return window


def sparse_kwargs(args: object, batch_size: int, schedule: dict[str, int]) -> dict:
    """SparseNetwork's keyword arguments but the network, its inputs and its sparsity: the sparse flags (the same
    names in every script; `args` resolved), the batch size (for RigL's FLOP count) and the `topology_schedule`."""
    return dict(
        batch_size=batch_size,
        method=args.sparse_method,
        distribution=args.sparsity_distribution,
        dense_first_layer=args.dense_first_layer,
        dense_output_layer=args.dense_output_layer,
        sparsity_aware_init=bool(args.sparsity_aware_init),
        update_interval=args.update_interval,
        drop_fraction=args.drop_fraction,
        drop_schedule=args.drop_schedule,
        sparse_kernels=args.sparse_kernels,
        **schedule,
    )


def make_probe(env_id: str) -> gym.Env:
    """One environment of `env_id`, to check its spaces before the run starts; BadInput when it cannot be made."""
    try:
        return gym.make(env_id)
    except gym.error.Error as e:
        raise BadInput(f"cannot make --env-id {env_id}: {e}") from None


def quiet_mujoco() -> None:
    """Send MuJoCo's warnings to stderr instead of its default handler, which also appends them to MUJOCO_LOG.TXT in
    the working directory, and drop one: MuJoCo >= 4 deprecates the `settotalmass` attribute that gymnasium's own
    HalfCheetah model uses, and says so on every environment made (the model still loads as before)."""
    try:
        import mujoco
    except ImportError:
        return

    def warn(message: str) -> None:
        if "settotalmass" not in message:
            print(f"MuJoCo warning: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(warn)


def is_atari_id(env_id: str) -> bool:
    """Whether `env_id` is one of ale-py's Atari games, registered or not: only the DQN script imports ale-py, which
    registers them, so an id unknown here is looked up after importing it."""
    try:
        if env_id not in gym.registry:
            import ale_py

            gym.register_envs(ale_py)
        return "ale_py" in str(gym.spec(env_id).entry_point)
    except (ImportError, gym.error.Error):
        return False


def start_run(args: object, checkpoint: dict | None = None) -> tuple[str, str, torch.device]:
    """Name the run (a resumed run keeps the name and folder of its checkpoint's run), set torch's thread count, seed
    python, numpy and torch, and pick the device. Returns (run_name, run_dir, device). Writes nothing: `Run.open`
    creates the run's folder once every check that can refuse the run has passed."""
    if args.torch_threads < 1:
        raise BadInput(f"--torch-threads must be at least 1, got {args.torch_threads}")
    run_name = (
        f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.sparse_method}__{args.seed}__{int(time.time())}"
    )
    run_dir = f"runs/{run_name}"
    if checkpoint is not None:
        run_dir = checkpoint["run_dir"]  # where load_checkpoint found the run's folder (maybe ".")
        run_name = os.path.basename(os.path.abspath(run_dir))
    # Small networks gain little from more threads and lose much when the cores are shared, and the same seed gives
    # the same result only at the same thread count: the count is a setting of the run, one by default.
    torch.set_num_threads(args.torch_threads)
    # Flush denormal floats to zero. Over a long run the weights and Adam moments of units that no longer get a
    # gradient (dead ReLUs, under weight decay) decay into the denormal range, below 1.2e-38, where CPU arithmetic is
    # up to ~60x slower: a 1M-step TD3 run slowed ~20x after 50k steps. Such values do not matter to learning.
    torch.set_flush_denormal(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    return run_name, run_dir, device


class Clock:
    """A run's two clocks: wall time since the run started, and learning time, from its first gradient step on with
    evaluations and checkpoint writing left out (`paused`): the learning speed that the speed benchmark compares.
    Both go on across a resume (`state`, saved in checkpoints)."""

    def __init__(self, elapsed_s: float = 0.0, learning_s: float | None = None) -> None:
        now = time.time()
        self.start, self.paused = now - elapsed_s, 0.0
        self.learn_start = None if learning_s is None else now - learning_s

    def learning(self) -> None:
        """Called on every learning step: the learning clock starts at the first (time paused before it is dropped)."""
        if self.learn_start is None:
            self.learn_start, self.paused = time.time(), 0.0

    def wall_s(self) -> float:
        return time.time() - self.start

    def learning_s(self) -> float | None:
        return None if self.learn_start is None else time.time() - self.learn_start - self.paused

    def state(self) -> dict[str, float | None]:
        return {"elapsed_s": self.wall_s(), "learning_s": self.learning_s()}


class Run:
    """One run around its training loop, in the order train() uses it: `Run(...)` names it, seeds and picks the device
    (start_run); `restore` loads its checkpoint, if any; `open` writes the logs and prints the plan; in the loop,
    `clock`, `evaluate_if_due`, `checkpoint_if_due` and `progress`; `finish` writes the summary and the model.
    `record`: resolved settings for the logs, the summary and the saved model, e.g. {"settings": {...}}."""

    def __init__(self, script: str, args: object, checkpoint: dict | None, record: dict | None = None) -> None:
        self.script, self.args, self.checkpoint, self.record = script, args, checkpoint, record or {}
        self.name, self.dir, self.device = start_run(args, checkpoint)
        self.evaluations: list[tuple[int, float]] = []
        self.clock, self.next_checkpoint, self.refill = Clock(), args.checkpoint_frequency, False

    def restore(
        self,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        sparse_nets: dict[str, SparseNetwork],
        env: object,
        buffer: object | None,
        loop_state: Callable[[], dict],
    ) -> tuple[int, dict]:
        """Take the run's parts, which checkpoints save, and `loop_state`, the loop's own variables. A resumed run
        loads its checkpoint into them (BadInput if they do not fit it) and sets every RNG, then loads its replay buffer
        if the checkpoint holds one, else `refill` says to collect fresh transitions. Returns the iteration to go on
        from (0 for a new run) and the loop's variables, in the order of `loop_state()`."""
        self.modules, self.optimizers, self.sparse_nets, self.env = modules, optimizers, sparse_nets, env
        self.buffer, self.loop_state, state = buffer, loop_state, loop_state()
        checkpoint = self.checkpoint
        if checkpoint is None:
            return 0, state
        try:
            for kind, parts in (("modules", modules), ("optimizers", optimizers)):
                for name, part in parts.items():
                    part.load_state_dict(checkpoint[kind][name])
            for name, sparse in sparse_nets.items():
                load_sparse_state(sparse, checkpoint["sparse"][name])
            set_env_state(env, checkpoint["env"])
        except (KeyError, RuntimeError, ValueError) as e:
            # torch's load_state_dict says "Error(s) in loading state_dict for Actor:" and lists the problems on the
            # lines below: keep the first of them
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            reason = f"no {e} in it" if isinstance(e, KeyError) else ": ".join([lines[0].rstrip(":"), *lines[1:2]])
            raise BadInput(f"the checkpoint does not match this run's networks or environment: {reason}") from None
        rng = checkpoint["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        loop = checkpoint["loop"]
        self.evaluations, self.next_eval = loop["evaluations"], loop["next_eval"]
        self.next_checkpoint, self.clock = loop["next_checkpoint"], Clock(loop["elapsed_s"], loop.get("learning_s"))
        if buffer is not None:
            buffer.rng = loop["rb_rng"]
            if loop["buffer"] is not None:
                buffer.__dict__.update({k: v.numpy() if torch.is_tensor(v) else v for k, v in loop["buffer"].items()})
            self.refill = loop["buffer"] is None and loop["iteration"] > 0
        return loop["iteration"], {k: loop[k] for k in state}

    def open(
        self, total: int, warmup: int, eval_frequency: int, eval_episodes: int, purge_after: int = 0
    ) -> SummaryWriter:
        """Every check has passed: open the tensorboard writer (it creates the run folder; wandb too with --track)
        with every setting, print the plan, start the progress lines; returns the writer. A resumed run logs from the
        checkpoint's step + `purge_after` on: tensorboard drops what the stopped process logged from there, so the
        checkpoint's evaluations from there on are logged again."""
        args, self.eval_frequency = self.args, eval_frequency
        config = {**vars(args), **{k: v for values in self.record.values() for k, v in values.items()}}
        step = 0 if self.checkpoint is None else self.checkpoint["global_step"]
        if args.track:
            import wandb

            rng = random.getstate(), np.random.get_state(), torch.get_rng_state()  # wandb must not move the seeded RNGs
            wandb.init(
                project=args.wandb_project_name,
                entity=args.wandb_entity,
                sync_tensorboard=True,
                config=config,
                name=self.name,
                id=hashlib.sha1(self.name.encode()).hexdigest()[:16],  # fixed by the name: a resumed run continues it
                resume="allow",
                monitor_gym=True,
                save_code=True,
            )
            random.setstate(rng[0])
            np.random.set_state(rng[1])
            torch.set_rng_state(rng[2])
        if self.checkpoint is None:
            self.next_eval = eval_frequency
            self.writer = SummaryWriter(self.dir)
            table = "\n".join(f"|{key}|{value}|" for key, value in config.items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
            log_sparsity(self.writer, self.sparse_nets, 0)
        else:
            self.writer = SummaryWriter(self.dir, purge_step=step + purge_after)
            for eval_step, value in self.evaluations:
                if eval_step >= step + purge_after:
                    self.writer.add_scalar("eval/episodic_return", value, eval_step)
        print(f"run folder: {self.dir} (watch it with: tensorboard --logdir {os.path.dirname(self.dir) or '.'})")
        plan = f"{total:,} steps" + (f", continuing from step {step:,}" if step else "")
        if warmup > step:
            plan += f"; random actions until step {warmup:,}, learning after that"
        plan += f"; a {eval_episodes}-episode evaluation every {eval_frequency:,} steps and at the end"
        if args.checkpoint_frequency:
            plan += f"; a checkpoint every {args.checkpoint_frequency:,} steps"
        else:
            plan += "; no checkpoints (--checkpoint-frequency N writes one every N steps)"
        print(f"plan: {plan}")
        if args.sparse_kernels != "off":  # with auto the choice depends on the machine: say what it was
            chosen = "; ".join(f"{n} {', '.join(s.kernels.layers_on()) or '-'}" for n, s in self.sparse_nets.items())
            print(f"layers on sparse kernels (--sparse-kernels {args.sparse_kernels}): {chosen}")
        if self.checkpoint is not None:
            print(f"resumed {self.dir} at step {step}")
        self.progress = Progress(total, warmup, eval_frequency, step)
        return self.writer

    def evaluate_if_due(self, step: int, last: bool, evaluate: Callable[[], np.ndarray]) -> None:
        """Every --eval-frequency steps and at the end: `evaluate` (returns per episode), log and keep the mean."""
        if step < self.next_eval and not last:
            return
        while self.next_eval <= step:
            self.next_eval += self.eval_frequency
        start = time.time()
        mean = float(evaluate().mean())
        seconds = time.time() - start
        self.clock.paused += seconds
        self.evaluations.append((step, mean))
        self.writer.add_scalar("eval/episodic_return", mean, step)
        self.progress.update(step, mean, seconds)

    def checkpoint_if_due(self, step: int, next_iteration: int, last: bool) -> None:
        """Every --checkpoint-frequency steps but at the end, a checkpoint at `step` of everything needed to go on
        exactly: weights (targets included), optimizer moments, masks and schedule counters, the training env's state,
        every RNG, and the loop's variables (`next_iteration` is where a resumed run starts). It records its run folder
        as given and as an absolute path, which a copy of the file taken out of the folder still leads back to."""
        args = self.args
        if not args.checkpoint_frequency or step < self.next_checkpoint or last:
            return
        while self.next_checkpoint <= step:
            self.next_checkpoint += args.checkpoint_frequency
        self.writer.flush()
        start = time.time()
        loop = {"iteration": next_iteration, **self.loop_state(), "evaluations": self.evaluations}
        loop |= {"next_eval": self.next_eval, "next_checkpoint": self.next_checkpoint, **self.clock.state()}
        if self.buffer is not None:
            # arrays as tensors sharing their memory, which torch.save writes without a pickled copy (an Atari buffer
            # is gigabytes)
            state = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in vars(self.buffer).items()}
            loop |= {"rb_rng": self.buffer.rng, "buffer": state if args.checkpoint_buffer else None}
        checkpoint = {"format": CHECKPOINT_FORMAT, "script": self.script, "args": dict(vars(args)), "run_dir": self.dir}
        checkpoint |= {"run_dir_abs": os.path.abspath(self.dir), "global_step": step}
        for kind, parts in (("modules", self.modules), ("optimizers", self.optimizers)):
            checkpoint[kind] = {name: part.state_dict() for name, part in parts.items()}
        checkpoint["sparse"] = {name: sparse_state(sparse) for name, sparse in self.sparse_nets.items()}
        rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        rng["cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        save_checkpoint(self.dir, checkpoint | {"env": env_state(self.env), "rng": rng, "loop": loop})
        self.clock.paused += time.time() - start

    def finish(self, total_steps: int, learned_steps: int, model: dict, close: tuple = ()) -> dict:
        """End the run: log the final sparsity; with --save-model save the weights, masks and `model`; write
        summary.json (atomically) and delete the checkpoints (a finished run cannot be resumed); print the summary,
        close `close` and return the summary: evaluation returns (final, mean of the last 10 as [S] reports,
        learning-curve area = mean / 1e4 as [S] defines it); per network the weights, the inference FLOPs of one
        forward pass and the training FLOPs of the whole run; the learning speed over `learned_steps` (environment
        steps taken while learning)."""
        log_sparsity(self.writer, self.sparse_nets, total_steps)
        args, learning_s, nets = self.args, self.clock.learning_s(), self.sparse_nets
        dense_flops = sum(s.dense_train_flops for s in nets.values())
        returns = [r for _, r in self.evaluations]
        summary = dict(script=args.exp_name, env_id=args.env_id, sparse_method=args.sparse_method, seed=args.seed)
        summary |= {
            "total_timesteps": total_steps,
            "final_eval_return": returns[-1],
            "mean_last_10_evals": float(np.mean(returns[-10:])),
            "lca": float(np.mean(returns)) / 1e4,
            "evaluations": self.evaluations,
            "networks": {
                name: {
                    "active_weights": s.active_weights(),
                    "total_weights": s.total_weights(),
                    "inference_flops": s.flops,
                    "train_flops": s.train_flops,
                    "topology_updates": s.updates,
                    **({"sparse_kernel_layers": s.kernels.layers_on()} if args.sparse_kernels != "off" else {}),
                }
                for name, s in nets.items()
            },
            "train_flops_vs_dense": sum(s.train_flops for s in nets.values()) / dense_flops if dense_flops else 1.0,
            **self.record,
            "wall_time_s": self.clock.wall_s(),
            "learning_sps": learned_steps / learning_s if learned_steps and learning_s else float("nan"),
            "run_dir": self.dir,
            "args": asdict(args),
        }
        if args.save_model:
            summary["model_path"] = os.path.join(self.dir, f"{args.exp_name}.pt")
            weights = {name: module.state_dict() for name, module in self.modules.items()}
            masks = {name: {k: m.cpu() for k, m in s.masks.items()} for name, s in nets.items()}
            torch.save({"args": asdict(args), **self.record, **model, **weights, "masks": masks}, summary["model_path"])
            print(f"model saved to {summary['model_path']}")
        path = os.path.join(self.dir, "summary.json")
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(path + ".tmp", path)
        for name in (*CHECKPOINT_FILES, "checkpoint.pt.tmp"):
            if os.path.exists(os.path.join(self.dir, name)):
                os.remove(os.path.join(self.dir, name))
        print(f"=== {args.exp_name} {args.sparse_method} on {args.env_id}, seed {args.seed}, {total_steps} steps ===")
        last_10 = summary["mean_last_10_evals"]
        print(f"final evaluation return {returns[-1]:.1f}; mean of the last 10 evaluations {last_10:.1f}")
        for name, net in summary["networks"].items():
            print(
                f"{name:>9}: {net['active_weights']}/{net['total_weights']} weights active "
                f"({1 - net['active_weights'] / net['total_weights']:.1%} sparse), "
                f"{net['inference_flops']:.0f} inference FLOPs per forward pass"
            )
        print(f"training FLOPs relative to dense: {summary['train_flops_vs_dense']:.3f}x")
        for env in close:
            env.close()
        self.writer.close()
        return summary


def sparsity_stats(sparse: SparseNetwork) -> dict[str, float]:
    """Scalars for the logs: per-layer density, overall density, mask change of the last update, fraction of weights
    ever active, inference FLOPs per sample and cumulative training FLOPs (also relative to dense)."""
    layers, total = sparse.layers, sparse.total_weights()
    out = {f"density/{name}": sparse.nnz.get(name, m.weight.numel()) / m.weight.numel() for name, m in layers.items()}
    ever = sum(int(sparse.ever_active[n].sum()) if n in sparse.masks else m.weight.numel() for n, m in layers.items())
    out |= {"density": sparse.active_weights() / total, "mask_change": sparse.last_mask_change}
    out |= {"ever_active": ever / total, "inference_flops": sparse.flops, "train_flops": sparse.train_flops}
    out["train_flops_vs_dense"] = sparse.train_flops / max(sparse.dense_train_flops, 1.0)
    if sparse.kernels.threshold is not None:  # --sparse-kernels: how many layers compute on them (auto may change)
        out["sparse_kernel_layers"] = len(sparse.kernels.layers_on())
    return out


def log_sparsity(writer: SummaryWriter, sparse_nets: dict[str, SparseNetwork], step: int) -> None:
    """Write every network's sparsity scalars under sparsity/<net>/, and all networks' training FLOPs relative to
    dense under sparsity/train_flops_vs_dense."""
    for net_name, sparse in sparse_nets.items():
        for key, value in sparsity_stats(sparse).items():
            writer.add_scalar(f"sparsity/{net_name}/{key}", value, step)
    dense_flops = sum(s.dense_train_flops for s in sparse_nets.values())
    if dense_flops > 0:
        ratio = sum(s.train_flops for s in sparse_nets.values()) / dense_flops
        writer.add_scalar("sparsity/train_flops_vs_dense", ratio, step)


def duration(seconds: float) -> str:
    """A duration for people: 45s, 12m05s, 3h07m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """A long run's progress lines, one every `every_s` seconds and one per evaluation: steps done of the total, the
    speed of the learning phase (random warm-up and evaluations excluded, so it is the speed that decides when the
    run ends) and an estimate of the time left. Speeds are measured in this process only."""

    def __init__(self, total: int, warmup: int, eval_frequency: int, step: int = 0, every_s: float = 60.0) -> None:
        self.total, self.warmup, self.eval_frequency, self.every_s = total, warmup, eval_frequency, every_s
        self.step, self.mark = step, time.time()
        self.next_print = self.mark + every_s
        self.steps = {"warm-up": 0, "learning": 0}
        self.seconds = {"warm-up": 0.0, "learning": 0.0}
        self.eval_seconds, self.evals = 0.0, 0

    def update(self, step: int, eval_return: float | None = None, eval_seconds: float = 0.0) -> None:
        """`step` steps are done (and, with `eval_return`, an evaluation that took `eval_seconds`): count the time
        since the last call towards the phase of these steps, and print a line if one is due or an evaluation ran."""
        now = time.time()
        phase = "learning" if step > self.warmup else "warm-up"
        self.seconds[phase] += now - self.mark - eval_seconds
        self.steps[phase] += step - self.step
        self.step, self.mark = step, now
        if eval_return is not None:
            self.eval_seconds, self.evals = self.eval_seconds + eval_seconds, self.evals + 1
        if eval_return is not None or now >= self.next_print:
            self.next_print = now + self.every_s
            print(self.line(eval_return))

    def speed(self, phase: str) -> float | None:
        return self.steps[phase] / self.seconds[phase] if self.steps[phase] and self.seconds[phase] > 0 else None

    def line(self, eval_return: float | None = None) -> str:
        parts = [f"step {self.step:,}/{self.total:,} ({self.step / self.total:.1%})"]
        if eval_return is not None:
            parts.append(f"evaluation return {eval_return:.1f}")
        warm, learn = self.speed("warm-up"), self.speed("learning")
        if self.step < self.warmup:
            parts.append(f"random warm-up until step {self.warmup:,}" + (f" at {warm:,.0f} steps/s" if warm else ""))
        if learn is not None:
            parts.append(f"learning at {learn:,.0f} steps/s")
        if self.step < self.total:
            if learn is None:
                parts.append("time left: estimated once learning has started")
            else:
                left = (self.total - max(self.step, self.warmup)) / learn
                if self.step < self.warmup and warm:
                    left += (self.warmup - self.step) / warm
                if self.evals:
                    left += math.ceil((self.total - self.step) / self.eval_frequency) * self.eval_seconds / self.evals
                parts.append(f"about {duration(left)} left")
        return " | ".join(parts)


# Checkpoints: everything needed to continue a run exactly, written atomically. A checkpoint holds pickled
# python objects (RNG states, environment internals), so load only checkpoints you trust.
CHECKPOINT_FORMAT = 1
CHECKPOINT_FILES = ("checkpoint.pt", "checkpoint.prev.pt")
_PLAIN_STATE = (bool, int, float, str, type(None), np.ndarray, np.generic, np.random.Generator, collections.deque)


def _is_plain(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return isinstance(value, _PLAIN_STATE)


def _env_objects(env: object) -> list:
    """The env, then every wrapper and sub-environment under it (vector wrappers, sub-envs' wrappers), in order."""
    objects, queue = [], [env]
    while queue:
        obj = queue.pop(0)
        objects.append(obj)
        if isinstance(getattr(obj, "envs", None), (list, tuple)):
            queue.extend(obj.envs)
        elif vars(obj).get("env") is not None:
            queue.append(vars(obj)["env"])
    return objects


def env_state(env: object) -> list[dict]:
    """The dynamic state of a (vector) env, wrappers and sub-envs included: each object's plain attributes
    (counters, arrays, RNGs, deques), its spaces' RNGs, and the simulator state (MuJoCo physics, ALE emulator)."""
    states = []
    for obj in _env_objects(env):
        attrs = vars(obj)
        state = {
            "type": type(obj).__name__,
            "attrs": {k: copy.deepcopy(v) for k, v in attrs.items() if _is_plain(v)},
            "spaces": {k: copy.deepcopy(v._np_random) for k, v in attrs.items() if isinstance(v, gym.spaces.Space)},
        }
        if type(attrs.get("data")).__name__ == "MjData":
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION  # positions, velocities, controls, solver warm start, time
            state["mujoco"] = np.empty(mujoco.mj_stateSize(obj.model, spec))
            mujoco.mj_getState(obj.model, obj.data, state["mujoco"], spec)
        if attrs.get("ale") is not None:
            state["ale"] = obj.ale.cloneState(include_rng=True)
        states.append(state)
    return states


def set_env_state(env: object, states: list[dict]) -> None:
    """Put a (vector) env built like the saved one into the state `env_state` recorded."""
    objects = _env_objects(env)
    if [type(obj).__name__ for obj in objects] != [state["type"] for state in states]:
        raise BadInput("the environment's wrappers or number of sub-environments differ from the checkpoint's")
    for obj, state in zip(objects, states, strict=True):
        for key, value in state["attrs"].items():
            setattr(obj, key, copy.deepcopy(value))
        for key, rng in state["spaces"].items():
            vars(obj)[key]._np_random = copy.deepcopy(rng)
        if "mujoco" in state:
            import mujoco

            mujoco.mj_setState(obj.model, obj.data, state["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)
        if "ale" in state:
            obj.ale.restoreState(state["ale"])


SPARSE_COUNTERS = ("step", "last_mask_change", "updates", "train_flops", "dense_train_flops")


def sparse_state(sparse: SparseNetwork) -> dict:
    """What a resumed run needs of a SparseNetwork besides the weights: masks, ever-active sets, step, cost counters."""
    state = {"masks": {name: mask.clone() for name, mask in sparse.masks.items()}}
    state["ever_active"] = {name: ever.clone() for name, ever in sparse.ever_active.items()}
    return state | {key: getattr(sparse, key) for key in SPARSE_COUNTERS}


def load_sparse_state(sparse: SparseNetwork, state: dict) -> None:
    """Put `sparse_state`'s values back (BadInput if the masked layers differ); recount active weights and FLOPs."""
    shapes = {name: tuple(mask.shape) for name, mask in state["masks"].items()}
    if shapes != {name: tuple(mask.shape) for name, mask in sparse.masks.items()}:
        raise BadInput(f"masked layers {shapes} do not match this network's")
    for name, mask in sparse.masks.items():
        mask.copy_(state["masks"][name])  # in place: the cached mask list stays valid
        sparse.ever_active[name] = state["ever_active"][name].to(mask.device).clone()
    for key in SPARSE_COUNTERS:
        setattr(sparse, key, state[key])
    sparse.refresh_counts()


def save_checkpoint(run_dir: str, checkpoint: dict) -> str:
    """Write run_dir/checkpoint.pt atomically: to a temporary file, flushed to disk, then renamed over the old
    checkpoint, which is kept as checkpoint.prev.pt. A kill at any moment leaves a complete checkpoint."""
    path = os.path.join(run_dir, "checkpoint.pt")
    with open(path + ".tmp", "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        os.replace(path, os.path.join(run_dir, "checkpoint.prev.pt"))
    os.replace(path + ".tmp", path)
    return path


def checkpoint_run_dir(path: str, checkpoint: dict) -> str:
    """The folder of the run a checkpoint file continues: the folder holding the file when that folder has the run's
    name (a run folder moved or copied whole continues where it now is), else the folder the checkpoint was written
    in (a copy of the file taken out of its run folder continues the run it came from). Raise BadInput (one line)
    when neither exists."""
    name = os.path.basename(os.path.normpath(checkpoint["run_dir"]))
    here = os.path.dirname(path) or "."
    if os.path.basename(os.path.abspath(here)) == name:
        return here
    recorded = checkpoint.get("run_dir_abs")  # absent in checkpoints written before it was recorded
    if recorded is None or not os.path.isdir(recorded):
        raise BadInput(
            f"{path} is not in its run folder {name}, and that folder is not at {recorded or 'a recorded place'}: "
            f"to continue the run, put the checkpoint in a folder named {name} and resume that folder"
        )
    return recorded


def load_checkpoint(path: str, script: str) -> dict:
    """Read the checkpoint to resume from: a file, or the newest readable one in a run folder; its "run_dir" becomes
    the folder the run continues in (checkpoint_run_dir). Raise BadInput (one line) for a missing, truncated or
    corrupted file, a checkpoint of another script, a run folder that cannot be found, or a finished run."""
    if os.path.isdir(path):
        candidates = [os.path.join(path, name) for name in CHECKPOINT_FILES]
        candidates = [c for c in candidates if os.path.exists(c)]
        if not candidates:
            finished = os.path.exists(os.path.join(path, "summary.json"))
            raise BadInput(
                f"the run in {path} has finished (its summary.json is there): nothing to resume"
                if finished
                else f"no checkpoint.pt in {path}"
            )
    elif os.path.exists(path):
        candidates = [path]
    else:
        raise BadInput(f"no checkpoint at {path}")
    for candidate in candidates:  # the newest readable one; the last that cannot be read ends the search
        try:
            checkpoint = torch.load(candidate, map_location="cpu", weights_only=False)
            break
        except Exception as e:  # a truncated zip, a bad pickle: any failure means the file cannot be used
            problem = f"cannot read checkpoint {candidate} (truncated or corrupted: {type(e).__name__})"
            if candidate == candidates[-1]:
                raise BadInput(problem) from None
            print(f"note: {problem}; trying the previous one")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"{candidate} is not a checkpoint of this project (format {CHECKPOINT_FORMAT})")
    if checkpoint["script"] != script:
        raise BadInput(f"{candidate} is a checkpoint of {checkpoint['script']}.py, not of {script}.py")
    checkpoint["run_dir"] = checkpoint_run_dir(candidate, checkpoint)
    if os.path.exists(os.path.join(checkpoint["run_dir"], "summary.json")):
        # no checkpoint is written at the end, so resuming would redo the steps after this one and overwrite the
        # run's results
        raise BadInput(
            f"the run of {candidate} has finished ({checkpoint['run_dir']} holds its summary.json): nothing to resume"
        )
    return checkpoint


def resume_args(args: object, checkpoint: dict, given: set[str] | None = None) -> object:
    """The resumed run's arguments: the checkpoint's, except the checkpointing flags given now. Other flags given
    with --resume are ignored, and a note names each one whose value differs from the checkpoint's: changing them
    would change the run being continued. `given`: the names on the command line (command_line_flags); None (a call
    from Python) takes every argument that differs from its default as given."""
    keep = {"resume", "checkpoint_frequency", "checkpoint_buffer"}
    saved = {k: v for k, v in checkpoint["args"].items() if k not in keep and hasattr(args, k)}
    if given is None:
        defaults = type(args)(**{k: getattr(args, k) for k in keep if hasattr(args, k)})
        given = {k for k in saved if getattr(args, k) != getattr(defaults, k)}
    ignored = [k for k in saved if k in given and getattr(args, k) != saved[k]]
    if ignored:
        flags = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)} (the run's: {saved[k]})" for k in ignored)
        print(f"note: resuming with the checkpoint's settings; ignored: {flags}")
    return dataclasses.replace(args, **saved)


# --- end run infrastructure ---


if __name__ == "__main__":
    main(train, Args)
