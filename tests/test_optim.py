"""Tests of bpkit.optim: SGD with 1986 momentum against a hand computation, and
Levenberg-Marquardt (Jacobian against central differences and autograd; convergence)."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from bpkit import Tensor, nn, optim

A = np.array([[3.0, 0.5], [0.5, 1.0]])
c = np.array([1.0, -2.0])


def quadratic(w: Tensor) -> Tensor:
    """E(w) = 1/2 w^T A w - c^T w, gradient A w - c."""
    return 0.5 * (w * (w @ A)).sum() - (w * c).sum()


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_sgd_momentum_matches_the_1986_rule(momentum):
    eta = 0.1
    w0 = np.array([2.0, 1.0])
    w = Tensor(w0.copy(), requires_grad=True)
    data_before = w.data
    opt = optim.SGD([w], lr=eta, momentum=momentum)
    # by hand: Δw(t) = -η ∂E/∂w + α Δw(t-1)
    w_hand, dw = w0.copy(), np.zeros(2)
    # PyTorch's form: v = α v + g, w -= η v
    w_torch, v = w0.copy(), np.zeros(2)
    for _ in range(15):
        opt.zero_grad()
        quadratic(w).backward()
        opt.step()
        dw = -eta * (A @ w_hand - c) + momentum * dw
        w_hand = w_hand + dw
        v = momentum * v + (A @ w_torch - c)
        w_torch = w_torch - eta * v
        np.testing.assert_allclose(w.data, w_hand, rtol=1e-13)
    np.testing.assert_allclose(w_torch, w_hand, rtol=1e-12)
    assert w.data is data_before  # updated in place


def test_sgd_skips_params_without_grad_and_keeps_dtype():
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    (a * a).sum().backward()  # b not used: b.grad is None
    opt.step()
    np.testing.assert_allclose(a.data, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert a.data.dtype == np.float32
    opt.zero_grad()
    assert a.grad is None


def test_sgd_bad_arguments():
    w = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([w], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([w], lr=0.1, momentum=1.0)
    with pytest.raises(TypeError, match="requires_grad"):
        optim.SGD([Tensor(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"SGD: pass model.parameters\(\), not the Linear"):
        optim.SGD(nn.Linear(2, 1, seed=0), lr=0.1)


# -- Levenberg-Marquardt ------------------------------------------------------------------

t = np.linspace(0.0, 1.0, 12)
y = 2.0 * np.exp(-1.5 * t) + 0.5  # data from y = p0 exp(p1 t) + p2, p = (2, -1.5, 0.5)


def make_params():
    return Tensor(np.array([1.0, -0.5]), requires_grad=True), Tensor(
        np.array([0.0]), requires_grad=True
    )


def residual(p: Tensor, q: Tensor) -> Tensor:
    """e_i = p0 exp(p1 t_i) + q0 - y_i."""
    return p[0] * (p[1] * t).exp() + q[0] - y


def residual_np(w):
    return w[0] * anp.exp(w[1] * t) + w[2] - y


def test_jacobian_matches_finite_differences_and_autograd():
    p, q = make_params()
    e, J = optim.jacobian(lambda: residual(p, q), [p, q])
    w = np.concatenate([p.data, q.data])
    np.testing.assert_allclose(e, residual_np(w))
    J_fd = np.zeros((len(t), 3))
    h = 1e-6
    for k in range(3):
        dw = np.zeros(3)
        dw[k] = h
        J_fd[:, k] = (residual_np(w + dw) - residual_np(w - dw)) / (2 * h)
    np.testing.assert_allclose(J, J_fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(J, autograd.jacobian(residual_np)(w), rtol=1e-12)
    assert p.grad is None and q.grad is None


def test_jacobian_of_a_model_with_matrix_residuals():
    rng = np.random.default_rng(0)
    model = nn.MLP([2, 3, 2], activation="tanh", seed=0)
    X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    e, J = optim.jacobian(lambda: model(X) - Y, model.parameters())
    n = sum(p.size for p in model.parameters())
    assert e.shape == (8,) and J.shape == (8, n)

    def res(w):
        W1, b1 = w[:6].reshape(3, 2), w[6:9]
        W2, b2 = w[9:15].reshape(2, 3), w[15:17]
        return (anp.dot(anp.tanh(anp.dot(X, W1.T) + b1), W2.T) + b2 - Y).ravel()

    w = np.concatenate([p.data.ravel() for p in model.parameters()])
    np.testing.assert_allclose(J, autograd.jacobian(res)(w), rtol=1e-10, atol=1e-12)


def test_lm_first_step_is_the_damped_gauss_newton_step():
    p, q = make_params()
    w0 = np.concatenate([p.data, q.data])
    mu = 0.01
    lm = optim.LevenbergMarquardt([p, q], mu=mu)
    loss = lm.step(lambda: residual(p, q))
    # independently: J by autograd, dw = -(J^T J + mu I)^{-1} J^T e
    J = autograd.jacobian(residual_np)(w0)
    e = residual_np(w0)
    dw = -np.linalg.solve(J.T @ J + mu * np.eye(3), J.T @ e)
    assert lm.accepted
    np.testing.assert_allclose(np.concatenate([p.data, q.data]), w0 + dw, rtol=1e-12)
    assert loss == pytest.approx(0.5 * np.sum(residual_np(w0 + dw) ** 2), rel=1e-12)
    assert lm.mu == pytest.approx(mu / 10)


def test_lm_converges_in_fewer_iterations_than_gradient_descent():
    tol = 1e-10
    p, q = make_params()
    lm = optim.LevenbergMarquardt([p, q])
    lm_iters = None
    for k in range(1, 100):
        if lm.step(lambda: residual(p, q)) < tol:
            lm_iters = k
            break
    assert lm_iters is not None and lm_iters <= 15
    np.testing.assert_allclose(np.concatenate([p.data, q.data]), [2.0, -1.5, 0.5], atol=1e-4)

    p, q = make_params()
    gd = optim.SGD([p, q], lr=0.05, momentum=0.5)
    gd_iters = None
    for k in range(1, 2001):
        gd.zero_grad()
        E = 0.5 * (residual(p, q) ** 2).sum()
        if E.item() < tol:
            gd_iters = k
            break
        E.backward()
        gd.step()
    assert gd_iters is None or gd_iters > 10 * lm_iters


def test_lm_rejects_a_step_that_does_not_help():
    # at an exact solution no step lowers the loss: rejected, mu grows, w unchanged
    p = Tensor(np.array([2.0, -1.5]), requires_grad=True)
    q = Tensor(np.array([0.5]), requires_grad=True)
    lm = optim.LevenbergMarquardt([p, q], mu=1.0, max_tries=3)
    before = np.concatenate([p.data, q.data])
    loss = lm.step(lambda: residual(p, q))
    assert not lm.accepted
    assert lm.mu == pytest.approx(1000.0)
    np.testing.assert_array_equal(np.concatenate([p.data, q.data]), before)
    assert loss == pytest.approx(0.5 * np.sum(residual_np(before) ** 2))


def test_lm_bad_arguments():
    w = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="mu"):
        optim.LevenbergMarquardt([w], mu=-1.0)
    with pytest.raises(TypeError, match="Tensor"):
        optim.LevenbergMarquardt([w]).step(lambda: np.zeros(3))


def _tiny_mlp_loss():
    """A 2-3-1 tanh net on 4 fixed points: its parameters, a bpkit loss, the same loss in
    autograd as a function of the flat weight vector (independent of bpkit)."""
    net = nn.MLP([2, 3, 1], activation="tanh", seed=2)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    params = net.parameters()
    shapes = [p.shape for p in params]

    def loss_fn():
        return 0.5 * ((net(Tensor(X)) - Tensor(y)) ** 2).sum()

    def ag_loss(w):
        arrays, i = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            arrays.append(w[i : i + size].reshape(shape))
            i += size
        W1, b1, W2, b2 = arrays
        out = anp.dot(anp.tanh(anp.dot(X, W1.T) + b1), W2.T) + b2
        return 0.5 * anp.sum((out - y) ** 2)

    return params, loss_fn, ag_loss


def test_get_flat_and_set_flat_are_inverse():
    params, _, _ = _tiny_mlp_loss()
    w = optim.get_flat(params)
    assert w.shape == (13,) and w.dtype == np.float64
    optim.set_flat(params, w[::-1].copy())
    np.testing.assert_array_equal(optim.get_flat(params), w[::-1])
    with pytest.raises(ValueError, match=r"shape \(13,\)"):
        optim.set_flat(params, w[:5])


def test_flat_grad_and_hessian_fd_match_autograd():
    params, loss_fn, ag_loss = _tiny_mlp_loss()
    w = optim.get_flat(params)
    loss, g = optim.flat_grad(loss_fn, params)
    assert loss == pytest.approx(float(ag_loss(w)), rel=1e-12)
    np.testing.assert_allclose(g, autograd.grad(ag_loss)(w), rtol=1e-10, atol=1e-12)
    H = optim.hessian_fd(loss_fn, params, h=1e-5)
    np.testing.assert_array_equal(optim.get_flat(params), w)  # parameters restored
    np.testing.assert_allclose(H, autograd.hessian(ag_loss)(w), rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in params)
