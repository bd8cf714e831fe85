"""--sparse-kernels: masked Linear layers computed on their active weights only must train exactly as the
masked-dense path does (to float tolerance), for every method; the flag is the same in every script."""

import dataclasses
import importlib
import warnings

import pytest
import torch
from test_sparse_block import mlp

import sparse_td3_continuous as td3
from sparse_td3_continuous import BadInput, SparseLinearFunction, SparseNetwork

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
SCHEDULE = dict(update_interval=2, update_end=8, prune_start=0, prune_end=6, drop_fraction=0.3)


def train(method: str, kernels: str, steps: int = 9) -> list[dict]:
    """A small MLP trained `steps` steps on fixed minibatches; per step its loss, input and parameter gradients,
    parameters after the step and masks. Topology updates (or pruning steps) fall on every second step."""
    torch.manual_seed(0)
    net = mlp(6, 32, 32, 3)
    sparse = SparseNetwork(
        net,
        (torch.zeros(1, 6),),
        batch_size=16,
        method=method,
        sparsity=0.8,
        distribution="uniform",
        sparse_kernels=kernels,
        **SCHEDULE,
    )
    opt = torch.optim.Adam(td3.weight_decay_groups([net], 1e-3), lr=1e-2)
    data = torch.Generator().manual_seed(1)
    history = []
    for _ in range(steps):
        x = torch.randn(16, 6, generator=data, requires_grad=True)
        loss = net(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        grads = [p.grad.clone() for p in net.parameters()]
        opt.step()
        history.append(
            dict(
                loss=loss.detach(),
                grads=[x.grad, *grads],
                params=[p.detach().clone() for p in net.parameters()],
                masks=[m.clone() for m in sparse.masks.values()],
                on_kernels=[name for name, k in sparse.kernels.kernels.items() if k is not None],
            )
        )
    return history


@pytest.mark.parametrize("method", ["static", "set", "rigl", "prune"])
def test_sparse_kernels_train_as_the_masked_dense_path(method, monkeypatch):
    """Same minibatches: losses, gradients (input and weights), weights after each step and the masks agree. RigL
    grows by the dense gradient, and SET's grown weights take their first step with it: their update steps run
    dense, so the topologies are the same; a gradient taken on the sparse path would grow elsewhere."""
    calls = []
    apply = SparseLinearFunction.apply
    monkeypatch.setattr(SparseLinearFunction, "apply", lambda *a: calls.append(1) or apply(*a))
    dense, kernels = train(method, "off"), train(method, "0")
    assert calls, "the sparse path never ran"
    assert kernels[-1]["on_kernels"] == ["0", "2", "4"]
    assert all(0 < m.mean() < 1 for m in kernels[-1]["masks"])  # real masks (prune's start all ones)
    for a, b in zip(dense, kernels, strict=True):
        torch.testing.assert_close(a["loss"], b["loss"])
        for x, y in zip(a["grads"] + a["params"], b["grads"] + b["params"], strict=True):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
        for x, y in zip(a["masks"], b["masks"], strict=True):
            assert torch.equal(x, y)
        for w, mask in zip(b["params"][::2], b["masks"], strict=True):
            assert torch.all(w[mask == 0] == 0)  # inactive weights stay exactly zero


def test_update_steps_run_dense_and_the_others_sparse(monkeypatch):
    """On a step whose update_topology_if_due() will drop and grow, the forward runs dense (its gradient is the
    dense one); on the other steps the weight gradient exists only at active positions."""
    torch.manual_seed(0)
    net = mlp(6, 32, 3)
    sparse = SparseNetwork(net, (torch.zeros(1, 6),), 8, "rigl", 0.8, "uniform", sparse_kernels="0", **SCHEDULE)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(1, 6):
        opt.zero_grad()
        net(torch.randn(8, 6)).pow(2).mean().backward()
        inactive_grad = net[0].weight.grad[sparse.masks["0"] == 0]
        assert bool(inactive_grad.abs().sum() > 0) == (step % 2 == 0), step  # due on steps 2, 4
        sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        opt.step()


def test_a_network_on_kernels_passes_activations_feature_major():
    """Once one layer is on kernels, every Linear layer of the network hands on [batch, features] tensors stored as
    [features, batch], so no sparse product sees a transposed operand (the layout MKL needs copies for); the outputs
    are those of the masked-dense network. With no layer on kernels the layers run as plain nn.Linear."""
    torch.manual_seed(0)
    net, plain = mlp(6, 64, 64, 3), mlp(6, 64, 64, 3)
    sparse = SparseNetwork(net, (torch.zeros(1, 6),), 8, "static", 0.9, "uniform", sparse_kernels="0.85")
    plain.load_state_dict(net.state_dict())
    assert [name for name, k in sparse.kernels.kernels.items() if k is not None] == ["0", "2", "4"]
    outputs = []
    for layer in (net[0], net[2], net[4]):
        layer.register_forward_hook(lambda module, inputs, out: outputs.append(out))
    x = torch.randn(8, 6)
    torch.testing.assert_close(net(x), plain(x))
    assert [tuple(out.stride()) for out in outputs] == [(1, 8)] * 3  # feature-major, batch of 8
    off = SparseNetwork(mlp(6, 64, 3), (torch.zeros(1, 6),), 8, "static", 0.5, "uniform", sparse_kernels="0.9")
    assert not off.kernels.on and off.layers["0"](x).is_contiguous()


def test_weight_gradients_accumulate_in_a_buffer_that_stays_zero_where_inactive():
    """Two backward passes without zero_grad() add up, as autograd's do; after zero_grad() the next gradient lands
    in the same buffer, whose inactive positions are still zero after Adam with weight decay has stepped on it."""
    torch.manual_seed(0)
    net, plain = mlp(6, 64, 3), mlp(6, 64, 3)
    sparse = SparseNetwork(net, (torch.zeros(1, 6),), 8, "static", 0.9, "uniform", sparse_kernels="0")
    plain.load_state_dict(net.state_dict())
    x1, x2 = torch.randn(8, 6), torch.randn(8, 6)
    for model in (net, plain):
        model(x1).pow(2).sum().backward()
        model(x2).pow(2).sum().backward()
    masks = [sparse.masks["0"], 1, sparse.masks["2"], 1]  # the dense network's weight gradients, masked
    for a, b, mask in zip(net.parameters(), plain.parameters(), masks, strict=True):
        torch.testing.assert_close(a.grad, b.grad * mask)
    weight, inactive = net[0].weight, sparse.masks["0"] == 0
    buffer = weight.grad
    opt = torch.optim.Adam(td3.weight_decay_groups([net], 0.1), lr=1e-2, fused=True)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 6)).pow(2).mean().backward()
        assert weight.grad is buffer and torch.all(buffer[inactive] == 0)
        opt.step()
    assert torch.all(weight[inactive] == 0) and torch.all(buffer[inactive] == 0)


def test_targets_registered_by_weights_of_compute_on_the_kernels():
    """A target copy computes on the kernels at its own weights: the same outputs as the dense copy, and it reads
    only the positions active in the online network (a value left at an inactive one is not used)."""
    torch.manual_seed(0)
    net, target, plain = mlp(6, 32, 3), mlp(6, 32, 3), mlp(6, 32, 3)
    sparse = SparseNetwork(net, (torch.zeros(1, 6),), 8, "static", 0.8, "uniform", sparse_kernels="0")
    for copy in (target, plain):
        copy.load_state_dict(net.state_dict())
        for w in copy.parameters():
            w.data.add_(0.1)  # its own weights, not the online network's
    sparse.apply_masks_(sparse.weights_of(target))
    sparse.apply_masks_([plain[0].weight, plain[2].weight])
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(target(x), plain(x))
        target[0].weight[sparse.masks["0"] == 0] = 5.0
        torch.testing.assert_close(target(x), plain(x))
    assert list(target.state_dict()) == list(plain.state_dict())  # checkpoints do not change


def test_threshold_and_auto_choose_layers():
    def on_kernels(mode: str) -> tuple[list[str], SparseNetwork]:
        torch.manual_seed(0)
        sparse = SparseNetwork(mlp(6, 64, 64, 3), (torch.zeros(1, 6),), 8, "static", 0.9, sparse_kernels=mode)
        return [name for name, k in sparse.kernels.kernels.items() if k is not None], sparse

    # erk at 90% here: layer sparsities 0.68, 0.94, 0.38
    assert on_kernels("off")[0] == [] and on_kernels("1")[0] == [] and on_kernels("0")[0] == ["0", "2", "4"]
    assert on_kernels("0.9")[0] == ["2"] and on_kernels("0.5")[0] == ["0", "2"]
    # auto times the layers at least half sparse, once each; at width 64 and batch 8 dense is the faster
    chosen, auto = on_kernels("auto")
    assert set(auto.kernels.verdicts) == {("0", 0.68), ("2", 0.94)}
    assert chosen == [name for (name, _), faster in auto.kernels.verdicts.items() if faster]
    for bad in ("on", "1.5", "-0.1"):
        with pytest.raises(BadInput, match="--sparse-kernels must be off, auto or a sparsity"):
            on_kernels(bad)


def test_the_layers_on_kernels_are_logged():
    torch.manual_seed(0)
    for mode, expected in (("off", None), ("0", 3), ("0.9", 1)):
        sparse = SparseNetwork(mlp(6, 64, 64, 3), (torch.zeros(1, 6),), 8, "static", 0.9, sparse_kernels=mode)
        assert td3.sparsity_stats(sparse).get("sparse_kernel_layers") == expected
        assert sparse.kernels.layers_on() == {None: [], 3: ["0", "2", "4"], 1: ["2"]}[expected]


def test_auto_keeps_a_layer_dense_when_the_kernels_are_slower(monkeypatch):
    """The timing decides: a layer whose sparse kernels time slower stays dense, and one timing serves every later
    mask change at the same sparsity (SET and RigL keep the count)."""
    timings = []

    def slower(self, layer, kernel):
        timings.append(layer)
        return False

    monkeypatch.setattr(td3.SparseKernels, "_sparse_is_faster", slower)
    net = mlp(6, 64, 64, 3)
    sparse = SparseNetwork(
        net, (torch.zeros(1, 6),), 8, "set", 0.9, "uniform", sparse_kernels="auto", update_interval=1, update_end=9
    )
    assert all(k is None for k in sparse.kernels.kernels.values()) and len(timings) == 3
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(8, 6)).sum().backward()
    assert sparse.update_topology_if_due(opt) and len(timings) == 3


@pytest.mark.parametrize("script", ["sparse_td3_continuous", "sparse_sac_continuous", "sparse_dqn_atari", "sparse_ppo"])
def test_every_script_has_the_flag(script):
    module = importlib.import_module(script)
    (field,) = [f for f in dataclasses.fields(module.Args) if f.name == "sparse_kernels"]
    assert field.default == "off"
    source = open(module.__file__, encoding="utf-8").read()
    assert "sparse_kernels=args.sparse_kernels" in source  # passed to every SparseNetwork
    field_text = source.split('    sparse_kernels: str = "off"\n', 1)[1].split('"""', 2)[1]
    reference = open(td3.__file__, encoding="utf-8").read().split('    sparse_kernels: str = "off"\n', 1)[1]
    assert field_text == reference.split('"""', 2)[1]  # the same help text everywhere


def test_a_short_run_with_sparse_kernels_finishes(monkeypatch, capsys):
    products = []  # every sparse product the run computes
    apply = td3.SparseLinearFunction.apply
    monkeypatch.setattr(td3.SparseLinearFunction, "apply", lambda *a: products.append(a[-1]) or apply(*a))
    args = td3.Args(
        env_id="InvertedPendulum-v5",
        total_timesteps=200,
        learning_starts=100,
        batch_size=16,
        buffer_size=200,
        hidden_width=32,
        eval_frequency=200,
        eval_episodes=1,
        sparse_method="rigl",
        sparsity=0.9,
        update_interval=10,
        update_end=80,
        sparse_kernels="0",
    )
    summary = td3.train(args)
    assert summary["evaluations"] and products  # the run trained, and its layers went through the sparse kernels
    assert summary["networks"]["qf1"]["topology_updates"] > 0  # RigL updated the masks on the way
    # the run says which layers it put on the kernels ("0": every masked Linear layer; the output layers are dense)
    assert all(net["sparse_kernel_layers"] == ["fc1", "fc2"] for net in summary["networks"].values())
    out = capsys.readouterr().out
    assert "layers on sparse kernels (--sparse-kernels 0): actor fc1, fc2; qf1 fc1, fc2; qf2 fc1, fc2" in out
