# Docs and results: docs/td3.md. TD3 (Fujimoto et al. 2018) with dynamic sparse training: DS-TD3 (Sokar et al.,
# IJCAI 2022) by default, and every method of Graesser et al. (ICML 2022) through --sparse-method.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal, NoReturn

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter

# Flush denormal floats to zero. Weights and Adam moments of units that stop receiving gradient (dead ReLUs) decay
# into the denormal range over a long run, and CPU arithmetic on denormals is up to ~60x slower: without this a 1M-step
# run slowed to a crawl after ~50k steps. Values below 1.2e-38 do not matter to learning.
torch.set_flush_denormal(True)


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
    """store the replay buffer in checkpoints (large); without it a resumed run first refills the buffer"""
    resume: str | None = None
    """continue the run of this checkpoint file or run folder, with the checkpoint's settings"""

    # Algorithm specific arguments (defaults: DS-TD3, Sokar et al. 2022)
    env_id: str = "HalfCheetah-v5"
    """the id of the environment (a continuous-action gymnasium env)"""
    total_timesteps: int = 1_000_000
    """total environment steps of the experiment"""
    learning_rate: float = 1e-3
    """the learning rate of both Adam optimizers"""
    weight_decay: float = 2e-4
    """L2 weight decay on weight matrices (not biases), added to the gradient as in torch's Adam"""
    num_envs: int = 1
    """the number of parallel environments (one gradient step per vector step)"""
    buffer_size: int = 1_000_000
    """the replay memory buffer size"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient"""
    batch_size: int = 100
    """the batch size of sample from the replay memory"""
    policy_noise: float = 0.2
    """the scale of the target policy smoothing noise (times the action scale)"""
    exploration_noise: float = 0.1
    """the scale of the exploration noise (times the action scale)"""
    learning_starts: int = 25_000
    """environment steps of uniformly random actions before learning starts"""
    policy_frequency: int = 2
    """the frequency of training the policy (delayed), in critic updates"""
    noise_clip: float = 0.5
    """noise clip parameter of the target policy smoothing regularization"""
    hidden_width: int = 256
    """units in each of the two hidden layers; narrow it for a parameter-matched dense baseline"""
    eval_frequency: int = 5_000
    """environment steps between deterministic evaluations"""
    eval_episodes: int = 10
    """episodes per evaluation"""

    # Sparse training (the same names in every script)
    sparse_method: Literal["dense", "static", "set", "rigl", "prune"] = "set"
    """dense, static (fixed random mask), set (magnitude drop, random grow), rigl (gradient grow), prune"""
    sparsity: float = 0.5
    """overall sparsity of each network (actor and each critic separately), in [0, 1)"""
    actor_sparsity: float | None = None
    """overrides --sparsity for the actor"""
    critic_sparsity: float | None = None
    """overrides --sparsity for each critic"""
    sparsity_distribution: Literal["uniform", "er", "erk"] = "er"
    """how a network's sparsity is spread over its layers"""
    dense_first_layer: bool = False
    """keep each network's first layer dense (it still counts against the sparsity budget)"""
    dense_output_layer: bool = True
    """keep each network's output layer dense, as DS-TD3 does ([G] masks it: --no-dense-output-layer)"""
    sparsity_aware_init: bool | None = None
    """re-initialize active weights with [G]'s sparsity-aware Glorot-uniform init; None: off, as DS-TD3"""
    update_interval: int = 1_000
    """Delta T: critic gradient steps between topology updates (set, rigl) or pruning steps (prune)"""
    drop_fraction: float = 0.05
    """fraction of each layer's active weights dropped and regrown per topology update (initial value if cosine)"""
    drop_schedule: Literal["cosine", "constant"] = "constant"
    """drop-fraction schedule over the topology-update window"""
    update_start: int = 0
    """critic gradient step at which topology updates start"""
    update_end: int | None = None
    """critic gradient step after which topology updates stop; None: gradient steps - 50k, as DS-TD3"""
    prune_start: int | None = None
    """critic gradient step at which gradual pruning starts; None: 20% of the gradient steps"""
    prune_end: int | None = None
    """critic gradient step at which gradual pruning reaches its target; None: 80% of the gradient steps"""


# --- sparse training (identical in every script) ---
# Masks, topology updates, pruning and cost accounting for the Linear and Conv2d weights of any torch module.
# The recipe: a network keeps dense weight tensors plus one float 0/1 mask per sparse layer. Inactive weights are
# exactly zero and stay zero because their gradients are zeroed before every optimizer step (one elementwise op per
# layer) and their optimizer moments are zero, so neither Adam nor L2 weight decay can move them. Biases are never
# masked. Formulas and conventions follow shared SPEC sections 1, 2 and 5 (RigL's and [G]'s code).
SPARSE_METHODS = ("dense", "static", "set", "rigl", "prune")
SPARSITY_DISTRIBUTIONS = ("uniform", "er", "erk")
DROP_SCHEDULES = ("cosine", "constant")


def maskable_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The Linear and Conv2d layers of `net` in registration order; the first and last are its input and output."""
    return {name: m for name, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def active_count(numel: int, sparsity: float) -> int:
    """Active weights of a layer at `sparsity`; as RigL, the number of zeros is floor(sparsity * numel)."""
    return numel - math.floor(sparsity * numel)


def layer_sparsities(
    shapes: dict[str, tuple[int, ...]], sparsity: float, distribution: str, dense_layers: set[str] = frozenset()
) -> dict[str, float]:
    """Per-layer sparsities giving one network the overall `sparsity` (SPEC section 2).

    uniform: every sparse layer gets `sparsity`. er / erk: density = eps * p_l with p_l = sum(shape) / prod(shape)
    (erk: every dimension of a conv kernel; er: only its two channel dimensions), eps solved so the network keeps
    (1 - sparsity) of its weights; layers in `dense_layers` are dense and spend part of that budget. When eps * p_l
    would exceed 1, the layers with the largest p_l become dense and eps is solved again.
    """
    if distribution == "uniform":
        return {name: 0.0 if name in dense_layers else sparsity for name in shapes}
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
            raise ValueError(f"sparsity {sparsity} cannot be reached with layers {sorted(dense)} kept dense")
        p_max = max(raw.values())
        if eps * p_max <= 1.0:
            break
        dense |= {name for name, p in raw.items() if p == p_max}
    return {name: 0.0 if name in dense else 1.0 - eps * raw[name] for name in shapes}


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


def check_sparse_args(
    method: str,
    sparsities: dict[str, float],
    distribution: str,
    drop_fraction: float,
    drop_schedule: str,
    update_interval: int,
) -> None:
    """Raise ValueError with a one-line message for a sparse setting no network can be built with."""
    if method not in SPARSE_METHODS:
        raise ValueError(f"unknown --sparse-method {method!r}; choose one of {', '.join(SPARSE_METHODS)}")
    if distribution not in SPARSITY_DISTRIBUTIONS:
        raise ValueError(f"unknown --sparsity-distribution {distribution!r}; choose one of {SPARSITY_DISTRIBUTIONS}")
    if drop_schedule not in DROP_SCHEDULES:
        raise ValueError(f"unknown --drop-schedule {drop_schedule!r}; choose one of {', '.join(DROP_SCHEDULES)}")
    for flag, value in sparsities.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"--{flag} must be in [0, 1), got {value}")
    if not 0.0 <= drop_fraction <= 1.0:
        raise ValueError(f"--drop-fraction must be in [0, 1], got {drop_fraction}")
    if update_interval < 1:
        raise ValueError(f"--update-interval must be at least 1, got {update_interval}")


class SparseNetwork:
    """The masks, sparse-training schedule and cost counters of one network (an actor, one critic, a Q-network).

    Use: build it right after the network (it draws the masks and zeroes the inactive weights), then on every
    gradient step of that network call `prepare_step(optimizer)` between `loss.backward()` and `optimizer.step()`.
    Steps count this network's own gradient updates. A target copy stays as sparse as the online network with
    `apply_masks_(self.weights_of(target))` after each soft update.
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
    ) -> None:
        self.method, self.batch_size = method, batch_size
        self.update_interval, self.drop_fraction, self.drop_schedule = update_interval, drop_fraction, drop_schedule
        self.update_start, self.update_end = update_start, update_end
        self.prune_start, self.prune_end = prune_start, prune_end
        self.layers = maskable_layers(net)
        names = list(self.layers)
        dense = {names[0]} if dense_first_layer else set()
        dense |= {names[-1]} if dense_output_layer else set()
        shapes = {name: tuple(layer.weight.shape) for name, layer in self.layers.items()}
        if method == "dense":
            self.target_sparsity = dict.fromkeys(names, 0.0)
        else:
            self.target_sparsity = layer_sparsities(shapes, sparsity, distribution, dense)
        self.masks: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, layer in self.layers.items():
                if self.target_sparsity[name] == 0.0:
                    continue  # dense layer: no mask, no extra work
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
        self.step = 0
        self.last_mask_change = 0.0
        self.updates = 0
        self.train_flops = 0.0
        self.dense_train_flops = 0.0
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
        self._refresh_counts()

    def weights_of(self, other: nn.Module) -> list[torch.Tensor]:
        """The weights of the layers of `other` (a copy of this network) that this network masks, in mask order."""
        layers = maskable_layers(other)
        return [layers[name].weight for name in self.masks]

    @torch.no_grad()
    def apply_masks_(self, weights: list[torch.Tensor] | None = None) -> None:
        """Zero the inactive positions of `weights` (default: this network's own): one op for all layers."""
        if self._mask_list:
            torch._foreach_mul_(self._weights if weights is None else weights, self._mask_list)

    def forward_flops(self, dense: bool = False) -> float:
        """Inference FLOPs per sample (SPEC section 5): per output position, nnz(W) multiplies, nnz(W) - n_out adds,
        n_out bias adds and n_out activation FLOPs (no activation counted after the last layer)."""
        total = 0.0
        last = list(self.layers)[-1]
        for name, layer in self.layers.items():
            w = layer.weight
            nnz = w.numel() if dense or name not in self.masks else self._nnz[name]
            n_out = w.shape[0]
            flops = 2 * nnz - n_out + (n_out if layer.bias is not None else 0) + (n_out if name != last else 0)
            total += flops * self._positions[name]
        return total

    def _refresh_counts(self) -> None:
        self._nnz = {name: int(mask.sum().item()) for name, mask in self.masks.items()}
        self.flops = self.forward_flops()

    def _due(self, start: int, end: int) -> bool:
        return start <= self.step <= end and (self.step - start) % self.update_interval == 0

    @torch.no_grad()
    def prepare_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Count one gradient step, update the topology if one is due, add the step's training FLOPs, and zero the
        gradients of inactive weights. Call between backward() and optimizer.step(). Returns True on a mask update."""
        self.step += 1
        updated = False
        if self.method in ("set", "rigl") and self.masks and self._due(self.update_start, self.update_end):
            self._drop_and_grow(optimizer)
            updated = True
        elif (
            self.method == "prune"
            and self.masks
            and (self._due(self.prune_start, self.prune_end) or self.step == self.prune_end)
        ):
            self._prune(optimizer)
            updated = True
        if self.method == "rigl" and self.step <= self.update_end:
            # RigL's dense gradient every Delta T steps, spread over the steps (SPEC section 5)
            dt = self.update_interval
            step_flops = (3 * self.flops * dt + 2 * self.flops + self.dense_flops) / (dt + 1)
        else:
            step_flops = 3 * self.flops
        self.train_flops += step_flops * self.batch_size
        self.dense_train_flops += 3 * self.dense_flops * self.batch_size
        if self._mask_list:
            torch._foreach_mul_([w.grad for w in self._weights], self._mask_list)
        return updated

    def _drop_and_grow(self, optimizer: torch.optim.Optimizer) -> None:
        """SET / RigL: per layer drop the k smallest-|w| active weights and grow k inactive ones, k = f(t) * nnz.
        Growth is random (set) or by the largest |dense gradient| of the current minibatch (rigl)."""
        fraction = drop_fraction_at(self.step, self.drop_fraction, self.update_end, self.drop_schedule)
        new_masks = {}
        for name, mask in self.masks.items():
            w = self.layers[name].weight
            k = math.floor(fraction * self._nnz[name])
            active = mask.bool().flatten()
            if k == 0:
                new_masks[name] = active.view_as(w)
                continue
            drop_score = torch.where(active, w.abs().flatten(), torch.inf)
            kept = active.clone()
            kept[torch.topk(drop_score, k, largest=False).indices] = False
            if self.method == "rigl":
                if w.grad is None:
                    raise RuntimeError("rigl needs the dense gradient: call prepare_step after loss.backward()")
                grow_score = w.grad.abs().flatten().clone()
            else:
                grow_score = torch.rand(w.numel(), device=w.device)
            # Only positions not kept are candidates: a just-dropped position may come back (and keeps its value).
            grow_score.masked_fill_(kept, -torch.inf)
            kept[torch.topk(grow_score, k).indices] = True
            new_masks[name] = kept.view_as(w)
        self._set_masks(new_masks, optimizer)

    def _prune(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradual magnitude pruning: each layer keeps its top-|w| weights for its scheduled sparsity."""
        new_masks = {}
        for name, mask in self.masks.items():
            w = self.layers[name].weight
            s = pruning_sparsity_at(self.step, self.target_sparsity[name], self.prune_start, self.prune_end)
            score = torch.where(mask.bool(), w.abs(), -1.0).flatten()  # pruned weights never come back
            keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
            keep[torch.topk(score, active_count(w.numel(), s)).indices] = True
            new_masks[name] = keep.view_as(w)
        self._set_masks(new_masks, optimizer)

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
            before += self._nnz[name]
            self.masks[name].copy_(new)  # in place: the cached mask list stays valid
            self.ever_active[name] |= new
        self.last_mask_change = removed / max(before, 1)
        self.updates += 1
        self._refresh_counts()

    def state_dict(self) -> dict:
        """What a resumed run needs besides the weights: masks, ever-active sets, the step and cost counters."""
        return {
            "masks": {name: mask.clone() for name, mask in self.masks.items()},
            "ever_active": {name: ever.clone() for name, ever in self.ever_active.items()},
            "step": self.step,
            "last_mask_change": self.last_mask_change,
            "updates": self.updates,
            "train_flops": self.train_flops,
            "dense_train_flops": self.dense_train_flops,
        }

    def load_state_dict(self, state: dict) -> None:
        shapes = {name: tuple(mask.shape) for name, mask in state["masks"].items()}
        if shapes != {name: tuple(mask.shape) for name, mask in self.masks.items()}:
            raise ValueError(f"masked layers {shapes} do not match this network's")
        for name, mask in self.masks.items():
            mask.copy_(state["masks"][name])  # in place: the cached mask list stays valid
            self.ever_active[name] = state["ever_active"][name].to(mask.device).clone()
        self.step, self.last_mask_change, self.updates = state["step"], state["last_mask_change"], state["updates"]
        self.train_flops, self.dense_train_flops = state["train_flops"], state["dense_train_flops"]
        self._refresh_counts()

    def active_weights(self) -> int:
        return sum(self._nnz.get(name, layer.weight.numel()) for name, layer in self.layers.items())

    def total_weights(self) -> int:
        return sum(layer.weight.numel() for layer in self.layers.values())

    def stats(self) -> dict[str, float]:
        """Scalars for the logs: per-layer density, overall density, mask change of the last update, fraction of
        weights ever active, inference FLOPs per sample and cumulative training FLOPs (also relative to dense)."""
        out = {
            f"density/{name}": self._nnz.get(name, layer.weight.numel()) / layer.weight.numel()
            for name, layer in self.layers.items()
        }
        total = self.total_weights()
        ever = sum(
            int(self.ever_active[name].sum().item()) if name in self.masks else layer.weight.numel()
            for name, layer in self.layers.items()
        )
        out.update(
            {
                "density": self.active_weights() / total,
                "mask_change": self.last_mask_change,
                "ever_active": ever / total,
                "inference_flops": self.flops,
                "train_flops": self.train_flops,
                "train_flops_vs_dense": self.train_flops / max(self.dense_train_flops, 1.0),
            }
        )
        return out


def log_sparsity(writer: SummaryWriter, sparse_nets: dict[str, SparseNetwork], step: int) -> None:
    """Write every network's sparsity scalars under sparsity/<net>/, and all networks' training FLOPs relative to
    dense under sparsity/train_flops_vs_dense."""
    for net_name, sparse in sparse_nets.items():
        for key, value in sparse.stats().items():
            writer.add_scalar(f"sparsity/{net_name}/{key}", value, step)
    dense_flops = sum(s.dense_train_flops for s in sparse_nets.values())
    if dense_flops > 0:
        ratio = sum(s.train_flops for s in sparse_nets.values()) / dense_flops
        writer.add_scalar("sparsity/train_flops_vs_dense", ratio, step)


def run_summary(sparse_nets: dict[str, SparseNetwork], evaluations: list[tuple[int, float]]) -> dict:
    """The end-of-run figures every script reports: evaluation returns (final, mean of the last 10 as [S] reports,
    learning-curve area = mean / 1e4 as [S] defines it), weights and FLOPs per network, training FLOPs vs dense."""
    dense_flops = sum(s.dense_train_flops for s in sparse_nets.values())
    returns = [r for _, r in evaluations]
    return {
        "final_eval_return": returns[-1],
        "mean_last_10_evals": float(np.mean(returns[-10:])),
        "lca": float(np.mean(returns)) / 1e4,
        "evaluations": evaluations,
        "networks": {
            name: {
                "active_weights": s.active_weights(),
                "total_weights": s.total_weights(),
                "inference_flops": s.flops,
                "topology_updates": s.updates,
            }
            for name, s in sparse_nets.items()
        },
        "train_flops_vs_dense": sum(s.train_flops for s in sparse_nets.values()) / dense_flops if dense_flops else 1.0,
    }


def print_summary(summary: dict) -> None:
    """The end-of-run printout: final evaluation return, active/total weights per network, training FLOPs vs dense."""
    print(
        f"=== {summary['script']} {summary['sparse_method']} on {summary['env_id']}, seed {summary['seed']}, "
        f"{summary['total_timesteps']} steps ==="
    )
    print(
        f"final evaluation return {summary['final_eval_return']:.1f}; "
        f"mean of the last 10 evaluations {summary['mean_last_10_evals']:.1f}"
    )
    for name, net in summary["networks"].items():
        print(
            f"{name:>9}: {net['active_weights']}/{net['total_weights']} weights active "
            f"({1 - net['active_weights'] / net['total_weights']:.1%} sparse), "
            f"{net['inference_flops']:.0f} inference FLOPs per forward pass"
        )
    print(f"training FLOPs relative to dense: {summary['train_flops_vs_dense']:.3f}x")


def check_optional_dependencies(track: bool, capture_video: bool) -> None:
    """Raise ValueError (one line) when --track or --capture-video is asked for without its package installed."""
    for wanted, module, flag in ((track, "wandb", "--track"), (capture_video, "moviepy", "--capture-video")):
        if wanted:
            try:
                __import__(module)
            except ImportError:
                raise ValueError(f"{flag} needs {module}: pip install {module}") from None


def fail(message: str) -> NoReturn:
    """Stop before training with a one-line error."""
    sys.exit(f"error: {message}")


def start_run(
    args: object, settings: dict, checkpoint: dict | None = None
) -> tuple[str, str, SummaryWriter, torch.device]:
    """Name the run, open its tensorboard writer (and wandb with --track), record every argument and resolved
    setting, seed python, numpy and torch, and pick the device. Returns (run_name, run_dir, writer, device).
    Resuming from `checkpoint` reopens its run folder; tensorboard drops what was logged after the checkpoint."""
    env_name = args.env_id.replace("/", "_")
    run_name = f"{env_name}__{args.exp_name}__{args.sparse_method}__{args.seed}__{int(time.time())}"
    run_dir = f"runs/{run_name}"
    if checkpoint is not None:
        run_dir = checkpoint["run_dir"]
        run_name = os.path.basename(os.path.normpath(run_dir))
    config = {**vars(args), **settings}
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=config,
            name=run_name,
            id=hashlib.sha1(run_name.encode()).hexdigest()[:16],  # fixed by the name: a resumed run continues it
            resume="allow",
            monitor_gym=True,
            save_code=True,
        )
    writer = SummaryWriter(run_dir, purge_step=None if checkpoint is None else checkpoint["global_step"])
    table = "\n".join(f"|{key}|{value}|" for key, value in config.items())
    if checkpoint is None:
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    return run_name, run_dir, writer, device


# Checkpoints: everything needed to continue a run exactly, written atomically. A checkpoint holds pickled
# python objects (RNG states, environment internals), so load only checkpoints you trust.
CHECKPOINT_FORMAT = 1
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
        raise ValueError("the environment's wrappers or number of sub-environments differ from the checkpoint's")
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


def make_checkpoint(
    script: str,
    args: object,
    run_dir: str,
    global_step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    sparse_nets: dict[str, SparseNetwork],
    env: object,
    loop: dict,
) -> dict:
    """A checkpoint of a run at `global_step`: weights (targets included), optimizer moments, masks and schedule
    counters, the training env's state, every RNG, and `loop`, the training loop's own variables."""
    return {
        "format": CHECKPOINT_FORMAT,
        "script": script,
        "args": dict(vars(args)),
        "run_dir": run_dir,
        "global_step": global_step,
        "modules": {name: m.state_dict() for name, m in modules.items()},
        "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
        "sparse": {name: s.state_dict() for name, s in sparse_nets.items()},
        "env": env_state(env),
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "loop": loop,
    }


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


def load_checkpoint(path: str, script: str) -> dict:
    """Read the checkpoint to resume from: a file, or the newest readable one in a run folder. Raise ValueError (one
    line) for a missing, truncated or corrupted file, a checkpoint of another script, or one of a finished run."""
    if os.path.isdir(path):
        candidates = [os.path.join(path, name) for name in ("checkpoint.pt", "checkpoint.prev.pt")]
        candidates = [c for c in candidates if os.path.exists(c)]
        if not candidates:
            raise ValueError(f"no checkpoint.pt in {path}")
    elif os.path.exists(path):
        candidates = [path]
    else:
        raise ValueError(f"no checkpoint at {path}")
    for candidate in candidates:
        try:
            checkpoint = torch.load(candidate, map_location="cpu", weights_only=False)
        except Exception as e:  # a truncated zip, a bad pickle: any failure means the file cannot be used
            problem = f"cannot read checkpoint {candidate} (truncated or corrupted: {type(e).__name__})"
            if candidate == candidates[-1]:
                raise ValueError(problem) from None
            print(f"note: {problem}; trying the previous one")
            continue
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{candidate} is not a checkpoint of this project (format {CHECKPOINT_FORMAT})")
        if checkpoint["script"] != script:
            raise ValueError(f"{candidate} is a checkpoint of {checkpoint['script']}.py, not of {script}.py")
        if os.path.exists(os.path.join(os.path.dirname(candidate), "summary.json")):
            # no checkpoint is written at the end, so resuming would redo the steps after the last one
            raise ValueError(f"the run of {candidate} has finished (its summary.json is there): nothing to resume")
        return checkpoint
    raise AssertionError("unreachable")


def buffer_state(buffer: object) -> dict:
    """A replay buffer's attributes for a checkpoint. Arrays become tensors sharing their memory, which torch.save
    writes without a pickled copy (an Atari buffer is gigabytes)."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in vars(buffer).items()}


def load_buffer_state(buffer: object, state: dict) -> None:
    buffer.__dict__.update({k: v.numpy() if torch.is_tensor(v) else v for k, v in state.items()})


def resume_args(args: object, checkpoint: dict) -> object:
    """The resumed run's arguments: the checkpoint's, except the checkpointing flags given now. Other flags given
    with --resume are ignored (a note names them): changing them would change the run being continued."""
    keep = {"resume", "checkpoint_frequency", "checkpoint_buffer"}
    saved = {k: v for k, v in checkpoint["args"].items() if k not in keep and hasattr(args, k)}
    defaults = type(args)(**{k: getattr(args, k) for k in keep if hasattr(args, k)})
    given = [k for k in saved if getattr(args, k) != getattr(defaults, k)]  # flags set on this command line
    ignored = ", ".join("--" + k.replace("_", "-") for k in given if getattr(args, k) != saved[k])
    if ignored:
        print(f"note: resuming with the checkpoint's settings; ignored: {ignored}")
    return dataclasses.replace(args, **saved)


def restore_checkpoint(
    checkpoint: dict,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    sparse_nets: dict[str, SparseNetwork],
    env: object,
) -> dict:
    """Load a checkpoint into a run built from its arguments; set every RNG last. Returns the loop's variables.
    Raise ValueError (one line) when the networks or environments do not match the checkpoint's."""
    try:
        for name, module in modules.items():
            module.load_state_dict(checkpoint["modules"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][name])
        for name, sparse in sparse_nets.items():
            sparse.load_state_dict(checkpoint["sparse"][name])
        set_env_state(env, checkpoint["env"])
    except (KeyError, RuntimeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"the checkpoint does not match this run's networks or environment: {reason}") from None
    random.setstate(checkpoint["rng"]["python"])
    np.random.set_state(checkpoint["rng"]["numpy"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    return checkpoint["loop"]


# --- end sparse training ---

SCRIPT = "sparse_td3_continuous"  # checkpoints name the script that wrote them


def make_env(env_id: str, seed: int, idx: int, capture_video: bool, run_name: str) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array")
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        else:
            env = gym.make(env_id)
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, a], 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, width: int, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, width)
        self.fc2 = nn.Linear(width, width)
        self.fc_mu = nn.Linear(width, act_dim)
        self.register_buffer("action_scale", torch.tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return torch.tanh(self.fc_mu(x)) * self.action_scale + self.action_bias


class ReplayBuffer:
    """Uniform replay of (obs, action, reward, next_obs, terminated); truncation is not stored, so the target
    bootstraps from the real final observation of a time-limited episode."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, seed: int) -> None:
        self.obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((size, act_dim), dtype=np.float32)
        self.rewards = np.zeros(size, dtype=np.float32)
        self.terminations = np.zeros(size, dtype=np.float32)
        self.size, self.pos, self.full = size, 0, False
        self.rng = np.random.default_rng(seed)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        self.obs[self.pos], self.actions[self.pos], self.rewards[self.pos] = obs, action, reward
        self.next_obs[self.pos], self.terminations[self.pos] = next_obs, terminated
        self.pos = (self.pos + 1) % self.size
        self.full = self.full or self.pos == 0

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size if self.full else self.pos, size=batch_size)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.as_tensor(a[idx], device=device) for a in arrays)


def add_transitions(
    rb: ReplayBuffer,
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_obs: np.ndarray,
    terminations: np.ndarray,
    autoreset: np.ndarray,
) -> None:
    """Store one vector step. Gymnasium 1.x autoresets an env on the step after its episode ended: that step only
    returns the first observation of the next episode, so it is skipped (`autoreset` marks those envs). The step that
    ended the episode already carried the true final observation in `next_obs`."""
    for i in np.flatnonzero(~autoreset):
        rb.add(obs[i], actions[i], rewards[i], next_obs[i], terminations[i])


def evaluate(actor: Actor, env: gym.Env, episodes: int, seed: int, device: torch.device) -> np.ndarray:
    """Deterministic evaluation: the actor's mean action, no exploration noise; episode i is reset with seed + i."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, episode_return = False, 0.0
        while not done:
            with torch.no_grad():
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    return np.array(returns)


def check_args(args: Args) -> dict[str, float]:
    """Validate the arguments; return each network's overall sparsity."""
    sparsities = {"sparsity": args.sparsity}
    if args.actor_sparsity is not None:
        sparsities["actor-sparsity"] = args.actor_sparsity
    if args.critic_sparsity is not None:
        sparsities["critic-sparsity"] = args.critic_sparsity
    try:
        check_sparse_args(
            args.sparse_method,
            sparsities,
            args.sparsity_distribution,
            args.drop_fraction,
            args.drop_schedule,
            args.update_interval,
        )
    except ValueError as e:
        fail(str(e))
    for name in (
        "total_timesteps",
        "num_envs",
        "batch_size",
        "buffer_size",
        "hidden_width",
        "policy_frequency",
        "eval_frequency",
        "eval_episodes",
    ):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.total_timesteps < args.num_envs:
        fail(f"--total-timesteps ({args.total_timesteps}) must be at least --num-envs ({args.num_envs})")
    if args.buffer_size < args.batch_size:
        fail(f"--buffer-size ({args.buffer_size}) must be at least --batch-size ({args.batch_size})")
    if args.learning_starts < 0:
        fail(f"--learning-starts must be non-negative, got {args.learning_starts}")
    if args.checkpoint_frequency < 0:
        fail(f"--checkpoint-frequency must be non-negative (0: no checkpoints), got {args.checkpoint_frequency}")
    return {
        "actor": args.sparsity if args.actor_sparsity is None else args.actor_sparsity,
        "critic": args.sparsity if args.critic_sparsity is None else args.critic_sparsity,
    }


def train(args: Args) -> dict:
    """Train TD3 with the chosen sparse method; returns the end-of-run summary (also written to summary.json)."""
    checkpoint = None
    if args.resume:
        try:
            checkpoint = load_checkpoint(args.resume, SCRIPT)
        except ValueError as e:
            fail(str(e))
        args = resume_args(args, checkpoint)
    try:
        check_optional_dependencies(args.track, args.capture_video)
    except ValueError as e:
        fail(str(e))
    sparsity = check_args(args)
    try:
        probe = gym.make(args.env_id)
    except gym.error.Error as e:
        fail(f"cannot make --env-id {args.env_id}: {e}")
    if not isinstance(probe.action_space, gym.spaces.Box):
        fail(f"{args.env_id} has a {type(probe.action_space).__name__} action space; TD3 needs a continuous (Box) one")
    probe.close()

    # Schedules count critic gradient steps: one per vector step once learning has started.
    iterations = args.total_timesteps // args.num_envs
    grad_steps = max(0, iterations - math.ceil(args.learning_starts / args.num_envs))
    update_end = args.update_end if args.update_end is not None else grad_steps - 50_000
    prune_start = args.prune_start if args.prune_start is not None else int(0.2 * grad_steps)
    prune_end = args.prune_end if args.prune_end is not None else int(0.8 * grad_steps)
    if args.sparse_method == "prune" and prune_end <= prune_start:
        fail(f"--prune-end ({prune_end}) must be after --prune-start ({prune_start})")
    if args.sparse_method in ("set", "rigl") and update_end <= args.update_start:
        print(
            f"note: no topology updates happen: update window [{args.update_start}, {update_end}] is empty "
            f"({grad_steps} gradient steps; the default end is gradient steps - 50k)"
        )

    run_name, run_dir, writer, device = start_run(args, {}, checkpoint)

    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i, i, args.capture_video, run_name) for i in range(args.num_envs)]
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    low, high = envs.single_action_space.low, envs.single_action_space.high

    actor = Actor(obs_dim, act_dim, args.hidden_width, low, high).to(device)
    qf1 = QNetwork(obs_dim, act_dim, args.hidden_width).to(device)
    qf2 = QNetwork(obs_dim, act_dim, args.hidden_width).to(device)

    example_obs = torch.zeros(1, obs_dim, device=device)
    example_act = torch.zeros(1, act_dim, device=device)
    sparse_kwargs = dict(
        batch_size=args.batch_size,
        method=args.sparse_method,
        distribution=args.sparsity_distribution,
        dense_first_layer=args.dense_first_layer,
        dense_output_layer=args.dense_output_layer,
        sparsity_aware_init=bool(args.sparsity_aware_init),
        drop_fraction=args.drop_fraction,
        drop_schedule=args.drop_schedule,
    )
    try:
        critic_schedule = dict(
            update_interval=args.update_interval,
            update_start=args.update_start,
            update_end=update_end,
            prune_start=prune_start,
            prune_end=prune_end,
        )
        qf1_sparse = SparseNetwork(
            qf1, (example_obs, example_act), sparsity=sparsity["critic"], **critic_schedule, **sparse_kwargs
        )
        qf2_sparse = SparseNetwork(
            qf2, (example_obs, example_act), sparsity=sparsity["critic"], **critic_schedule, **sparse_kwargs
        )
        # The actor steps once per `policy_frequency` critic steps; its schedule is the critic's in its own steps,
        # so both networks change topology on the same iterations (as DS-TD3's code does).
        pf = args.policy_frequency
        actor_sparse = SparseNetwork(
            actor,
            (example_obs,),
            sparsity=sparsity["actor"],
            update_interval=max(1, args.update_interval // pf),
            update_start=args.update_start // pf,
            update_end=update_end // pf,
            prune_start=prune_start // pf,
            prune_end=prune_end // pf,
            **sparse_kwargs,
        )
    except ValueError as e:
        fail(str(e))
    sparse_nets = {"actor": actor_sparse, "qf1": qf1_sparse, "qf2": qf2_sparse}

    # Targets are copies taken after masking, and are re-masked after every soft update: exactly as sparse.
    target_actor = Actor(obs_dim, act_dim, args.hidden_width, low, high).to(device)
    qf1_target = QNetwork(obs_dim, act_dim, args.hidden_width).to(device)
    qf2_target = QNetwork(obs_dim, act_dim, args.hidden_width).to(device)
    target_actor.load_state_dict(actor.state_dict())
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    online_params = [p for net in (actor, qf1, qf2) for p in net.parameters()]
    target_params = [p for net in (target_actor, qf1_target, qf2_target) for p in net.parameters()]
    target_weights = [
        (actor_sparse, actor_sparse.weights_of(target_actor)),
        (qf1_sparse, qf1_sparse.weights_of(qf1_target)),
        (qf2_sparse, qf2_sparse.weights_of(qf2_target)),
    ]

    # Fused Adam: one kernel per step, and, unlike torch's default CPU Adam, no slow path on the exact zeros that
    # inactive weights leave in exp_avg_sq (the default's sqrt is ~3x slower on zeros), which made sparse runs 15-20%
    # slower than dense ones. The arithmetic is Adam's either way.
    q_optimizer = torch.optim.Adam(
        weight_decay_groups([qf1, qf2], args.weight_decay), lr=args.learning_rate, fused=True
    )
    actor_optimizer = torch.optim.Adam(
        weight_decay_groups([actor], args.weight_decay), lr=args.learning_rate, fused=True
    )

    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, args.seed)
    action_low = torch.as_tensor(low, dtype=torch.float32, device=device)
    action_high = torch.as_tensor(high, dtype=torch.float32, device=device)
    envs.action_space.seed(args.seed)

    eval_env = gym.make(args.env_id)
    evaluations: list[tuple[int, float]] = []
    next_eval, next_checkpoint = args.eval_frequency, args.checkpoint_frequency
    obs, _ = envs.reset(seed=args.seed)
    # Gymnasium 1.x autoresets on the step *after* an episode ends; that step's transition is not a real one.
    autoreset = np.zeros(args.num_envs, dtype=bool)
    start_iteration, grad_step, actor_loss = 0, 0, torch.zeros(())
    eval_seconds, learn_start_time, start_time = 0.0, None, time.time()
    modules = dict(
        actor=actor, qf1=qf1, qf2=qf2, target_actor=target_actor, qf1_target=qf1_target, qf2_target=qf2_target
    )
    optimizers = dict(q_optimizer=q_optimizer, actor_optimizer=actor_optimizer)

    def act(obs: np.ndarray, global_step: int) -> np.ndarray:
        """Uniformly random actions during warm-up, then the actor's with Gaussian exploration noise."""
        if global_step < args.learning_starts:
            return envs.action_space.sample()
        with torch.no_grad():
            actions = actor(torch.as_tensor(obs, dtype=torch.float32, device=device))
            actions += torch.normal(0, actor.action_scale.expand_as(actions) * args.exploration_noise)
            return actions.cpu().numpy().clip(low, high)

    if checkpoint is None:
        log_sparsity(writer, sparse_nets, 0)
    else:
        try:
            loop = restore_checkpoint(checkpoint, modules, optimizers, sparse_nets, envs)
        except ValueError as e:
            fail(str(e))
        start_iteration, grad_step, actor_loss = loop["iteration"], loop["grad_step"], loop["actor_loss"]
        obs, autoreset, evaluations = loop["obs"], loop["autoreset"], loop["evaluations"]
        next_eval, next_checkpoint = loop["next_eval"], loop["next_checkpoint"]
        start_time = time.time() - loop["elapsed_s"]
        if loop["learning_s"] is not None:
            learn_start_time = time.time() - loop["learning_s"]
        rb.rng = loop["rb_rng"]
        if loop["buffer"] is not None:
            load_buffer_state(rb, loop["buffer"])
        elif start_iteration > 0:
            # The replay buffer was not checkpointed (--checkpoint-buffer): collect fresh transitions with the current
            # policy before training goes on. These steps are extra (not counted, not logged), and the buffer now
            # holds only recent experience, so the run differs from an uninterrupted one.
            refill = max(args.learning_starts, args.batch_size)
            print(f"note: the checkpoint holds no replay buffer; refilling it with {refill} steps before resuming")
            for _ in range(math.ceil(refill / args.num_envs)):
                actions = act(obs, start_iteration * args.num_envs)
                next_obs, rewards, terminations, truncations, _ = envs.step(actions)
                add_transitions(rb, obs, actions, rewards, next_obs, terminations, autoreset)
                autoreset = np.logical_or(terminations, truncations)
                obs = next_obs
        print(f"resumed {run_dir} at step {checkpoint['global_step']}")

    for iteration in range(start_iteration, iterations):
        global_step = iteration * args.num_envs
        actions = act(obs, global_step)

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        if "episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][i], global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], global_step)

        add_transitions(rb, obs, actions, rewards, next_obs, terminations, autoreset)
        autoreset = np.logical_or(terminations, truncations)
        obs = next_obs

        if global_step >= args.learning_starts:
            if learn_start_time is None:
                learn_start_time, eval_seconds = time.time(), 0.0
            grad_step += 1
            b_obs, b_actions, b_rewards, b_next_obs, b_terminations = rb.sample(args.batch_size, device)
            with torch.no_grad():
                clipped_noise = (torch.randn_like(b_actions) * args.policy_noise).clamp(
                    -args.noise_clip, args.noise_clip
                ) * target_actor.action_scale
                next_actions = (target_actor(b_next_obs) + clipped_noise).clamp(action_low, action_high)
                min_qf_next = torch.min(qf1_target(b_next_obs, next_actions), qf2_target(b_next_obs, next_actions))
                next_q_value = b_rewards + (1 - b_terminations) * args.gamma * min_qf_next.view(-1)

            qf1_a_values = qf1(b_obs, b_actions).view(-1)
            qf2_a_values = qf2(b_obs, b_actions).view(-1)
            qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
            qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
            qf_loss = qf1_loss + qf2_loss
            q_optimizer.zero_grad()
            qf_loss.backward()
            qf1_sparse.prepare_step(q_optimizer)
            qf2_sparse.prepare_step(q_optimizer)
            q_optimizer.step()

            if grad_step % args.policy_frequency == 0:
                actor_loss = -qf1(b_obs, actor(b_obs)).mean()
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_sparse.prepare_step(actor_optimizer)
                actor_optimizer.step()

                with torch.no_grad():
                    torch._foreach_lerp_(target_params, online_params, args.tau)
                for sparse_net, weights in target_weights:
                    sparse_net.apply_masks_(weights)

            if grad_step % 100 == 0:
                writer.add_scalar("losses/qf1_values", qf1_a_values.mean().item(), global_step)
                writer.add_scalar("losses/qf2_values", qf2_a_values.mean().item(), global_step)
                writer.add_scalar("losses/qf1_loss", qf1_loss.item(), global_step)
                writer.add_scalar("losses/qf2_loss", qf2_loss.item(), global_step)
                writer.add_scalar("losses/qf_loss", qf_loss.item() / 2.0, global_step)
                writer.add_scalar("losses/actor_loss", actor_loss.item(), global_step)
                writer.add_scalar("charts/SPS", int(global_step / (time.time() - start_time)), global_step)
            if grad_step % args.update_interval == 0:
                log_sparsity(writer, sparse_nets, global_step)

        if global_step + args.num_envs >= next_eval or iteration == iterations - 1:
            next_eval += args.eval_frequency
            eval_start = time.time()
            returns = evaluate(actor, eval_env, args.eval_episodes, args.seed + 100, device)
            eval_seconds += time.time() - eval_start
            evaluations.append((global_step + args.num_envs, float(returns.mean())))
            writer.add_scalar("eval/episodic_return", returns.mean(), global_step + args.num_envs)
            print(
                f"global_step={global_step + args.num_envs}, eval/episodic_return={returns.mean():.1f}, "
                f"SPS={int(global_step / max(time.time() - start_time, 1e-9))}"
            )

        if args.checkpoint_frequency and global_step + args.num_envs >= next_checkpoint and iteration < iterations - 1:
            next_checkpoint += args.checkpoint_frequency
            writer.flush()
            loop = {
                "iteration": iteration + 1,
                "grad_step": grad_step,
                "actor_loss": actor_loss.detach(),
                "obs": obs,
                "autoreset": autoreset,
                "evaluations": evaluations,
                "next_eval": next_eval,
                "next_checkpoint": next_checkpoint,
                "elapsed_s": time.time() - start_time,
                "learning_s": time.time() - learn_start_time - eval_seconds if learn_start_time else None,
                "rb_rng": rb.rng,
                "buffer": buffer_state(rb) if args.checkpoint_buffer else None,
            }
            step = global_step + args.num_envs
            save_checkpoint(
                run_dir, make_checkpoint(SCRIPT, args, run_dir, step, modules, optimizers, sparse_nets, envs, loop)
            )
            if learn_start_time:
                eval_seconds, learn_start_time = 0.0, time.time() - loop["learning_s"]

    log_sparsity(writer, sparse_nets, iterations * args.num_envs)
    # Steps per second while learning, evaluation excluded: what the speed benchmark compares across methods.
    learning_seconds = time.time() - learn_start_time - eval_seconds if learn_start_time else float("nan")
    summary = {
        "script": args.exp_name,
        "env_id": args.env_id,
        "sparse_method": args.sparse_method,
        "seed": args.seed,
        "total_timesteps": iterations * args.num_envs,
        **run_summary(sparse_nets, evaluations),
        "wall_time_s": time.time() - start_time,
        "learning_sps": grad_step * args.num_envs / learning_seconds if grad_step else float("nan"),
        "run_dir": run_dir,
        "args": asdict(args),
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    if args.save_model:
        model_path = os.path.join(run_dir, f"{args.exp_name}.pt")
        torch.save(
            {
                "args": asdict(args),
                "obs_dim": obs_dim,
                "act_dim": act_dim,
                "action_low": low,
                "action_high": high,
                "actor": actor.state_dict(),
                "qf1": qf1.state_dict(),
                "qf2": qf2.state_dict(),
                "target_actor": target_actor.state_dict(),
                "qf1_target": qf1_target.state_dict(),
                "qf2_target": qf2_target.state_dict(),
                "masks": {name: {k: m.cpu() for k, m in s.masks.items()} for name, s in sparse_nets.items()},
            },
            model_path,
        )
        summary["model_path"] = model_path
        print(f"model saved to {model_path}")

    print_summary(summary)

    envs.close()
    eval_env.close()
    writer.close()
    return summary


if __name__ == "__main__":
    train(tyro.cli(Args))
