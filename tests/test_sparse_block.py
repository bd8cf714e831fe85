"""Behaviour of the shared sparse-training section. The section is byte-identical in every script (see
test_block_identical.py), so testing the TD3 script's copy tests them all."""

import copy
import functools
import math
import types

import pytest
import torch
import torch.nn as nn

from sparse_td3_continuous import (
    BadInput,
    SparseNetwork,
    active_count,
    drop_fraction_at,
    layer_sparsities,
    network_sparsities,
    pruning_sparsity_at,
    sparse_init_,
    sparsity_stats,
    weight_decay_groups,
)


def mlp(*sizes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def sparse_mlp(sizes: tuple[int, ...], **kwargs) -> tuple[nn.Sequential, SparseNetwork]:
    net = mlp(*sizes)
    return net, SparseNetwork(net, (torch.zeros(1, sizes[0]),), batch_size=kwargs.pop("batch_size", 8), **kwargs)


def train_steps(net: nn.Module, sparse: SparseNetwork, opt: torch.optim.Optimizer, steps: int, check=None) -> None:
    in_features = next(iter(sparse.layers.values())).weight.shape[1]
    for _ in range(steps):
        loss = net(torch.randn(16, in_features)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        opt.step()
        if check is not None:
            check()


# --- sparsity distributions ---

NATURE_CNN = {"c1": (32, 4, 8, 8), "c2": (64, 32, 4, 4), "c3": (64, 64, 3, 3), "f1": (512, 3136), "f2": (18, 512)}


@pytest.mark.parametrize(
    "shapes, expected",
    [
        ({"a": (256, 17), "b": (256, 256), "c": (12, 256)}, [0.565, 0.946, 0.395]),
        ({"a": (256, 23), "b": (256, 256), "c": (1, 256)}, [0.586, 0.932, 0.0]),
        (NATURE_CNN, [0.742, 0.871, 0.852, 0.908, 0.0]),
    ],
)
def test_erk_matches_spec_check_values(shapes, expected):
    got = layer_sparsities(shapes, 0.9, "erk")
    assert [round(s, 3) for s in got.values()] == pytest.approx(expected, abs=1e-3)


def test_er_hand_computed():
    # 10 -> 20 -> 5 at 50%: p = (30/200, 25/100), eps = 150 / 55, density = eps * p
    got = layer_sparsities({"a": (20, 10), "b": (5, 20)}, 0.5, "er")
    assert got["a"] == pytest.approx(1 - 150 / 55 * 0.15)
    assert got["b"] == pytest.approx(1 - 150 / 55 * 0.25)
    # the dense output layer spends 50 of the 150-weight budget, so layer a keeps 50 of 200
    got = layer_sparsities({"a": (20, 10), "b": (5, 20)}, 0.5, "er", {"b"})
    assert got == pytest.approx({"a": 0.75, "b": 0.0})


def test_er_makes_layer_dense_when_eps_too_large():
    # TD3's HalfCheetah actor at 50%, output dense: eps * p_1 = 2.7 > 1, so the first layer becomes dense too and
    # the hidden layer carries the rest: 35712 - 4352 - 1536 = 29824 of 65536 weights.
    shapes = {"fc1": (256, 17), "fc2": (256, 256), "fc_mu": (6, 256)}
    got = layer_sparsities(shapes, 0.5, "er", {"fc_mu"})
    assert got["fc1"] == 0.0 and got["fc_mu"] == 0.0
    assert active_count(65536, got["fc2"]) == 29824


def test_er_conv_uses_channel_dims_only():
    er = layer_sparsities(NATURE_CNN, 0.9, "er")
    erk = layer_sparsities(NATURE_CNN, 0.9, "erk")
    assert er != erk
    # both keep 10% of the weights overall (up to one weight of flooring per layer)
    budget = sum(math.prod(s) - math.floor(0.9 * math.prod(s)) for s in NATURE_CNN.values())
    for dist in (er, erk):
        kept = sum(active_count(math.prod(NATURE_CNN[n]), s) for n, s in dist.items())
        assert abs(kept - budget) <= len(NATURE_CNN)


def zeros_of(shapes: dict, sparsities: dict) -> int:
    return sum(math.prod(shapes[n]) - active_count(math.prod(shapes[n]), s) for n, s in sparsities.items())


@pytest.mark.parametrize(
    ("dims", "dense_first", "dense_output"),
    [((17, 256, 256, 12), True, False), ((11, 256, 256, 3), True, True), ((17, 256, 256, 6), False, True)],
)
def test_uniform_with_dense_layers_spends_the_whole_budget(dims, dense_first, dense_output):
    # A 17-256-256-12 network at 0.9 with a dense first layer used to end 0.846 sparse: the dense layer's zeros were
    # dropped instead of moved to the sparse layers. Now uniform has exactly the zeros it has without dense layers.
    shapes = {f"l{i}": (dims[i + 1], dims[i]) for i in range(len(dims) - 1)}
    names = list(shapes)
    dense = ({names[0]} if dense_first else set()) | ({names[-1]} if dense_output else set())
    budget = sum(math.floor(0.9 * math.prod(shape)) for shape in shapes.values())
    spread = layer_sparsities(shapes, 0.9, "uniform", dense)
    assert zeros_of(shapes, spread) == budget
    assert all(spread[n] == 0.0 for n in dense)
    sparse = [spread[n] for n in names if n not in dense]
    assert max(sparse) - min(sparse) < 1e-3  # the same sparsity in every sparse layer, up to one weight
    torch.manual_seed(0)
    _, net = sparse_mlp(
        dims,
        method="static",
        sparsity=0.9,
        distribution="uniform",
        dense_first_layer=dense_first,
        dense_output_layer=dense_output,
    )
    assert net.total_weights() - net.active_weights() == budget
    assert layer_sparsities(shapes, 0.9, "uniform") == dict.fromkeys(names, 0.9)  # without dense layers: unchanged


def test_uniform_and_unreachable_sparsity():
    # 18 zeros to make (12 + 6) but the sparse layer has 16 weights
    with pytest.raises(ValueError, match="cannot be reached"):
        layer_sparsities({"a": (4, 4), "b": (2, 4)}, 0.8, "uniform", {"b"})
    assert layer_sparsities({"a": (4, 4), "b": (2, 4)}, 0.5, "uniform", {"b"}) == {"a": 0.75, "b": 0.0}
    with pytest.raises(ValueError, match="cannot be reached"):
        layer_sparsities({"a": (20, 10), "b": (5, 20)}, 0.5, "er", {"a"})


@pytest.mark.parametrize("distribution", ["uniform", "er", "erk"])
def test_masks_have_exact_counts(distribution):
    torch.manual_seed(0)
    net, sparse = sparse_mlp((17, 256, 256, 6), method="static", sparsity=0.9, distribution=distribution)
    for name, layer in sparse.layers.items():
        expected = active_count(layer.weight.numel(), sparse.target_sparsity[name])
        if name in sparse.masks:
            assert int(sparse.masks[name].sum()) == expected
        else:  # made dense by the distribution: no mask at all
            assert expected == layer.weight.numel()
        assert int((layer.weight != 0).sum()) == expected
    if distribution == "uniform":  # hand counts: numel - floor(0.9 * numel)
        assert [int(m.sum()) for m in sparse.masks.values()] == [436, 6554, 154]


def test_dense_method_and_prune_start_dense():
    _, dense = sparse_mlp((5, 8, 2), method="dense", sparsity=0.9)
    assert dense.masks == {} and dense.active_weights() == dense.total_weights() == 56
    _, prune = sparse_mlp((5, 8, 2), method="prune", sparsity=0.5, distribution="uniform")
    assert all(bool(m.all()) for m in prune.masks.values())


def test_sparsity_aware_init_hand_computed_limits():
    torch.manual_seed(0)
    mask = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    limits = torch.zeros(3, 4)
    for _ in range(300):
        w = torch.empty(3, 4)
        sparse_init_(w, mask)
        assert (w[mask == 0] == 0).all()
        limits = torch.maximum(limits, w.abs())
    # w[2, 3]: fan_in 4 (row), fan_out 1 (column) -> L = sqrt(3 / 2.5); w[1, 0]: fan_in 1, fan_out 3 -> sqrt(3 / 2)
    assert limits[2, 3] <= math.sqrt(3 / 2.5) and limits[2, 3] > 0.95 * math.sqrt(3 / 2.5)
    assert limits[1, 0] <= math.sqrt(3 / 2) and limits[1, 0] > 0.95 * math.sqrt(3 / 2)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.95])
def test_sparsity_aware_init_gives_every_dense_layer_glorot(sparsity):
    # A PPO-like actor whose head starts at 0.01 scale (CleanRL's init). ERK leaves the head dense at 0.5 and masks
    # it at 0.9: with sparsity-aware init, every layer must start at Glorot scale either way, as in [G].
    torch.manual_seed(0)
    net = mlp(17, 64, 64, 6)
    with torch.no_grad():
        net[-1].weight.mul_(0.01)
    method = "dense" if sparsity == 0.0 else "static"
    sparse = SparseNetwork(
        net,
        (torch.zeros(1, 17),),
        batch_size=8,
        method=method,
        sparsity=sparsity,
        distribution="erk",
        sparsity_aware_init=True,
    )
    densified = [name for name, s in sparse.target_sparsity.items() if s == 0.0]
    assert (sparsity in (0.0, 0.5)) == ("4" in densified)  # the head: dense at 0 and 0.5 only
    for name in densified:
        w = sparse.layers[name].weight.detach()
        limit = math.sqrt(6 / (w.shape[0] + w.shape[1]))  # Glorot uniform
        assert w.abs().max() <= limit
        assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.15)
    # without sparsity-aware init a dense layer keeps the network's own init
    torch.manual_seed(0)
    net = mlp(17, 64, 64, 6)
    head = net[-1].weight.detach().clone()
    SparseNetwork(net, (torch.zeros(1, 17),), batch_size=8, method="static", sparsity=0.5, distribution="erk")
    assert torch.equal(net[-1].weight, head)


def test_no_op_updates_are_not_counted():
    # cosine drop fraction is 0 at update_end (k = 0 everywhere): not a topology update
    torch.manual_seed(0)
    net, sparse = sparse_mlp(
        (6, 32, 3),
        method="set",
        sparsity=0.8,
        update_interval=5,
        update_end=10,
        drop_fraction=0.3,
        drop_schedule="cosine",
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    train_steps(net, sparse, opt, 9)
    assert sparse.updates == 1
    change, masks = sparse.last_mask_change, {n: m.clone() for n, m in sparse.masks.items()}
    loss = net(torch.randn(16, 6)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    state = copy.deepcopy(opt.state_dict())
    assert sparse.update_topology_if_due(opt) is False  # step 10 = update_end
    assert sparse.updates == 1 and sparse.last_mask_change == change
    assert all(torch.equal(m, masks[n]) for n, m in sparse.masks.items())
    after = opt.state_dict()["state"]
    assert all(torch.equal(after[i][k], v) for i, s in state["state"].items() for k, v in s.items())
    # gradual pruning at prune_start: the schedule is 0, nothing is removed
    net, prune = sparse_mlp((6, 32, 3), method="prune", sparsity=0.8, update_interval=5, prune_start=5, prune_end=15)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    train_steps(net, prune, opt, 15)
    assert prune.updates == 2  # steps 10 and 15, not 5


# --- schedules ---


def test_drop_fraction_schedules():
    assert drop_fraction_at(0, 0.3, 100, "cosine") == pytest.approx(0.3)
    assert drop_fraction_at(25, 0.3, 100, "cosine") == pytest.approx(0.15 * (1 + math.sqrt(2) / 2))
    assert drop_fraction_at(50, 0.3, 100, "cosine") == pytest.approx(0.15)
    assert drop_fraction_at(100, 0.3, 100, "cosine") == pytest.approx(0.0)
    assert drop_fraction_at(150, 0.3, 100, "cosine") == pytest.approx(0.0)
    assert drop_fraction_at(70, 0.05, 100, "constant") == 0.05


def test_cubic_pruning_schedule():
    assert pruning_sparsity_at(50, 0.9, 100, 200) == 0.0
    assert pruning_sparsity_at(100, 0.9, 100, 200) == pytest.approx(0.0)
    assert pruning_sparsity_at(150, 0.9, 100, 200) == pytest.approx(0.9 * (1 - 0.5**3))  # 0.7875
    assert pruning_sparsity_at(175, 0.9, 100, 200) == pytest.approx(0.9 * (1 - 0.25**3))  # 0.8859375
    assert pruning_sparsity_at(200, 0.9, 100, 200) == 0.9
    assert pruning_sparsity_at(300, 0.9, 100, 200) == 0.9


# --- masked training ---


@pytest.mark.parametrize(
    "optimizer", [torch.optim.Adam, torch.optim.AdamW, functools.partial(torch.optim.Adam, fused=True)]
)
@pytest.mark.parametrize("method", ["static", "set", "rigl", "prune"])
def test_inactive_weights_stay_exactly_zero(method, optimizer):
    torch.manual_seed(1)
    net, sparse = sparse_mlp(
        (6, 32, 32, 3),
        method=method,
        sparsity=0.8,
        distribution="erk",
        update_interval=10,
        drop_fraction=0.3,
        update_end=150,
        prune_start=20,
        prune_end=120,
    )
    opt = optimizer(weight_decay_groups([net], 0.1), lr=1e-2)

    def check() -> None:
        for name, mask in sparse.masks.items():
            assert (sparse.layers[name].weight[mask == 0] == 0).all()

    train_steps(net, sparse, opt, 200, check)
    assert sparse.updates > 0 or method == "static"


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_topology_update_keeps_counts_and_resets_new_connections(method):
    torch.manual_seed(2)
    net, sparse = sparse_mlp(
        (6, 32, 32, 3),
        method=method,
        sparsity=0.7,
        distribution="erk",
        update_interval=25,
        drop_fraction=0.3,
        drop_schedule="constant",
        update_end=1000,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    nnz = {name: int(m.sum()) for name, m in sparse.masks.items()}
    train_steps(net, sparse, opt, 24)  # Adam state is now non-zero at every active position
    old = {name: m.bool().clone() for name, m in sparse.masks.items()}
    old_w = {name: sparse.layers[name].weight.detach().clone() for name in sparse.masks}
    loss = net(torch.randn(16, 6)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    assert sparse.update_topology_if_due(opt)  # step 25: an update
    sparse.mask_gradients()
    for name, mask in sparse.masks.items():
        w, state, new = sparse.layers[name].weight, opt.state[sparse.layers[name].weight], mask.bool()
        assert int(new.sum()) == nnz[name]
        grown, dropped = new & ~old[name], old[name] & ~new
        k = math.floor(0.3 * nnz[name])
        assert int(grown.sum()) == int(dropped.sum()) <= k
        assert (w[grown] == 0).all() and (w[dropped] == 0).all()
        for key in ("exp_avg", "exp_avg_sq"):
            assert (state[key][grown] == 0).all() and (state[key][dropped] == 0).all()
            assert (state[key][old[name] & new] != 0).any()  # the kept connections keep their state
        # dropped ones are among the k smallest magnitudes; kept ones keep their values
        smallest = torch.topk(torch.where(old[name], old_w[name].abs(), torch.inf).flatten(), k, largest=False)
        assert set(dropped.flatten().nonzero().flatten().tolist()) <= set(smallest.indices.tolist())
        assert torch.equal(w[old[name] & new], old_w[name][old[name] & new])
        assert (w.grad[~new] == 0).all()  # gradients masked for the optimizer step


def test_rigl_grows_where_planted_gradient_is_largest():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 8))
    sparse = SparseNetwork(
        net,
        (torch.zeros(1, 8),),
        4,
        method="rigl",
        sparsity=0.75,
        distribution="uniform",
        update_interval=1,
        drop_fraction=0.25,
        drop_schedule="constant",
        update_end=10,
    )
    w, mask = net[0].weight, sparse.masks["0"]
    assert int(mask.sum()) == 16  # 64 - floor(0.75 * 64)
    with torch.no_grad():
        w.copy_(mask * (torch.rand(8, 8) + 1.0))  # active magnitudes in [1, 2)
        smallest = mask.flatten().nonzero().flatten()[:4]
        w.view(-1)[smallest] = 0.01 * torch.arange(1, 5.0)
    planted = (mask.flatten() == 0).nonzero().flatten()[torch.randperm(48)[:4]]
    w.grad = torch.rand(8, 8) * 0.1
    w.grad.view(-1)[planted] = 10.0
    old = mask.bool().clone()
    sparse.update_topology_if_due(torch.optim.Adam(net.parameters()))
    expected = old.flatten().clone()
    expected[smallest] = False
    expected[planted] = True
    assert torch.equal(mask.bool().flatten(), expected)
    assert sparse.last_mask_change == pytest.approx(4 / 16)
    assert sparsity_stats(sparse)["ever_active"] == pytest.approx(20 / 64)


@pytest.mark.parametrize("prune_end", [50, 45])
def test_pruning_follows_cubic_schedule(prune_end):
    torch.manual_seed(4)
    net, sparse = sparse_mlp(
        (6, 32, 32, 3),
        method="prune",
        sparsity=0.9,
        distribution="uniform",
        update_interval=10,
        prune_start=10,
        prune_end=prune_end,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(1, 61):
        old = {n: m.bool().clone() for n, m in sparse.masks.items()}
        old_w = {n: sparse.layers[n].weight.detach().clone() for n in sparse.masks}
        loss = net(torch.randn(16, 6)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        updated = sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        opt.step()
        # step 10 is prune_start, where the schedule is 0: nothing to prune, so not an update
        assert updated == (10 < step <= prune_end and (step % 10 == 0 or step == prune_end))
        s = pruning_sparsity_at(step, 0.9, 10, prune_end)
        for name, mask in sparse.masks.items():
            numel = mask.numel()
            if updated:
                assert int(mask.sum()) == active_count(numel, s)
                removed = old[name] & ~mask.bool()
                if removed.any():  # magnitude pruning: nothing removed is larger than anything kept
                    assert old_w[name].abs()[removed].max() <= old_w[name].abs()[mask.bool()].min()
    for mask in sparse.masks.values():
        assert int(mask.sum()) == active_count(mask.numel(), 0.9)


def test_target_copy_kept_as_sparse():
    torch.manual_seed(5)
    net, sparse = sparse_mlp((6, 16, 2), method="static", sparsity=0.6, distribution="uniform")
    target = copy.deepcopy(net)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)  # as after soft updates toward an older topology: no zeros left
    before = [w.clone() for w in sparse.weights_of(target)]
    sparse.apply_masks_(sparse.weights_of(target))
    for w, b, mask in zip(sparse.weights_of(target), before, sparse.masks.values()):
        assert (w[mask == 0] == 0).all() and torch.equal(w[mask == 1], b[mask == 1])


# --- cost accounting ---


def test_linear_flops_hand_count():
    _, sparse = sparse_mlp((3, 4, 2), method="static", sparsity=0.5, distribution="uniform")
    # layer 1: nnz 6 -> 6 mul + (6 - 4) add + 4 bias + 4 ReLU = 16; layer 2 (output): nnz 4 -> 4 + 2 + 2 = 8
    assert sparse.flops == 16 + 8
    # dense: 12 + 8 + 4 + 4 = 28 and 8 + 6 + 2 = 16
    assert sparse.dense_flops == 28 + 16
    assert (sparse.active_weights(), sparse.total_weights()) == (10, 20)


def test_conv_flops_hand_count():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4))
    sparse = SparseNetwork(net, (torch.zeros(1, 2, 5, 5),), 1, method="dense")
    # conv: 3x3 output positions, each 54 mul + 51 add + 3 bias + 3 ReLU = 111; linear: 108 + 104 + 4 = 216
    assert sparse.flops == 9 * 111 + 216


@pytest.mark.parametrize("method", ["dense", "static", "set", "rigl", "prune"])
def test_training_flops_per_method(method):
    torch.manual_seed(6)
    net, sparse = sparse_mlp(
        (3, 4, 2),
        method=method,
        sparsity=0.5,
        distribution="uniform",
        batch_size=10,
        update_interval=4,
        drop_fraction=0.5,
        update_end=8,
        prune_start=0,
        prune_end=8,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    expected = 0.0
    for step in range(1, 13):
        loss = net(torch.randn(5, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        opt.step()
        f, fd = sparse.flops, sparse.dense_flops
        if method == "rigl" and step <= 8:
            expected += 10 * (3 * f * 4 + 2 * f + fd) / 5
        else:
            expected += 10 * 3 * f
    assert sparse.train_flops == pytest.approx(expected)
    assert sparse.dense_train_flops == pytest.approx(12 * 10 * 3 * 44)
    if method == "dense":
        assert sparsity_stats(sparse)["train_flops_vs_dense"] == pytest.approx(1.0)
    if method == "prune":
        assert sparse.flops == 24  # the 50% hand-counted network of test_linear_flops_hand_count


def test_sparse_settings_refused_with_one_line_messages():
    ok = dict(sparsity=0.5, actor_sparsity=None, critic_sparsity=0.7, drop_fraction=0.1, update_interval=10)
    ok |= dict(sparse_kernels="off", checkpoint_frequency=0)
    assert network_sparsities(types.SimpleNamespace(**ok)) == {"actor": 0.5, "critic": 0.7}
    for change, match in [
        ({"actor_sparsity": 1.0}, "--actor-sparsity must be in"),
        ({"sparsity": -0.1}, "--sparsity must be in"),
        ({"drop_fraction": 1.5}, "--drop-fraction"),
        ({"update_interval": 0}, "--update-interval"),
        ({"sparse_kernels": "fast"}, "--sparse-kernels must be"),
        ({"checkpoint_frequency": -1}, "--checkpoint-frequency must be non-negative"),
    ]:
        with pytest.raises(BadInput, match=match):
            network_sparsities(types.SimpleNamespace(**{**ok, **change}))


# --- ready for a GPU ---


@pytest.mark.parametrize("method", ["static", "set", "rigl", "prune"])
def test_ordinary_steps_do_not_wait_for_the_device_and_masks_stay_in_place(method, monkeypatch):
    """On a GPU a host sync (.item(), bool/int/float of a tensor) stalls the step, and a captured graph needs its
    tensors to stay where they are: a step that changes no topology (count, mask the gradients, re-mask a target)
    reads nothing back, and the masks keep their storage through every update."""
    net, sparse = sparse_mlp((8, 32, 32, 4), method=method, sparsity=0.8, update_interval=5, update_end=40,
                             prune_start=0, prune_end=40, drop_fraction=0.3)  # fmt: skip
    target = copy.deepcopy(net)
    target_weights = sparse.weights_of(target)
    storage = {name: mask.data_ptr() for name, mask in sparse.masks.items()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    syncs = []
    for name in ("item", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor, name, functools.partialmethod(lambda t, f, n: syncs.append(n) or f(t), original, name)
        )
    updates = 0
    for _ in range(20):
        loss = net(torch.randn(16, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        before = len(syncs)
        updated = sparse.update_topology_if_due(opt)
        sparse.mask_gradients()
        sparse.apply_masks_(target_weights)
        updates += updated
        assert updated or len(syncs) == before, f"host sync on an ordinary step: {syncs[before:]}"
        opt.step()
    assert updates >= (0 if method == "static" else 3)  # the updates ran (and may read counts back)
    assert {name: mask.data_ptr() for name, mask in sparse.masks.items()} == storage
