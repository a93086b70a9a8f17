"""Tests of bpkit.population (many networks in one batch) against independent code: each
slice of the batch against the same network trained alone with bpkit.nn.Linear and
bpkit.optim.SGD, the gradient against central differences, and the bookkeeping of train."""

import numpy as np
import pytest
from finite_differences import central_differences

import bpkit
from bpkit import Tensor, nn, optim
from bpkit import population as pop

X_XOR, Y_XOR = bpkit.data.xor()


def alone(params, s, X, Y, eta, alpha, n_sweeps, activation):
    """Network s of the batch as nn.Linear layers, trained alone by optim.SGD on the summed
    squared error; returns its layers."""
    layers = []
    for W, b in zip(params[::2], params[1::2], strict=True):
        layer = nn.Linear(W.shape[2], W.shape[1])
        layer.W.data[...] = W.data[s]
        layer.b.data[...] = b.data[s, 0]
        layers.append(layer)
    opt = optim.SGD(
        [q for layer in layers for q in layer.parameters()], lr=eta, momentum=alpha
    )
    for _ in range(n_sweeps):
        a = Tensor(X)
        for layer in layers:
            z = layer(a)
            a = z.sigmoid() if activation == "sigmoid" else z.tanh()
        E = 0.5 * ((a - Y) ** 2).sum()
        opt.zero_grad()
        E.backward()
        opt.step()
    return layers


@pytest.mark.parametrize(
    ("activation", "sizes", "data"),
    [
        ("sigmoid", [2, 2, 1], (X_XOR, Y_XOR)),
        ("tanh", [2, 3, 1], (X_XOR, Y_XOR)),
        ("sigmoid", [6, 2, 1], bpkit.data.mirror_symmetry(6)),
        ("sigmoid", [4, 3, 2, 4], bpkit.data.encoder(4)),
    ],
)
def test_every_slice_equals_the_network_trained_alone(activation, sizes, data):
    X, Y = data
    params = pop.init(sizes, n_nets=5, scale=0.5, seed=3)
    start = [p.data.copy() for p in params]
    pop.train(params, X, Y, eta=0.3, alpha=0.9, n_sweeps=60, activation=activation)
    for s in range(5):
        fresh = [Tensor(w.copy()) for w in start]
        layers = alone(fresh, s, X, Y, 0.3, 0.9, 60, activation)
        for layer, W, b in zip(layers, params[::2], params[1::2], strict=True):
            np.testing.assert_allclose(layer.W.data, W.data[s], rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(
                layer.b.data, b.data[s, 0], rtol=1e-10, atol=1e-13
            )


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_gradient_of_the_total_matches_central_differences(activation):
    X, Y = bpkit.data.mirror_symmetry(4)
    params = pop.init([4, 3, 1], n_nets=3, scale=1.0, seed=11)
    for p in params:
        p.grad = None
    pop.squared_error(pop.forward(params, X, activation)[-1], Y).sum().backward()
    arrays = [p.data for p in params]

    def total():
        ts = [Tensor(a) for a in arrays]
        return float(
            pop.squared_error(pop.forward(ts, X, activation)[-1], Y).data.sum()
        )

    for p, g in zip(params, central_differences(total, arrays), strict=True):
        np.testing.assert_allclose(p.grad, g, rtol=1e-6, atol=1e-9)


def test_each_network_gets_its_own_gradient():
    X, Y = X_XOR, Y_XOR
    params = pop.init([2, 2, 1], n_nets=4, scale=1.0, seed=0)
    pop.squared_error(pop.forward(params, X)[-1], Y).sum().backward()
    for s in range(4):
        one = [Tensor(p.data[s : s + 1].copy(), requires_grad=True) for p in params]
        pop.squared_error(pop.forward(one, X)[-1], Y).sum().backward()
        for p, q in zip(params, one, strict=True):
            np.testing.assert_allclose(
                p.grad[s : s + 1], q.grad, rtol=1e-13, atol=1e-16
            )


def test_init_shapes_range_and_draw_order():
    params = pop.init([3, 4, 2], n_nets=7, scale=0.3, seed=5)
    assert [p.shape for p in params] == [(7, 4, 3), (7, 1, 4), (7, 2, 4), (7, 1, 2)]
    assert all(p.requires_grad and np.abs(p.data).max() <= 0.3 for p in params)
    rng = np.random.default_rng(5)
    for p in params:
        np.testing.assert_array_equal(p.data, rng.uniform(-0.3, 0.3, p.shape))
    with pytest.raises(ValueError):
        pop.init([3], n_nets=2)
    with pytest.raises(ValueError):
        pop.forward(params, np.zeros((1, 3)), activation="relu")


def test_train_records_losses_norms_solved_and_snapshots():
    params = pop.init([2, 2, 1], n_nets=6, scale=0.3, seed=7)
    run = pop.train(params, X_XOR, Y_XOR, eta=0.5, alpha=0.9, n_sweeps=800)
    assert run.losses.shape == run.grad_norms.shape == (800, 6)
    # replay: the recorded loss, gradient norm and solved sweep of every network
    replay = pop.init([2, 2, 1], n_nets=6, scale=0.3, seed=7)
    for t in (0, 1, 5, 799):
        probe = [Tensor(p.data.copy(), requires_grad=True) for p in replay]
        pop.train(probe, X_XOR, Y_XOR, 0.5, 0.9, t)
        for p in probe:
            p.grad = None
        E = pop.squared_error(pop.forward(probe, X_XOR)[-1], Y_XOR)
        E.sum().backward()
        np.testing.assert_allclose(run.losses[t], E.data, rtol=1e-12)
        norms = np.sqrt(sum((p.grad.reshape(6, -1) ** 2).sum(1) for p in probe))
        np.testing.assert_allclose(run.grad_norms[t], norms, rtol=1e-12)
    assert (run.solved_at >= 0).any()
    for s in np.flatnonzero(run.solved_at >= 0):
        t = run.solved_at[s]
        one = [Tensor(w[s : s + 1]) for w in run.snapshot]
        out = pop.forward(one, X_XOR)[-1].data[0]
        assert np.all(np.abs(out - Y_XOR) < 0.5)
        before = [Tensor(p.data.copy(), requires_grad=True) for p in replay]
        pop.train(before, X_XOR, Y_XOR, 0.5, 0.9, t)  # the weights at sweep t ...
        for w, snap in zip(before, run.snapshot, strict=True):
            np.testing.assert_allclose(w.data[s], snap[s], rtol=1e-12)
        if t > 0:  # ... and the sweep before was not yet solved
            prev = [Tensor(p.data.copy(), requires_grad=True) for p in replay]
            pop.train(prev, X_XOR, Y_XOR, 0.5, 0.9, t - 1)
            out = pop.forward([Tensor(w.data[s : s + 1]) for w in prev], X_XOR)[
                -1
            ].data[0]
            assert not np.all(np.abs(out - Y_XOR) < 0.5)


def test_velocity_continues_a_run_exactly():
    whole = pop.init([2, 2, 1], n_nets=3, scale=1.0, seed=2)
    pop.train(whole, X_XOR, Y_XOR, 0.5, 0.9, 300)
    split = pop.init([2, 2, 1], n_nets=3, scale=1.0, seed=2)
    first = pop.train(split, X_XOR, Y_XOR, 0.5, 0.9, 120)
    pop.train(split, X_XOR, Y_XOR, 0.5, 0.9, 180, velocity=first.velocity)
    for p, q in zip(whole, split, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
