"""Tests of bpkit.checkpoint (gradient checkpointing, chapter 15): gradients bit-identical
to the plain run on MLP segments (also nested, with explicit params, inputs that need no
gradient, repeated backward passes), against HIPS autograd and central differences, second
derivatives, no_grad, forward mode, version counters, error messages, and a lower peak
memory on a deep MLP (tracemalloc)."""

import tracemalloc

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences

import bpkit
from bpkit import F, Tensor, nn


def make_layers(depth=6, width=7, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    return [nn.Linear(width, width, init="xavier", seed=r, dtype=dtype) for _ in range(depth)]


def segment(layers, act=F.tanh, counter=None):
    """a^l = f(W^l a^{l-1} + b^l) for the given layers, as one function of a^{l-1}."""

    def f(a):
        for layer in layers:
            if counter is not None:
                counter[0] += 1
            a = act(layer(a))
        return a

    return f


def run(layers, X, schedule, act=F.tanh, x_grad=True, counter=None):
    """Loss C = sum(a^L * a^L) and every gradient, with the layers checkpointed in groups.

    ``schedule``: "plain", "segments" (groups of 2), "nested" (two levels), "params"
    (explicit params), "tail" (the last group plain)."""
    for layer in layers:
        layer.zero_grad()
    x = Tensor(X.copy(), requires_grad=x_grad)
    groups = [layers[i:i + 2] for i in range(0, len(layers), 2)]
    a = x
    if schedule == "plain":
        a = segment(layers, act, counter)(a)
    elif schedule == "segments":
        for g in groups:
            a = bpkit.checkpoint(segment(g, act, counter), a)
    elif schedule == "tail":
        for g in groups[:-1]:
            a = bpkit.checkpoint(segment(g, act, counter), a)
        a = segment(groups[-1], act, counter)(a)
    elif schedule == "params":
        for g in groups:
            ps = [p for layer in g for p in layer.parameters()]
            a = bpkit.checkpoint(segment(g, act, counter), a, params=ps)
    elif schedule == "nested":
        half = len(groups) // 2

        def outer(gs):
            def f(h):
                for g in gs:
                    h = bpkit.checkpoint(segment(g, act, counter), h)
                return h
            return f

        a = bpkit.checkpoint(outer(groups[:half]), a)
        a = bpkit.checkpoint(outer(groups[half:]), a)
    C = (a * a).sum()
    C.backward()
    grads = [p.grad for layer in layers for p in layer.parameters()]
    return C.item(), x.grad, grads


SCHEDULES = ["segments", "tail", "params", "nested"]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("act", [F.tanh, F.relu, F.sigmoid])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradients_bit_identical(schedule, act, dtype):
    layers = make_layers(dtype=dtype)
    X = np.random.default_rng(3).standard_normal((5, 7)).astype(dtype)
    C0, gx0, g0 = run(layers, X, "plain", act)
    C1, gx1, g1 = run(layers, X, schedule, act)
    assert C0 == C1
    assert np.array_equal(gx0, gx1) and gx1.dtype == dtype
    assert all(np.array_equal(a, b) for a, b in zip(g0, g1, strict=True))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_input_without_gradient(schedule):
    layers = make_layers()
    X = np.random.default_rng(4).standard_normal((3, 7))
    _, gx0, g0 = run(layers, X, "plain", x_grad=False)
    _, gx1, g1 = run(layers, X, schedule, x_grad=False)
    assert gx0 is None and gx1 is None
    assert all(np.array_equal(a, b) for a, b in zip(g0, g1, strict=True))


def test_input_only_no_params():
    """A function of its inputs alone (nothing closed over), including a constant input."""
    r = np.random.default_rng(5)
    A, B = r.standard_normal((4, 3)), r.standard_normal((3, 3))

    def f(a, b):
        return (a @ b).tanh() * a.sum()

    def loss(ck):
        a, b = Tensor(A.copy(), requires_grad=True), Tensor(B.copy())
        y = bpkit.checkpoint(f, a, b) if ck else f(a, b)
        (y * y).sum().backward()
        return a.grad

    assert np.array_equal(loss(False), loss(True))


def test_counts_of_recomputation():
    """Each layer runs once in the forward pass and once more per checkpoint level."""
    layers = make_layers(depth=8)
    X = np.random.default_rng(6).standard_normal((2, 7))
    expected = {"plain": 8, "segments": 16, "tail": 14, "params": 16, "nested": 24}
    for schedule, count in expected.items():
        counter = [0]
        run(layers, X, schedule, counter=counter)
        assert counter[0] == count, schedule


def test_against_autograd_and_central_differences():
    layers = make_layers(depth=4, width=3, seed=7)
    X = np.random.default_rng(8).standard_normal((2, 3))
    _, _, grads = run(layers, X, "nested")
    arrays = [p.data.copy() for layer in layers for p in layer.parameters()]

    def loss_np(ps):
        a = X
        for W, b in zip(ps[::2], ps[1::2], strict=True):
            a = anp.tanh(anp.dot(a, W.T) + b)
        return anp.sum(a * a)

    expected = autograd.grad(loss_np)(arrays)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    numeric = central_differences(lambda: loss_np(arrays), arrays)
    for g, e in zip(grads, numeric, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-9)


def test_backward_twice_accumulates_as_plain():
    layers = make_layers(depth=4)
    X = np.random.default_rng(9).standard_normal((3, 7))
    results = []
    for ck in (False, True):
        for layer in layers:
            layer.zero_grad()
        f = segment(layers)
        a = bpkit.checkpoint(f, Tensor(X)) if ck else f(Tensor(X))
        C = (a * a).sum()
        C.backward()
        C.backward()
        results.append([p.grad for layer in layers for p in layer.parameters()])
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))


def test_grad_transform_leaves_closed_over_params_alone():
    """bpkit.grad returns dC/dx; the parameters f reads keep grad None."""
    layers = make_layers(depth=3)
    X = np.random.default_rng(10).standard_normal((2, 7))
    f = segment(layers)
    g_plain = bpkit.grad(lambda x: (f(x) ** 2).sum())(X)
    g_ck = bpkit.grad(lambda x: (bpkit.checkpoint(f, x) ** 2).sum())(X)
    assert np.array_equal(g_plain, g_ck)
    assert all(p.grad is None for layer in layers for p in layer.parameters())


def test_second_derivatives():
    d2 = bpkit.grad(bpkit.grad(lambda x: bpkit.checkpoint(lambda t: (t.tanh() * t).sum(), x)))
    x = 0.3
    s = 1 / np.cosh(x) ** 2
    assert np.isclose(d2(x), 2 * s - 2 * x * np.tanh(x) * s, rtol=1e-12)
    layers = make_layers(depth=2, width=4)
    X = np.random.default_rng(11).standard_normal((3, 4))
    V = np.random.default_rng(12).standard_normal((3, 4))
    f = segment(layers)
    hv_plain = bpkit.hvp(lambda x: (f(x) ** 2).sum(), X, V)
    hv_ck = bpkit.hvp(lambda x: (bpkit.checkpoint(f, x) ** 2).sum(), X, V)
    np.testing.assert_allclose(hv_ck, hv_plain, rtol=1e-12, atol=1e-14)


def test_no_grad_and_forward_mode_just_run_f():
    layers = make_layers(depth=2)
    X = np.random.default_rng(13).standard_normal((2, 7))
    f = segment(layers)
    with bpkit.no_grad():
        y = bpkit.checkpoint(f, Tensor(X, requires_grad=True))
    assert not y.requires_grad and y.inputs == ()
    assert np.array_equal(y.data, f(Tensor(X)).data)
    v = np.ones_like(X)
    val, tan = bpkit.jvp(lambda x: bpkit.checkpoint(f, x).sum(), X, v)
    val0, tan0 = bpkit.jvp(lambda x: f(x).sum(), X, v)
    assert val == val0 and tan == tan0


def test_nothing_requires_grad_gives_a_constant():
    y = bpkit.checkpoint(lambda a: a * 2.0, Tensor(np.ones(3)))
    assert not y.requires_grad and np.array_equal(y.data, np.full(3, 2.0))


def test_in_place_change_before_backward_is_refused():
    layers = make_layers(depth=2)
    X = np.random.default_rng(14).standard_normal((2, 7))
    a = bpkit.checkpoint(segment(layers), Tensor(X, requires_grad=True))
    C = (a * a).sum()
    layers[0].W.data -= 0.1  # an optimiser step before the backward pass
    with pytest.raises(RuntimeError, match="checkpoint.*modified in place"):
        C.backward()


def test_missing_param_is_named():
    layers = make_layers(depth=2)
    X = np.random.default_rng(15).standard_normal((2, 7))
    a = bpkit.checkpoint(segment(layers), Tensor(X), params=layers[0].parameters())
    with pytest.raises(RuntimeError, match=r"requires a gradient \(shape \(7,\), label 'b'\) "
                       r"that is neither an input nor in params"):
        (a * a).sum().backward()


def test_argument_errors():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="f must return one Tensor, got tuple"):
        bpkit.checkpoint(lambda a: (a, a), x)
    with pytest.raises(TypeError, match=r"checkpoint\(f, x\)"):
        bpkit.checkpoint(lambda: x)
    with pytest.raises(TypeError, match="without requires_grad"):
        bpkit.checkpoint(lambda a: a * 2.0, x, params=[Tensor(np.ones(3))])
    with pytest.raises(TypeError, match="got ndarray"):
        bpkit.checkpoint(lambda a: a * 2.0, x, params=[np.ones(3)])


def test_peak_memory_lower_on_a_deep_mlp():
    layers = make_layers(depth=16, width=64, seed=16)
    X = np.random.default_rng(17).standard_normal((64, 64))

    def peak(schedule):
        run(layers, X, schedule)  # warm up
        tracemalloc.start()
        try:
            run(layers, X, schedule)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    plain, segments, nested = peak("plain"), peak("segments"), peak("nested")
    assert segments < 0.75 * plain, (segments, plain)
    assert nested < 0.75 * plain, (nested, plain)
