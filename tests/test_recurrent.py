"""Chapter 14: nn.RNN, nn.LSTM and the stack primitive, against an independent loop
implementation of PyTorch's equations in HIPS autograd and against central differences;
shapes, seeded initialisation, forward mode, second derivatives and bad-input errors."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences, numeric_grad

import bpkit
from bpkit import Tensor, nn, ops

rng = np.random.default_rng(14)
NAMES = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def ag_sigmoid(z):
    return 1 / (1 + anp.exp(-z))


def ag_rnn(params, x, h0, nonlinearity):
    """h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), one example row at a time."""
    W_ih, W_hh, b_ih, b_hh = params
    f = anp.tanh if nonlinearity == "tanh" else (lambda z: anp.maximum(z, 0))
    outs = []
    for n in range(x.shape[0]):
        h, hs = h0[n], []
        for t in range(x.shape[1]):
            h = f(anp.dot(W_ih, x[n, t]) + b_ih + anp.dot(W_hh, h) + b_hh)
            hs.append(h)
        outs.append(anp.stack(hs))
    return anp.stack(outs)


def ag_lstm(params, x, h0, c0):
    """PyTorch's LSTM equations, gates (i, f, g, o), per example and step."""
    W_ih, W_hh, b_ih, b_hh = params
    H = W_hh.shape[1]
    outs, cs = [], []
    for n in range(x.shape[0]):
        h, c, hs = h0[n], c0[n], []
        for t in range(x.shape[1]):
            z = anp.dot(W_ih, x[n, t]) + b_ih + anp.dot(W_hh, h) + b_hh
            i, f = ag_sigmoid(z[:H]), ag_sigmoid(z[H : 2 * H])
            g, o = anp.tanh(z[2 * H : 3 * H]), ag_sigmoid(z[3 * H :])
            c = f * c + i * g
            h = o * anp.tanh(c)
            hs.append(h)
        outs.append(anp.stack(hs))
        cs.append(c)
    return anp.stack(outs), anp.stack(cs)


def make(kind, n_in=3, H=4, seed=0, **kw):
    if kind == "lstm":
        return nn.LSTM(n_in, H, seed=seed, **kw)
    return nn.RNN(n_in, H, nonlinearity=kind, seed=seed, **kw)


KINDS = ["tanh", "relu", "lstm"]


def bpkit_loss(layer, x, h0, c0, R, Rn):
    """C = sum(R * output) + sum(Rn * h_n): every output and the final state."""
    if isinstance(layer, nn.LSTM):
        out, (h_n, c_n) = layer(x, (h0, c0))
        return (out * R).sum() + (h_n * Rn).sum() + (c_n * Rn).sum()
    out, h_n = layer(x, h0)
    return (out * R).sum() + (h_n * Rn).sum()


def ag_loss(kind, params, x, h0, c0, R, Rn):
    if kind == "lstm":
        out, c_n = ag_lstm(params, x, h0, c0)
        return anp.sum(out * R) + anp.sum(out[:, -1] * Rn) + anp.sum(c_n * Rn)
    out = ag_rnn(params, x, h0, kind)
    return anp.sum(out * R) + anp.sum(out[:, -1] * Rn)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_gradients_match_autograd(kind):
    B, T, n_in, H = 3, 5, 3, 4
    layer = make(kind, n_in, H)
    x = rng.standard_normal((B, T, n_in))
    h0, c0 = rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5
    R, Rn = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))
    params = [getattr(layer, n).data.copy() for n in NAMES]
    xt, h0t, c0t = (Tensor(a.copy(), requires_grad=True) for a in (x, h0, c0))
    C = bpkit_loss(layer, xt, h0t, c0t, R, Rn)
    C.backward()

    def f(params, x, h0, c0):
        return ag_loss(kind, params, x, h0, c0, R, Rn)

    np.testing.assert_allclose(C.item(), f(params, x, h0, c0), rtol=1e-12)
    n_args = 4 if kind == "lstm" else 3  # an RNN has no cell state c0
    g_params, g_x, g_h0, *g_c0 = (autograd.grad(f, i)(params, x, h0, c0) for i in range(n_args))
    for name, g in zip(NAMES, g_params, strict=True):
        np.testing.assert_allclose(getattr(layer, name).grad, g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, g_x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h0t.grad, g_h0, rtol=1e-10, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c0t.grad, g_c0[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_central_differences(kind):
    B, T, n_in, H = 2, 4, 2, 3
    layer = make(kind, n_in, H, seed=3)
    x = rng.standard_normal((B, T, n_in))
    R, Rn = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))
    zeros = np.zeros((B, H))
    bpkit_loss(layer, Tensor(x), zeros, zeros, R, Rn).backward()
    arrays = [getattr(layer, n).data for n in NAMES]

    def C():
        with bpkit.no_grad():
            return bpkit_loss(layer, x, zeros, zeros, R, Rn).item()

    for name, numeric in zip(NAMES, central_differences(C, arrays), strict=True):
        np.testing.assert_allclose(getattr(layer, name).grad, numeric, rtol=1e-6, atol=1e-8)


def test_default_state_is_zero_and_h_n_is_the_last_output():
    lstm, rnn = make("lstm"), make("tanh")
    x = rng.standard_normal((2, 6, 3))
    out, (h_n, c_n) = lstm(x)
    out0, (h0n, c0n) = lstm(x, (np.zeros((2, 4)), np.zeros((2, 4))))
    np.testing.assert_array_equal(out.data, out0.data)
    np.testing.assert_array_equal(c_n.data, c0n.data)
    np.testing.assert_array_equal(out.data[:, -1], h_n.data)
    assert out.shape == (2, 6, 4) and h_n.shape == c_n.shape == (2, 4)
    out, h_n = rnn(x)
    assert out.shape == (2, 6, 4) and h_n.shape == (2, 4)
    np.testing.assert_array_equal(out.data[:, -1], h_n.data)


def test_state_carries_over_between_chunks():
    """Two chunks with the state handed over equal one pass (truncated BPTT's forward)."""
    for layer in (make("lstm"), make("tanh")):
        x = rng.standard_normal((2, 7, 3))
        out, state = layer(x)
        out_a, state_a = layer(x[:, :3])
        out_b, state_b = layer(x[:, 3:], state_a)
        np.testing.assert_allclose(out_b.data, out.data[:, 3:], rtol=1e-13)


def test_parameters_names_shapes_and_seeded_init():
    lstm = nn.LSTM(3, 5, seed=7)
    assert [n for n, _ in lstm.named_parameters()] == NAMES
    shapes = [p.shape for p in lstm.parameters()]
    assert shapes == [(20, 3), (20, 5), (20,), (20,)]
    r = 1 / np.sqrt(5)
    assert all(np.abs(p.data).max() <= r for p in lstm.parameters())
    again = nn.LSTM(3, 5, seed=7)
    for p, q in zip(lstm.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(nn.LSTM(3, 5, seed=8).weight_ih.data, lstm.weight_ih.data)
    rnn = nn.RNN(3, 5, seed=7, bias=False)
    assert [n for n, _ in rnn.named_parameters()] == ["weight_ih", "weight_hh"]
    assert rnn.bias_ih is None and rnn(np.ones((1, 2, 3)))[0].shape == (1, 2, 5)
    f32 = nn.RNN(3, 5, seed=7, dtype=np.float32)
    assert f32.weight_hh.dtype == np.float32 and f32(np.ones((1, 2, 3)))[0].dtype == np.float32
    assert "LSTM(3, 5)" == repr(lstm) and "relu" in repr(nn.RNN(1, 2, "relu"))


def test_state_dict_round_trip():
    a, b = nn.LSTM(2, 3, seed=1), nn.LSTM(2, 3, seed=2)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((2, 4, 2))
    np.testing.assert_array_equal(a(x)[0].data, b(x)[0].data)


@pytest.mark.parametrize("kind", ["tanh", "lstm"])
def test_forward_mode_matches_reverse_mode(kind):
    """bpkit.jvp through the layer (the stack's JVP included) against grad."""
    layer = make(kind, 2, 3, seed=5)
    R = rng.standard_normal((2, 4, 3))
    x0, v = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 2))

    def C(x):
        return (layer(x)[0] * R).sum()

    _, tangent = bpkit.jvp(C, x0, v)
    np.testing.assert_allclose(tangent, (bpkit.grad(C)(x0) * v).sum(), rtol=1e-11)


def test_second_derivatives_match_autograd():
    """hvp (forward over reverse) through an LSTM against HIPS autograd."""
    layer = make("lstm", 2, 3, seed=9)
    params = [getattr(layer, n).data.copy() for n in NAMES]
    R = rng.standard_normal((2, 3, 3))
    zeros = np.zeros((2, 3))
    x0, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))

    def C(x):
        return ((layer(x)[0] * R).sum()) ** 2

    def C_ag(x):
        out, _ = ag_lstm(params, x, zeros, zeros)
        return anp.sum(out * R) ** 2

    expected = autograd.grad(lambda x: anp.sum(autograd.grad(C_ag)(x) * v))(x0)
    np.testing.assert_allclose(bpkit.hvp(C, x0, v), expected, rtol=1e-9, atol=1e-11)


def test_stack_primitive():
    xs = [rng.standard_normal((2, 3)) for _ in range(4)]
    for axis in (0, 1, 2, -1):
        out = ops.stack(xs, axis=axis)
        np.testing.assert_array_equal(out, np.stack(xs, axis=axis))
        R = rng.standard_normal(out.shape)
        ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
        (ops.stack(ts, axis=axis) * R).sum().backward()
        for i, t in enumerate(ts):
            def c(xi, i=i, axis=axis, R=R):
                args = [xi if j == i else xj for j, xj in enumerate(xs)]
                return float((np.stack(args, axis=axis) * R).sum())

            np.testing.assert_allclose(t.grad, numeric_grad(c, xs[i]), rtol=1e-7)
    with pytest.raises(ValueError, match="one shape"):
        ops.stack([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="at least one"):
        ops.stack([])
    with pytest.raises(ValueError, match="out of range"):
        ops.stack([np.ones(2)], axis=3)


@pytest.mark.parametrize(
    "make_layer, call, match",
    [
        (lambda: nn.RNN(3, 4), lambda m: m(np.ones((5, 3))), r"\(batch, time, 3\).*x\[None\]"),
        (lambda: nn.LSTM(3, 4), lambda m: m(np.ones((2, 5, 2))), r"\(batch, time, 3\)"),
        (lambda: nn.LSTM(3, 4), lambda m: m(np.ones((2, 0, 3))), "time >= 1"),
        (lambda: nn.RNN(3, 4), lambda m: m(np.ones((2, 5, 3)), np.zeros((3, 4))),
         r"h0 must have shape \(batch, n_hidden\) = \(2, 4\)"),
        (lambda: nn.LSTM(3, 4), lambda m: m(np.ones((2, 5, 3)), (np.zeros((2, 4)),)),
         r"pair \(h0, c0\)"),
        (lambda: nn.LSTM(3, 4), lambda m: m(np.ones((2, 5, 3)),
                                            (np.zeros((2, 4)), np.zeros((2, 5)))),
         r"c0 must have shape"),
    ],
)
def test_bad_inputs_name_the_problem(make_layer, call, match):
    with pytest.raises(ValueError, match=match):
        call(make_layer())


def test_bad_construction_names_the_problem():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="LSTM: sizes must be positive ints"):
        nn.LSTM(0, 3)
    with pytest.raises(ValueError, match="RNN: sizes must be positive ints"):
        nn.RNN(2, 2.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.LSTM(2, 3, dtype=np.int64)
    with pytest.raises(TypeError, match="input has dtype float32"):
        nn.LSTM(2, 3)(Tensor(np.ones((1, 2, 2), dtype=np.float32)))
