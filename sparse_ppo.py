"""Sparse PPO, in one file.

PPO (Schulman et al. 2017) with a sparse actor and critic trained from scratch, as in [G]: CleanRL's
ppo_continuous_action.py (Gaussian policy, observation and reward normalization) and ppo.py (categorical policy) in
one file. RigL at 90% sparsity (ERK) by default; static masks, SET and gradual magnitude pruning through
--sparse-method, each with [G]'s tuned settings unless a flag overrides them.

[G] Graesser, Evci, Elsen, Castro, "The State of Sparse Training in Deep Reinforcement Learning", ICML 2022
    (code: google-research/rigl, rigl/rl);
[S] Sokar, Mocanu, Mocanu, Pechenizkiy, Stone, "Dynamic Sparse Training for Deep Reinforcement Learning",
    IJCAI 2022 (DS-TD3; code: GhadaSokar/Dynamic-Sparse-Training-for-Deep-Reinforcement-Learning).

Map of the file, in learning order: `Args`; the sparse-training section (masks, per-layer sparsities, init, SET / RigL /
gradual pruning, schedules, FLOP counts); PPO's agent and the bootstrap of truncated episodes; `train()`, its setup and
loop; what train() calls around it (environments, observation and reward normalization, evaluation, checks, tuned
settings: `resolve_args`); the optional sparse-kernels section; the run infrastructure (`Run`: logs, summaries,
checkpoints, resume; skip it on a first read). The three sections are the same text in every script. Results and
deviations from the papers: docs/ppo.md.
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

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.distributions.categorical import Categorical
from torch.distributions.normal import Normal
from torch.utils.tensorboard import SummaryWriter


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
    """whether to save weights, masks, normalization statistics and args to `runs/{run_name}/{exp_name}.pt`"""
    checkpoint_frequency: int = 0
    """environment steps between checkpoints (`runs/{run_name}/checkpoint.pt`), after a rollout's update; 0: none"""
    resume: str | None = None
    """continue the run of this checkpoint file or run folder, with the checkpoint's settings"""

    # Algorithm specific arguments. None: CleanRL's value for the action space, continuous (ppo_continuous_action.py,
    # [G]'s MuJoCo setup) or discrete (ppo.py); see docs/ppo.md.
    env_id: str = "HalfCheetah-v5"
    """the id of the environment (continuous or discrete actions, flat observations)"""
    total_timesteps: int | None = None
    """total environment steps; None: continuous 1,001,472 (489 rollouts of 2048, as [G]), discrete 500k"""
    learning_rate: float | None = None
    """Adam learning rate; None: continuous 3e-4, discrete 2.5e-4"""
    num_envs: int | None = None
    """parallel environments; None: continuous 1, discrete 4"""
    num_steps: int | None = None
    """steps per environment per rollout; None: continuous 2048, discrete 128"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int | None = None
    """minibatches per epoch; None: continuous 32, discrete 4"""
    update_epochs: int | None = None
    """epochs over each rollout; None: continuous 10, discrete 4"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """use a clipped value loss, as in the PPO paper"""
    ent_coef: float | None = None
    """entropy coefficient; None: continuous 0, discrete 0.01"""
    vf_coef: float = 0.5
    """value-loss coefficient"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""
    norm_obs: bool | None = None
    """normalize observations with running statistics (clipped to +-10); None: continuous yes, discrete no"""
    norm_reward: bool | None = None
    """scale rewards by the running std of discounted returns (clipped to +-10); None: continuous yes, discrete no"""
    hidden_width: int = 64
    """units in each of the two hidden layers of actor and critic; narrow it for a parameter-matched baseline"""
    eval_frequency: int = 20_000
    """environment steps between deterministic evaluations (at the end of the rollout that crosses it)"""
    eval_episodes: int = 10
    """episodes per evaluation"""

    # Sparse training (the same names in every script). None: [G]'s tuned PPO value for the method (docs/ppo.md).
    sparse_method: Literal["dense", "static", "set", "rigl", "prune"] = "rigl"
    """dense, static (fixed random mask), set (magnitude drop, random grow), rigl (gradient grow), prune"""
    sparsity: float = 0.9
    """overall sparsity of the actor and of the critic (each separately), in [0, 1)"""
    actor_sparsity: float | None = None
    """overrides --sparsity for the actor"""
    critic_sparsity: float | None = None
    """overrides --sparsity for the critic"""
    sparsity_distribution: Literal["uniform", "er", "erk"] = "erk"
    """how a network's sparsity is spread over its layers"""
    dense_first_layer: bool = False
    """keep each network's first layer dense (it still counts against the sparsity budget)"""
    dense_output_layer: bool = False
    """keep each network's output layer dense ([G] masks every layer)"""
    sparsity_aware_init: bool | None = None
    """re-initialize active weights with [G]'s sparsity-aware init; None: the method's tuned choice"""
    weight_decay: float | None = None
    """L2 weight decay on weight matrices (not biases); None: the method's tuned value"""
    update_interval: int | None = None
    """Delta T: gradient steps between topology updates or pruning steps; None: the method's tuned value"""
    drop_fraction: float | None = None
    """initial fraction of each layer's active weights replaced per update; None: the method's tuned value"""
    drop_schedule: Literal["cosine", "constant"] = "cosine"
    """drop-fraction schedule over the topology-update window"""
    update_start: int = 0
    """gradient step at which topology updates start"""
    update_end: int | None = None
    """gradient step after which topology updates stop; None: 80% of the gradient steps"""
    prune_start: int | None = None
    """gradient step at which gradual pruning starts; None: 32k of 156,480 gradient steps (as [G]), scaled"""
    prune_end: int | None = None
    """gradient step at which gradual pruning reaches its target; None: 120k of 156,480 (as [G]), scaled"""
    sparse_kernels: str = "off"
    """off; auto (masked Linear layers on sparse CSR kernels where timed faster); or a sparsity: those that sparse"""


# CleanRL's PPO settings, as (continuous, discrete) pairs by the kind of action space; a flag left at None takes them.
SETTINGS_BY_PROTOCOL = dict(
    total_timesteps=(489 * 2048, 500_000),
    learning_rate=(3e-4, 2.5e-4),
    num_envs=(1, 4),
    num_steps=(2048, 128),
    num_minibatches=(32, 4),
    update_epochs=(10, 4),
    ent_coef=(0.0, 0.01),
    norm_obs=(True, False),
    norm_reward=(True, False),
)
PROTOCOLS = {
    kind: {k: v[i] for k, v in SETTINGS_BY_PROTOCOL.items()} for i, kind in enumerate(("continuous", "discrete"))
}
# [G]'s tuned PPO settings per method (its appendix's hyperparameter tables).
TUNED = {
    "dense": dict(weight_decay=1e-6, update_interval=1000, drop_fraction=0.0, sparsity_aware_init=False),
    "static": dict(weight_decay=0.0, update_interval=1000, drop_fraction=0.0, sparsity_aware_init=True),
    "prune": dict(weight_decay=1e-6, update_interval=500, drop_fraction=0.0, sparsity_aware_init=False),
    "rigl": dict(weight_decay=1e-4, update_interval=250, drop_fraction=0.3, sparsity_aware_init=True),
    "set": dict(weight_decay=1e-6, update_interval=100, drop_fraction=0.0, sparsity_aware_init=True),
}
# [G]'s pruning window: gradient steps 32k to 120k of 489 rollouts x 10 epochs x 32 minibatches = 156,480.
PRUNE_WINDOW = (32_000 / 156_480, 120_000 / 156_480)


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

SCRIPT = "sparse_ppo"  # checkpoints name the script that wrote them


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate actor and critic MLPs (tanh), CleanRL's orthogonal init. The actor outputs action means (a Gaussian
    with state-independent log-std) or logits (categorical)."""

    def __init__(self, obs_dim: int, act_dim: int, width: int, continuous: bool) -> None:
        super().__init__()
        self.continuous = continuous

        def mlp(n_out: int, out_std: float) -> nn.Sequential:
            hidden = [layer_init(nn.Linear(obs_dim, width)), nn.Tanh(), layer_init(nn.Linear(width, width)), nn.Tanh()]
            return nn.Sequential(*hidden, layer_init(nn.Linear(width, n_out), std=out_std))

        self.critic, self.actor = mlp(1, 1.0), mlp(act_dim, 0.01)
        # 1-D so that weight decay (weight matrices only) leaves it alone
        self.actor_logstd = nn.Parameter(torch.zeros(act_dim)) if continuous else None

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def distribution(self, x: torch.Tensor) -> torch.distributions.Distribution:
        out = self.actor(x)
        if self.continuous:
            return Normal(out, self.actor_logstd.expand_as(out).exp())
        return Categorical(logits=out)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dist = self.distribution(x)
        if action is None:
            action = dist.sample()
        log_prob, entropy = dist.log_prob(action), dist.entropy()
        if self.continuous:
            log_prob, entropy = log_prob.sum(1), entropy.sum(1)
        return action, log_prob, entropy, self.critic(x)

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        out = self.actor(x)
        return out if self.continuous else out.argmax(dim=-1)


@torch.no_grad()
def bootstrap_truncations(
    reward: torch.Tensor,
    terminations: np.ndarray,
    truncations: np.ndarray,
    infos: dict,
    gamma: float,
    value_of: Callable[[np.ndarray], torch.Tensor],
) -> None:
    """A time-limit truncation is not a terminal state: add gamma * V(true final observation) to the reward of every
    env truncated (not terminated) at this step, in place. With SAME_STEP autoreset the final observations are in
    infos["final_obs"]; `value_of` maps raw observations to values. (CleanRL's PPO treats truncation as termination.)"""
    truncated = np.flatnonzero(truncations & ~terminations)
    if len(truncated):
        final = np.stack([infos["final_obs"][i] for i in truncated])
        reward[truncated] += gamma * value_of(final)


def train(args: Args, given: set[str] | None = None) -> dict:
    """Train PPO with the chosen sparse method; returns the end-of-run summary (also written to summary.json).
    `given`: the flags named on the command line, for the note on flags a resumed run ignores (resume_args)."""
    flags, checkpoint = load_run(args, SCRIPT, given)
    continuous = check_env(flags.env_id)
    settings = resolve_args(flags, continuous)
    args = resolved(flags, settings)  # the protocol's and the method's settings in place of the flags left at None
    # Gradient steps: update_epochs x num_minibatches per rollout; every schedule counts them.
    grad_steps = args.num_iterations * args.update_epochs * args.num_minibatches
    prune_window = [int(fraction * grad_steps) for fraction in PRUNE_WINDOW]
    schedule = topology_schedule(args, grad_steps, int(0.8 * grad_steps), *prune_window, "80% of the gradient steps")
    run = Run(SCRIPT, flags, checkpoint, {"settings": settings})
    device = run.device

    envs = make_envs(args, run.name)  # SAME_STEP autoreset: truncations bootstrap from V(true final obs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape)) if continuous else int(envs.single_action_space.n)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    return_rms = RunningMeanStd() if args.norm_reward else None
    discounted_return = np.zeros(args.num_envs)

    agent = Agent(obs_dim, act_dim, args.hidden_width, continuous).to(device)
    example_obs = torch.zeros(1, obs_dim, device=device)
    kwargs = sparse_kwargs(args, args.minibatch_size, schedule)
    actor_sparse = SparseNetwork(agent.actor, (example_obs,), sparsity=args.actor_sparsity, **kwargs)
    critic_sparse = SparseNetwork(agent.critic, (example_obs,), sparsity=args.critic_sparsity, **kwargs)
    sparse_nets = {"actor": actor_sparse, "critic": critic_sparse}
    # Fused Adam: no slow path on the zeros that inactive weights leave in exp_avg_sq (see docs/td3.md); eps: CleanRL's
    groups = weight_decay_groups([agent], args.weight_decay)
    optimizer = torch.optim.Adam(groups, lr=args.learning_rate, eps=1e-5, fused=True)

    # Rollout storage
    n, e = args.num_steps, args.num_envs
    obs = torch.zeros((n, e, obs_dim), device=device)
    actions = torch.zeros((n, e, act_dim) if continuous else (n, e), device=device)
    logprobs, rewards, dones, values = (torch.zeros((n, e), device=device) for _ in range(4))

    def prepare_obs(raw: np.ndarray, update: bool) -> torch.Tensor:
        """The networks' input: raw observations normalized by the running statistics (updated first if `update`)."""
        if obs_rms is not None:
            if update:
                obs_rms.update(raw)
            raw = obs_rms.normalize(raw)
        return torch.as_tensor(raw, dtype=torch.float32, device=device)

    def value_of(raw: np.ndarray) -> torch.Tensor:
        """V of raw observations (final observations of truncated episodes): normalized, statistics left alone."""
        return agent.get_value(prepare_obs(raw, False)).flatten()

    eval_env = gym.make(args.env_id)
    global_step, grad_step = 0, 0
    raw_obs, _ = envs.reset(seed=args.seed)
    next_obs = prepare_obs(raw_obs, True)
    next_done = torch.zeros(e, device=device)
    low, high = (envs.single_action_space.low, envs.single_action_space.high) if continuous else (None, None)

    def loop_state() -> dict:
        """What the loop carries from one rollout to the next: a checkpoint saves it, a resumed run starts from it."""
        steps = {"global_step": global_step, "grad_step": grad_step, "next_obs": next_obs, "next_done": next_done}
        return {**steps, "discounted_return": discounted_return}

    # The normalization statistics are saved and restored with the networks (plain arrays: state_dict).
    stats = {name: rms for name, rms in (("obs_rms", obs_rms), ("return_rms", return_rms)) if rms is not None}
    modules, optimizers = {"agent": agent, **stats}, {"optimizer": optimizer}
    start_iteration, state = run.restore(modules, optimizers, sparse_nets, envs, None, loop_state)
    global_step, grad_step, next_obs, next_done, discounted_return = state.values()
    next_obs, next_done = next_obs.to(device), next_done.to(device)
    # The checkpoint comes after its rollout's update, which logged at its step: the next rollout logs after it.
    writer = run.open(args.num_iterations * args.batch_size, 0, args.eval_frequency, args.eval_episodes, purge_after=1)
    run.clock.learning()  # PPO learns from its first step

    for iteration in range(max(1, start_iteration), args.num_iterations + 1):  # rollouts count from 1
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            for group in optimizer.param_groups:
                group["lr"] = frac * args.learning_rate

        for step in range(n):
            global_step += e
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob

            env_action = action.cpu().numpy()
            if continuous:
                env_action = np.clip(env_action, low, high)  # the unclipped sample is what the policy is trained on
            raw_obs, reward, terminations, truncations, infos = envs.step(env_action)
            done = np.logical_or(terminations, truncations)
            if return_rms is not None:  # reward scaling by the std of the discounted return (gymnasium's way)
                discounted_return = discounted_return * args.gamma * (1 - terminations) + reward
                return_rms.update(discounted_return)
                reward = np.clip(reward / np.sqrt(return_rms.var + 1e-8), -10.0, 10.0)
                discounted_return[done] = 0.0
            reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
            bootstrap_truncations(reward, terminations, truncations, infos, args.gamma, value_of)
            rewards[step] = reward
            next_obs = prepare_obs(raw_obs, True)
            next_done = torch.as_tensor(done, dtype=torch.float32, device=device)

            if "episode" in infos:
                for i in np.flatnonzero(infos["_episode"]):
                    writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                    writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)

        # Generalized advantage estimation; an episode end (termination or truncation) cuts the recursion.
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(n)):
                if t == n - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs = obs.reshape((-1, obs_dim))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1, act_dim) if continuous else (-1,))
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)

        b_inds = np.arange(args.batch_size)
        clipfracs = []
        for _ in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start : start + args.minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append((ratio - 1.0).abs().gt(args.clip_coef).float().mean())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                grad_step += 1
                # The sparse step: a due SET / RigL drop-and-grow or pruning step (RigL reads the dense gradient), then
                # inactive weights lose their gradients so the optimizer cannot move them.
                # Masked before clipping, so the gradient norm counts active weights only.
                for sparse_net in (actor_sparse, critic_sparse):
                    sparse_net.update_topology_if_due(optimizer)
                    sparse_net.mask_gradients()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                if grad_step % args.update_interval == 0:
                    log_sparsity(writer, sparse_nets, global_step)

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", torch.stack(clipfracs).mean().item(), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("charts/SPS", int(global_step / run.clock.learning_s()), global_step)

        last = iteration == args.num_iterations
        run.evaluate_if_due(
            global_step, last, lambda: evaluate(agent, eval_env, args.eval_episodes, obs_rms, args.seed + 100, device)
        )
        run.checkpoint_if_due(global_step, iteration + 1, last)
        run.progress.update(global_step)

    model = dict(obs_dim=obs_dim, act_dim=act_dim, continuous=continuous, obs_rms=obs_rms and obs_rms.state_dict())
    # PPO learns on every step; its speed is environment steps per second, evaluation excluded
    return run.finish(global_step, global_step, model, close=(envs, eval_env))


def make_envs(args: types.SimpleNamespace, run_name: str) -> gym.vector.VectorEnv:
    """The training envs, with episode statistics of the raw rewards; env i's action space is seeded with seed + i,
    and with --capture-video env 0 records videos. SAME_STEP autoreset: a finished env is reset within the same step
    and its true final observation is in infos["final_obs"], so a rollout has no placeholder steps and truncations
    can bootstrap from V(final obs)."""

    def make_env(i: int) -> gym.Env:
        if args.capture_video and i == 0:
            env = gym.wrappers.RecordVideo(gym.make(args.env_id, render_mode="rgb_array"), f"videos/{run_name}")
        else:
            env = gym.make(args.env_id)
        env.action_space.seed(args.seed + i)
        return env

    thunks = [lambda i=i: make_env(i) for i in range(args.num_envs)]
    envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


class RunningMeanStd:
    """Running mean and variance over batches (Chan et al.'s parallel update), as gymnasium's normalization uses."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


def evaluate(
    agent: Agent, env: gym.Env, episodes: int, obs_rms: RunningMeanStd | None, seed: int, device: torch.device
) -> np.ndarray:
    """Deterministic evaluation (mean action or argmax), observations normalized with the frozen training
    statistics; episode i is reset with seed + i."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, episode_return = False, 0.0
        while not done:
            x = obs_rms.normalize(obs) if obs_rms is not None else obs
            with torch.no_grad():
                action = agent.act_deterministic(torch.as_tensor(x, dtype=torch.float32, device=device)[None])[0]
            action = action.cpu().numpy()
            if agent.continuous:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    return np.array(returns)


def check_env(env_id: str) -> bool:
    """Refuse (BadInput, one line) an environment this PPO cannot train on; return whether its actions are
    continuous (Box) rather than discrete."""
    if is_atari_id(env_id):
        raise BadInput(
            f"{env_id} is an Atari game: PPO here trains on environments with flat observation vectors and Box "
            "or Discrete actions (MuJoCo, classic control); for Atari use sparse_dqn_atari.py"
        )
    probe = make_probe(env_id)
    continuous = isinstance(probe.action_space, gym.spaces.Box)
    if not continuous and not isinstance(probe.action_space, gym.spaces.Discrete):
        raise BadInput(
            f"{env_id} has a {type(probe.action_space).__name__} action space; PPO here needs Box or Discrete"
        )
    if len(probe.observation_space.shape or ()) != 1:
        raise BadInput(
            f"{env_id} has observations of shape {probe.observation_space.shape}; this PPO needs flat vectors"
        )
    probe.close()
    return continuous


def resolve_args(args: Args, continuous: bool) -> dict:
    """Validate the arguments; return every setting: the flag's value, or the protocol's or method's tuned one, and
    the values derived from them (each network's sparsity, the batch and minibatch sizes, the number of rollouts)."""
    defaults = {**PROTOCOLS["continuous" if continuous else "discrete"], **TUNED[args.sparse_method]}
    c = {key: value if getattr(args, key) is None else getattr(args, key) for key, value in defaults.items()}
    sparsity = network_sparsities(resolved(args, c))
    c["actor_sparsity"], c["critic_sparsity"] = sparsity["actor"], sparsity["critic"]
    names = ("total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden_width")
    check_at_least_one(resolved(args, c), (*names, "eval_frequency", "eval_episodes"))
    c["batch_size"] = c["num_envs"] * c["num_steps"]
    if c["batch_size"] % c["num_minibatches"]:
        raise BadInput(f"--num-envs x --num-steps ({c['batch_size']}) must be divisible by --num-minibatches")
    c["minibatch_size"] = c["batch_size"] // c["num_minibatches"]
    c["num_iterations"] = c["total_timesteps"] // c["batch_size"]
    if c["num_iterations"] < 1:
        raise BadInput(f"--total-timesteps ({c['total_timesteps']}) is less than one rollout ({c['batch_size']} steps)")
    if c["weight_decay"] < 0:
        raise BadInput(f"--weight-decay must be non-negative, got {c['weight_decay']}")
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
