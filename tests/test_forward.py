"""Tests of forward mode (bpkit.jvp, Dual): J v against central differences and against
reverse mode (grad . v), on the same Python functions."""

import numpy as np
import pytest

import bpkit
from bpkit import F, Tensor
from bpkit.forward import Dual

rng = np.random.default_rng(0)
W = rng.standard_normal((4, 3))
A = rng.standard_normal((3, 3))


# Functions R^3 -> R (written once; they run on a Tensor under grad, a Dual under jvp).
SCALAR_FUNCTIONS = {
    "mlp_tanh": lambda x: ((W @ x).tanh() * 2.0).sum(),
    "mlp_relu_sigmoid": lambda x: (W @ x).relu().sum() + F.sigmoid(x).mean(),
    "exp_log_pow": lambda x: (x.exp() + 1.0).log().sum() + (x**2).sum() ** 0.5,
    "div_sub": lambda x: (1.0 / (1.0 + x * x) - x / 3.0).sum(),
    "max_reshape_T": lambda x: (x.reshape(3, 1) @ x.reshape(1, 3)).T.max(axis=0).sum(),
    "index": lambda x: x[np.array([0, 2, 2])].sum() * x[1],
    "swish_mish": lambda x: (F.swish(x) * F.mish(x)).sum(),
    "softmax_losses": lambda x: (
        F.cross_entropy((A @ x).reshape(1, 3), [2])
        + F.mse_loss(F.softmax(x), np.ones(3) / 3)
        + F.log_softmax(x).sum()
    ),
    "constant_tensor": lambda x: (Tensor(W) @ x).tanh().sum() + (x - Tensor(np.ones(3))).sum(),
    "rpow_rsub": lambda x: (2.0**x).sum() + ((5.0 - x) * (1.0 - x)).sum(),
}


def central_jvp(f_np, x, v, h=1e-6):
    return (f_np(x + h * v) - f_np(x - h * v)) / (2 * h)


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
def test_jvp_equals_gradient_dot_v_and_central_differences(name):
    f = SCALAR_FUNCTIONS[name]
    x = np.array([0.3, -1.2, 0.8])
    v = np.array([1.0, 0.5, -2.0])
    value, jv = bpkit.jvp(f, x, v)
    assert value == pytest.approx(f(Tensor(x)).item(), rel=1e-14)
    g = bpkit.grad(f)(x)
    assert jv == pytest.approx(float(g @ v), rel=1e-10, abs=1e-12)
    with bpkit.no_grad():
        num = central_jvp(lambda u: f(Tensor(u)).item(), x, v)
    assert jv == pytest.approx(num, rel=1e-6, abs=1e-8)


def test_jvp_of_vector_function_columns_give_the_jacobian():
    def f(x):
        return (W @ x).tanh() * x.sum()

    x = np.array([0.1, 0.2, -0.4])
    J = np.stack([bpkit.jvp(f, x, e)[1] for e in np.eye(3)], axis=1)
    with bpkit.no_grad():
        J_num = np.stack(
            [central_jvp(lambda u: f(Tensor(u)).data, x, e) for e in np.eye(3)], axis=1
        )
    np.testing.assert_allclose(J, J_num, rtol=1e-6, atol=1e-9)
    # rows of J by reverse mode (vector-Jacobian products with unit seeds)
    for j in range(4):
        t = Tensor(x, requires_grad=True)
        f(t).backward(np.eye(4)[j])
        np.testing.assert_allclose(t.grad, J[j], rtol=1e-10, atol=1e-12)


def test_scalar_in_scalar_out():
    value, d = bpkit.jvp(lambda x: x.exp() * x, 1.5, 1.0)
    assert isinstance(value, float) and isinstance(d, float)
    assert d == pytest.approx(np.exp(1.5) * 2.5)
    assert bpkit.grad(lambda x: x.exp() * x)(1.5) == pytest.approx(d)


def test_float32_tangents_stay_float32():
    x = np.ones(3, np.float32)
    dual = Dual(x, np.ones(3, np.float32))
    out = (dual * 2.0 + 1).tanh().sum()
    assert out.primal.dtype == np.float32 and out.tangent.dtype == np.float32


def test_dual_broadcasting_and_shape_errors():
    d = Dual(np.ones(3), np.arange(3.0))
    out = d + np.zeros((2, 3))
    assert out.tangent.shape == (2, 3)
    np.testing.assert_array_equal(out.tangent[1], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\)"):
        d + np.ones(4)
    with pytest.raises(ValueError, match=r"jvp: direction v has shape \(2,\)"):
        bpkit.jvp(lambda x: x, np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="matmul"):
        d @ np.ones((4, 2))


def test_jvp_through_nn_layers_equals_gradient_dot_v():
    mlp = bpkit.nn.MLP([3, 4, 2], activation="tanh", seed=0)
    w = np.array([1.0, -2.0])
    x, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))

    def f(x):
        return (mlp(x) @ w).sum()

    value, d = bpkit.jvp(f, x, v)
    assert value == pytest.approx(f(x).item(), rel=1e-14)
    assert d == pytest.approx(float((bpkit.grad(f)(x) * v).sum()), rel=1e-12)
    assert d == pytest.approx(central_jvp(lambda x: f(x).item(), x, v), rel=1e-7)
    conv = bpkit.nn.Conv2d(1, 2, 2, padding=1, seed=0)  # im2col has a JVP too
    x4, v4 = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 1, 3, 3))

    def g(x):
        return (conv(x) ** 2).sum()

    _, d = bpkit.jvp(g, x4, v4)
    assert d == pytest.approx(float((bpkit.grad(g)(x4) * v4).sum()), rel=1e-12)
