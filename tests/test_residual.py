"""Tests of bpkit.nn.Residual (a + F(a), chapter 13): forward, gradients against HIPS
autograd and central differences, the Jacobian I + dF/dz, forward mode and errors."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences

import bpkit
from bpkit import F, Tensor, nn


def residual_net(seed=0, width=5, act=nn.Tanh):
    """Linear(3, width), two residual blocks z + W2 f(W1 z + b1) + b2, Linear(width, 2)."""
    r = np.random.default_rng(seed)

    def branch():
        return nn.Sequential(nn.Linear(width, width, init="xavier", seed=r), act(),
                             nn.Linear(width, width, init="xavier", seed=r))

    return nn.Sequential(nn.Linear(3, width, seed=r), nn.Residual(branch()),
                         nn.Residual(branch()), nn.Linear(width, 2, seed=r))


def loss_np(params, X, y):
    """The same network and loss, written independently in autograd.numpy."""
    W0, b0, W1, b1, W2, b2, W3, b3, W4, b4, W5, b5 = params
    z = anp.dot(X, W0.T) + b0
    z = z + anp.dot(anp.tanh(anp.dot(z, W1.T) + b1), W2.T) + b2
    z = z + anp.dot(anp.tanh(anp.dot(z, W3.T) + b3), W4.T) + b4
    out = anp.dot(z, W5.T) + b5
    return anp.mean((out - y) ** 2)


def test_forward_is_z_plus_branch():
    r = np.random.default_rng(1)
    branch = nn.Sequential(nn.Linear(4, 4, seed=2), nn.ReLU())
    block = nn.Residual(branch)
    z = r.normal(size=(6, 4))
    np.testing.assert_array_equal(block(z).data, z + branch(Tensor(z)).data)
    assert [n for n, _ in block.named_parameters()] == ["module.layers.0.W",
                                                       "module.layers.0.b"]
    assert block.parameters()[0] is branch.parameters()[0]


def test_gradients_match_autograd_and_central_differences():
    r = np.random.default_rng(3)
    X, y = r.normal(size=(7, 3)), r.normal(size=(7, 2))
    net = residual_net()
    F.mse_loss(net(X), Tensor(y)).backward()
    got = [p.grad for p in net.parameters()]
    arrays = [p.data.copy() for p in net.parameters()]
    want = autograd.grad(loss_np)(arrays, X, y)
    fd = central_differences(lambda: loss_np(arrays, X, y), arrays)
    for g, w, d in zip(got, want, fd, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(g, d, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid, nn.ReLU])
def test_jacobian_is_identity_plus_branch_jacobian(act):
    """d(z + F(z))/dz = I + dF/dz, with dF/dz from central differences."""
    branch = nn.Sequential(nn.Linear(4, 4, seed=5), act(), nn.Linear(4, 4, seed=6))
    block = nn.Residual(branch)
    z0 = np.random.default_rng(7).normal(size=4) + 0.1  # away from ReLU's kink

    def f_np(z):
        with bpkit.no_grad():
            return branch(Tensor(z[None, :])).data[0]

    J_F = np.stack([central_differences(lambda i=i: f_np(z0)[i], [z0])[0]
                    for i in range(4)])
    J = bpkit.jacobian(lambda z: block(z.reshape(1, 4)).reshape(4), z0)
    np.testing.assert_allclose(J, np.eye(4) + J_F, rtol=1e-6, atol=1e-8)
    # forward mode agrees: a JVP along e_k is column k of I + dF/dz
    e_2 = np.eye(4)[2]
    _, col = bpkit.jvp(lambda z: block(z.reshape(1, 4)).reshape(4), z0, e_2)
    np.testing.assert_allclose(col, J[:, 2], rtol=1e-12, atol=1e-14)


def test_identity_path_carries_the_adjoint_when_the_branch_is_dead():
    """With a branch whose output is constant, the adjoint passes through unchanged."""
    lin = nn.Linear(3, 3, seed=0)
    lin.W.assign(np.zeros((3, 3)))
    block = nn.Residual(nn.Sequential(lin, nn.Sigmoid()))
    z = Tensor(np.random.default_rng(0).normal(size=(2, 3)), requires_grad=True)
    adjoint = np.arange(6.0).reshape(2, 3)
    block(z).backward(adjoint)
    np.testing.assert_array_equal(z.grad, adjoint)


def test_array_input_takes_the_parameters_dtype():
    block = nn.Residual(nn.Linear(2, 2, seed=0, dtype=np.float32))
    assert block(np.ones((1, 2))).dtype == np.float32
    assert nn.Residual(nn.Tanh())(np.ones((1, 2))).dtype == np.float64


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="expected a Module"):
        nn.Residual(lambda z: z)
    with pytest.raises(ValueError, match=r"maps shape \(1, 3\) to \(1, 2\)"):
        nn.Residual(nn.Linear(3, 2, seed=0))(np.ones((1, 3)))
    assert repr(nn.Residual(nn.Tanh())) == "Residual(Tanh())"
