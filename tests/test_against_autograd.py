"""The whole engine against an independent implementation: HIPS autograd, on random MLPs
with each activation and each loss, all parameter gradients compared in float64."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as ag_grad
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import F, Tensor

# The same activations and losses written twice: with bpkit, and with autograd.numpy.
ACTIVATIONS = {
    "sigmoid": (F.sigmoid, lambda z: 1 / (1 + anp.exp(-z))),
    "tanh": (F.tanh, anp.tanh),
    "relu": (F.relu, lambda z: anp.maximum(z, 0)),
    "swish": (F.swish, lambda z: z / (1 + anp.exp(-z))),
    "mish": (F.mish, lambda z: z * anp.tanh(anp.logaddexp(0, z))),
}


def ag_log_softmax(z):
    return (
        z
        - anp.max(z, axis=1, keepdims=True)
        - anp.log(anp.sum(anp.exp(z - anp.max(z, axis=1, keepdims=True)), axis=1, keepdims=True))
    )


def ag_loss(name, out, y, labels):
    if name == "mse":
        return anp.mean((out - y) ** 2)
    if name == "cross_entropy":
        return -anp.mean(ag_log_softmax(out)[anp.arange(len(labels)), labels])
    if name == "softmax_mse":  # softmax then squared error: exercises softmax's backward
        e = anp.exp(out - anp.max(out, axis=1, keepdims=True))
        return anp.mean((e / anp.sum(e, axis=1, keepdims=True) - y) ** 2)
    raise AssertionError(name)


def bp_loss(name, out, y, labels):
    if name == "mse":
        return F.mse_loss(out, y)
    if name == "cross_entropy":
        return F.cross_entropy(out, labels)
    if name == "softmax_mse":
        return F.mse_loss(F.softmax(out, axis=1), y)
    raise AssertionError(name)


def make_problem(seed, sizes, n=7):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        params += [rng.standard_normal((n_out, n_in)) / np.sqrt(n_in), rng.standard_normal(n_out)]
    x = rng.standard_normal((n, sizes[0]))
    labels = rng.integers(0, sizes[-1], size=n)
    y = np.eye(sizes[-1])[labels] if sizes[-1] > 1 else rng.standard_normal((n, 1))
    return params, x, y, labels


def forward(params, x, f):
    """z^l = a^{l-1} W^T + b for a batch of row vectors; a^l = f(z^l); linear output layer."""
    a = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        z = a @ W.T + b
        a = f(z) if i < n_layers - 1 else z
    return a


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "softmax_mse"])
@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_gradients_match_autograd(act, loss, seed):
    sizes = [[3, 5, 4], [4, 6, 5, 3]][seed]
    params, x, y, labels = make_problem(seed, sizes)
    bp_f, ag_f = ACTIVATIONS[act]

    tensors = [Tensor(p, requires_grad=True) for p in params]
    C = bp_loss(loss, forward(tensors, x, bp_f), y, labels)
    C.backward()

    def ag_C(ps):
        return ag_loss(loss, forward(ps, x, ag_f), y, labels)

    expected_C = ag_C(params)
    expected = ag_grad(ag_C)(params)
    assert C.item() == pytest.approx(float(expected_C), rel=1e-12)
    for t, g in zip(tensors, expected, strict=True):
        assert t.grad.shape == g.shape and t.grad.dtype == np.float64
        np.testing.assert_allclose(t.grad, g, rtol=1e-10, atol=1e-12)


def test_input_gradient_and_shared_weights_match_autograd():
    """Weight sharing (fan-out of a parameter) and gradients w.r.t. the input x."""
    rng = np.random.default_rng(5)
    W, x = rng.standard_normal((3, 3)), rng.standard_normal((4, 3))

    def bp(W, x):
        h = (x @ W.T).tanh()
        return ((h @ W.T).sigmoid() * h).sum() / 4.0

    def ag(args):
        W, x = args
        h = anp.tanh(x @ W.T)
        return anp.sum(1 / (1 + anp.exp(-(h @ W.T))) * h) / 4.0

    tW, tx = Tensor(W, requires_grad=True), Tensor(x, requires_grad=True)
    bp(tW, tx).backward()
    gW, gx = ag_grad(ag)([W, x])
    np.testing.assert_allclose(tW.grad, gW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tx.grad, gx, rtol=1e-10, atol=1e-12)


# Random expression graphs: a sequence of operations drawn by hypothesis, applied to two
# inputs and to the results so far (so values fan out), run by bpkit and by autograd.
OPS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    ("tanh", lambda a, b: a.tanh(), lambda a, b: anp.tanh(a)),
    ("sigmoid", lambda a, b: a.sigmoid(), lambda a, b: 1 / (1 + anp.exp(-a))),
    ("exp_small", lambda a, b: (a * 0.1).exp(), lambda a, b: anp.exp(a * 0.1)),
    ("log_pos", lambda a, b: (a * a + 1.0).log(), lambda a, b: anp.log(a * a + 1.0)),
    ("square", lambda a, b: a**2, lambda a, b: a**2),
    ("relu", lambda a, b: a.relu() - b, lambda a, b: anp.maximum(a, 0) - b),
    (
        "max1",
        lambda a, b: a.max(axis=1, keepdims=True) * b,
        lambda a, b: anp.max(a, axis=1, keepdims=True) * b,
    ),  # noqa: E501
    (
        "T_reshape",
        lambda a, b: a.T.reshape(9).reshape(3, 3) + b,
        lambda a, b: a.T.reshape(9).reshape(3, 3) + b,
    ),  # noqa: E501
    ("matmul_T", lambda a, b: a @ b.T, lambda a, b: anp.dot(a, b.T)),
    (
        "sum_keep",
        lambda a, b: a.sum(axis=1, keepdims=True) + b,
        lambda a, b: anp.sum(a, axis=1, keepdims=True) + b,
    ),
    ("mean0", lambda a, b: a.mean(axis=0) * b, lambda a, b: anp.mean(a, axis=0) * b),
    (
        "softmax",
        lambda a, b: F.softmax(a, axis=1),
        lambda a, b: (
            anp.exp(a - anp.max(a, 1, keepdims=True))
            / anp.sum(anp.exp(a - anp.max(a, 1, keepdims=True)), 1, keepdims=True)
        ),
    ),  # noqa: E501
    (
        "index",
        lambda a, b: a[np.array([0, 2, 2])][:, ::-1][:3] * b[:3],
        lambda a, b: a[np.array([0, 2, 2])][:, ::-1][:3] * b[:3],
    ),
]


@settings(max_examples=40, deadline=None)
@given(
    program=st.lists(
        st.tuples(st.integers(0, len(OPS) - 1), st.integers(0, 20), st.integers(0, 20)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**16),
)
def test_random_graphs_match_autograd(program, seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((3, 3)), rng.standard_normal((3, 3))]

    def run(values, which):
        vals = list(values)
        for op, i, j in program:
            f = OPS[op][which]
            vals.append(f(vals[i % len(vals)], vals[j % len(vals)]))
        return vals[-1]

    ts = [Tensor(x, requires_grad=True) for x in inputs]
    out = run(ts, 1)
    r = rng.standard_normal(out.shape)
    (out * r).sum().backward()
    expected = ag_grad(lambda xs: anp.sum(run(xs, 2) * r))(inputs)
    for t, g in zip(ts, expected, strict=True):
        got = t.grad if t.grad is not None else np.zeros_like(t.data)
        np.testing.assert_allclose(got, g, rtol=1e-10, atol=1e-12)
