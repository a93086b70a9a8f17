"""Tests of bpkit.functional: values against plain NumPy formulas, gradients against central
differences, numerical stability for huge logits, input checking."""

import numpy as np
import pytest
from finite_differences import numeric_grad
from hypothesis import given, settings
from hypothesis import strategies as st

import bpkit
from bpkit import F, Tensor, Value

SETTINGS = settings(max_examples=15, deadline=None)


# Reference values with plain NumPy (written independently of bpkit's stable forms).
def np_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REFERENCE = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "swish": lambda z: z / (1 + np.exp(-z)),
    "mish": lambda z: z * np.tanh(np.log(1 + np.exp(z))),
    "softplus": lambda z: np.log(1 + np.exp(z)),
    "softmax": np_softmax,
    "log_softmax": lambda z: np.log(np_softmax(z)),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@SETTINGS
@given(seed=st.integers(0, 2**16), shape=st.sampled_from([(5,), (3, 4), (2, 3, 2)]))
def test_values_and_gradients(name, seed, shape):
    x = np.random.default_rng(seed).uniform(-3, 3, size=shape)
    if name == "relu":
        x[np.abs(x) < 1e-3] = 0.5
    fn = getattr(F, name)
    np.testing.assert_allclose(fn(x).data, REFERENCE[name](x), rtol=1e-12, atol=1e-14)
    r = np.random.default_rng(seed + 1).standard_normal(shape)
    t = Tensor(x, requires_grad=True)
    (fn(t) * r).sum().backward()
    num = numeric_grad(lambda v: float((REFERENCE[name](v) * r).sum()), x)
    np.testing.assert_allclose(t.grad, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_axis(axis):
    x = np.random.default_rng(0).standard_normal((3, 4))
    s = F.softmax(x, axis=axis).data
    np.testing.assert_allclose(s.sum(axis=axis), 1.0)
    rep = bpkit.gradcheck(lambda t: F.log_softmax(t, axis=axis) * F.softmax(t, axis=axis), x)
    assert rep.ok, rep


def test_mse_loss_value_and_gradient():
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    assert F.mse_loss(pred, target).item() == pytest.approx(np.mean((pred - target) ** 2))
    t = Tensor(pred, requires_grad=True)
    F.mse_loss(t, target).backward()
    np.testing.assert_allclose(t.grad, 2 * (pred - target) / pred.size)


def test_mse_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"mse_loss.*\(4, 1\).*\(4,\)"):
        F.mse_loss(Tensor(np.zeros((4, 1))), np.zeros(4))


def np_cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


@SETTINGS
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), k=st.integers(2, 5))
def test_cross_entropy_value_and_gradient(seed, n, k):
    rng = np.random.default_rng(seed)
    z, y = rng.standard_normal((n, k)) * 3, rng.integers(0, k, size=n)
    t = Tensor(z, requires_grad=True)
    loss = F.cross_entropy(t, y)
    assert loss.item() == pytest.approx(np_cross_entropy(z, y), rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(t.grad, numeric_grad(lambda v: np_cross_entropy(v, y), z), atol=1e-8)
    onehot = np.eye(k)[y]
    np.testing.assert_allclose(t.grad, (np_softmax(z) - onehot) / n, atol=1e-14)


def test_cross_entropy_equals_composed_log_softmax():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 3)), np.array([2, 0, 1, 1])
    fused = Tensor(z, requires_grad=True)
    F.cross_entropy(fused, y).backward()
    composed = Tensor(z, requires_grad=True)
    (-(F.log_softmax(composed, axis=1)[np.arange(4), y]).mean()).backward()
    np.testing.assert_allclose(fused.grad, composed.grad, atol=1e-15)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_stability_for_huge_logits(scale):
    z = np.array([[1.0, -1.0, 0.5], [-0.2, 0.3, 1.0]]) * scale
    y = np.array([0, 2])
    for dtype in (np.float32, np.float64):
        t = Tensor(z.astype(dtype), requires_grad=True)
        with bpkit.debug():
            loss = F.cross_entropy(t, y)
            loss.backward()
        assert np.isfinite(loss.item()) and np.isfinite(t.grad).all()
        for fn in (F.log_softmax, F.softmax, F.sigmoid, F.softplus, F.swish, F.mish, F.tanh):
            u = Tensor(z.astype(dtype), requires_grad=True)
            with bpkit.debug():
                fn(u).sum().backward()
            assert np.isfinite(u.grad).all(), fn.__name__


def test_sigmoid_extremes_are_exact():
    s = F.sigmoid(np.array([-1e4, 0.0, 1e4])).data
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_cross_entropy_label_checks():
    z = Tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        F.cross_entropy(z, [0, 1, 4])
    with pytest.raises(ValueError, match=r"labels have shape \(2,\), expected \(3,\)"):
        F.cross_entropy(z, [0, 1])
    with pytest.raises(ValueError, match="one-hot"):
        F.cross_entropy(z, np.eye(4)[[0, 1, 2]])
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        F.cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        F.cross_entropy(Tensor(np.zeros(4)), [1])
    # labels wrapped in a Tensor (floating point) get the same dtype message, not "object"
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        F.cross_entropy(z, Tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="one-hot"):
        F.cross_entropy(z, Tensor(np.eye(4)[[0, 1, 2]]))


def test_accepts_array_likes_and_values():
    assert isinstance(F.relu([[-1.0, 2.0]]), Tensor)
    assert F.tanh([0.0]).data.tolist() == [0.0]
    v = Value(0.5)
    out = F.swish(v) + F.sigmoid(v) + F.relu(v) + F.tanh(v)
    out.backward()
    assert isinstance(out, Value) and np.isfinite(v.grad)


def test_softmax_and_losses_reject_a_value_by_name():
    for call, name in [
        (lambda: F.mse_loss(Value(1.0), 2.0), "mse_loss"),
        (lambda: F.softmax(Value(1.0)), "softmax"),
        (lambda: F.log_softmax(Value(1.0)), "log_softmax"),
        (lambda: F.cross_entropy(Value(1.0), [0]), "cross_entropy"),
    ]:
        with pytest.raises(TypeError, match=rf"{name}: got a scalar Value"):
            call()


# -- linear: the fused affine node of nn.Linear ---------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), n_in=st.integers(1, 5),
       n_out=st.integers(1, 4), order=st.sampled_from("CF"), bias=st.booleans())
def test_linear_gradients_against_central_differences(seed, n, n_in, n_out, order, bias):
    rng = np.random.default_rng(seed)
    a0, r = rng.standard_normal((n, n_in)), rng.standard_normal((n, n_out))
    W0 = np.asarray(rng.standard_normal((n_out, n_in)), order=order)
    b0 = rng.standard_normal(n_out)
    a, W, b = (Tensor(v.copy(order="K"), requires_grad=True) for v in (a0, W0, b0))
    (F.linear(a, W, b if bias else None) * r).sum().backward()

    def loss(av, Wv, bv):  # plain NumPy, no bpkit
        return float(((av @ Wv.T + (bv if bias else 0)) * r).sum())

    np.testing.assert_allclose(a.grad, numeric_grad(lambda v: loss(v, W0, b0), a0), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(W.grad, numeric_grad(lambda v: loss(a0, v, b0), W0), rtol=1e-6,
                               atol=1e-8)
    assert W.grad.flags.f_contiguous == W.data.flags.f_contiguous  # made in W's own layout
    if bias:
        np.testing.assert_allclose(b.grad, numeric_grad(lambda v: loss(a0, W0, v), b0),
                                   rtol=1e-6, atol=1e-8)
    else:
        assert b.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_is_one_node_with_the_numbers_of_the_composition(dtype):
    rng = np.random.default_rng(3)
    a0 = rng.standard_normal((7, 5)).astype(dtype)
    W0, b0 = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal(4).astype(dtype)
    fused = [Tensor(v, requires_grad=True) for v in (a0, W0, b0)]
    plain = [Tensor(v, requires_grad=True) for v in (a0, W0, b0)]
    z = F.linear(*fused)
    assert z.op == "linear" and len(z.inputs) == 3
    z2 = plain[0] @ plain[1].T + plain[2]
    np.testing.assert_array_equal(z.data, z2.data)
    g = rng.standard_normal((7, 4)).astype(dtype)
    z.backward(g)
    z2.backward(g)
    for f, p in zip(fused, plain, strict=True):
        assert f.grad.dtype == dtype
        np.testing.assert_allclose(f.grad, p.grad, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_linear_one_example_and_forward_mode():
    rng = np.random.default_rng(4)
    W, b, x, v = (rng.standard_normal(s) for s in [(3, 2), (3,), (2,), (2,)])
    np.testing.assert_allclose(F.linear(x, W, b).data, W @ x + b)  # a single row, 1-D
    y, jv = bpkit.jvp(lambda t: F.linear(t, Tensor(W), Tensor(b)), x, v)
    np.testing.assert_allclose(y, W @ x + b)
    np.testing.assert_allclose(jv, W @ v)
    X, V = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))  # a batch, plain arrays
    np.testing.assert_allclose(bpkit.jvp(lambda t: F.linear(t, W, b), X, V)[1], V @ W.T)


def test_linear_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) and weights of shape "
                                         r"\(4, 5\)"):
        F.linear(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"linear: bias of shape \(5,\), expected \(4,\)"):
        F.linear(np.zeros((2, 5)), np.zeros((4, 5)), np.zeros(5))
