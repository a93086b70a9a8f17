"""Tests of bpkit.optim: SGD (1986 momentum form), RMSProp, Adam and AdamW step by step
against the published update equations written out here in plain NumPy, clip_grad_norm,
argument checks, and Levenberg-Marquardt (Jacobian against central differences and
autograd; convergence)."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import bpkit
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


# -- first-order optimisers against their published update equations ---------------------
#
# The problem: two parameters, a (2,) in an ill-conditioned quadratic and B (2, 3) in a
# quartic, E = 1/2 a^T A a - c^T a + 1/4 sum B^4, with gradients A a - c and B^3 written
# out below by hand (no bpkit). Each reference rule is the algorithm as published
# (PyTorch's torch.optim documentation; Kingma & Ba 2015, Algorithm 1; Loshchilov &
# Hutter 2019, Algorithm 2 with the decay tied to the learning rate as PyTorch does).

A2 = np.array([[10.0, 1.0], [1.0, 0.2]])
c2 = np.array([1.0, -1.0])
A0 = np.array([0.5, -1.5])
B0 = np.array([[0.7, -0.2, 1.1], [-0.9, 0.4, 0.05]])


def problem_loss(a: Tensor, B: Tensor) -> Tensor:
    return 0.5 * (a * (a @ A2)).sum() - (a * c2).sum() + 0.25 * (B**4).sum()


def problem_grads(ws):
    a, B = ws
    return [A2 @ a - c2, B**3]


def ref_sgd(ws, steps, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD (dampening 0): g += λw; b = g (t = 1), b = μb + g (t > 1);
    g = g + μb (Nesterov) or b; w -= ηg."""
    ws, bufs, out = [w.copy() for w in ws], [None] * len(ws), []
    for _ in range(steps):
        gs = problem_grads(ws)
        for k, (w, g) in enumerate(zip(ws, gs, strict=True)):
            g = g + weight_decay * w
            if momentum:
                bufs[k] = g if bufs[k] is None else momentum * bufs[k] + g
                g = g + momentum * bufs[k] if nesterov else bufs[k]
            ws[k] = w - lr * g
        out.append([w.copy() for w in ws])
    return out


def ref_rmsprop(ws, steps, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    """torch.optim.RMSprop (not centred): g += λw; v = ρv + (1-ρ)g²;
    b = μb + g/(√v+ε), w -= ηb (μ > 0) or w -= ηg/(√v+ε)."""
    ws, out = [w.copy() for w in ws], []
    vs = [np.zeros_like(w) for w in ws]
    bs = [np.zeros_like(w) for w in ws]
    for _ in range(steps):
        gs = problem_grads(ws)
        for k, (w, g) in enumerate(zip(ws, gs, strict=True)):
            g = g + weight_decay * w
            vs[k] = alpha * vs[k] + (1 - alpha) * g**2
            if momentum:
                bs[k] = momentum * bs[k] + g / (np.sqrt(vs[k]) + eps)
                ws[k] = w - lr * bs[k]
            else:
                ws[k] = w - lr * g / (np.sqrt(vs[k]) + eps)
        out.append([w.copy() for w in ws])
    return out


def ref_adam(ws, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam: m = β1 m + (1-β1) g, v = β2 v + (1-β2) g², m̂ = m/(1-β1^t), v̂ = v/(1-β2^t),
    w -= η m̂/(√v̂+ε); the weight decay either added to g (Adam, L2) or applied to w
    first as w -= ηλw (AdamW)."""
    b1, b2 = betas
    ws, out = [w.copy() for w in ws], []
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    for t in range(1, steps + 1):
        gs = problem_grads(ws)
        for k, (w, g) in enumerate(zip(ws, gs, strict=True)):
            if decoupled:
                w = w - lr * weight_decay * w
            else:
                g = g + weight_decay * w
            ms[k] = b1 * ms[k] + (1 - b1) * g
            vs[k] = b2 * vs[k] + (1 - b2) * g**2
            m_hat = ms[k] / (1 - b1**t)
            v_hat = vs[k] / (1 - b2**t)
            ws[k] = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append([w.copy() for w in ws])
    return out


def run_optimiser(make, steps):
    a = Tensor(A0.copy(), requires_grad=True)
    B = Tensor(B0.copy(), requires_grad=True)
    arrays = (a.data, B.data)
    opt = make([a, B])
    for _ in range(steps):
        opt.zero_grad()
        problem_loss(a, B).backward()
        opt.step()
        yield [a.data.copy(), B.data.copy()]
    assert a.data is arrays[0] and B.data is arrays[1]  # updated in place


def assert_trajectory(make, reference, steps=25, rtol=1e-11):
    expected = reference([A0, B0], steps)
    for t, (got, want) in enumerate(
        zip(run_optimiser(make, steps), expected, strict=True), start=1
    ):
        for k in range(2):
            np.testing.assert_allclose(
                got[k], want[k], rtol=rtol, atol=1e-14, err_msg=f"step {t}, parameter {k}"
            )


SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.03, momentum=0.5, nesterov=True, weight_decay=0.05),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=str)
def test_sgd_trajectory_matches_pytorch_rule(kw):
    assert_trajectory(lambda ps: optim.SGD(ps, **kw), lambda ws, n: ref_sgd(ws, n, **kw))


RMSPROP_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, alpha=0.9, weight_decay=0.1),
    dict(lr=5e-3, momentum=0.9),
    dict(lr=5e-3, alpha=0.5, eps=1e-3, momentum=0.5, weight_decay=0.05),
]


@pytest.mark.parametrize("kw", RMSPROP_CASES, ids=str)
def test_rmsprop_trajectory_matches_published_rule(kw):
    assert_trajectory(lambda ps: optim.RMSProp(ps, **kw), lambda ws, n: ref_rmsprop(ws, n, **kw))


ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=5e-2, betas=(0.5, 0.9), eps=1e-4),
    dict(lr=5e-2, betas=(0.0, 0.99), weight_decay=0.3),
]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=str)
def test_adam_trajectory_matches_published_rule(kw):
    assert_trajectory(lambda ps: optim.Adam(ps, **kw), lambda ws, n: ref_adam(ws, n, **kw))


@pytest.mark.parametrize(
    "kw",
    ADAM_CASES[:1]
    + [dict(lr=1e-2, weight_decay=0.1), dict(lr=5e-2, betas=(0.5, 0.9), weight_decay=1.0)],
    ids=str,
)
def test_adamw_trajectory_matches_published_rule(kw):
    assert_trajectory(
        lambda ps: optim.AdamW(ps, **kw),
        lambda ws, n: ref_adam(ws, n, decoupled=True, **{"weight_decay": 1e-2, **kw}),
    )


def test_defaults_are_pytorch_defaults():
    w = Tensor(np.ones(2), requires_grad=True)
    r = optim.RMSProp([w])
    assert (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum) == (1e-2, 0.99, 1e-8, 0.0, 0.0)
    a = optim.Adam([w])
    assert (a.lr, a.betas, a.eps, a.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    aw = optim.AdamW([w])
    assert (aw.lr, aw.betas, aw.eps, aw.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 1e-2)
    s = optim.SGD([w], lr=0.1)
    assert (s.momentum, s.nesterov, s.weight_decay) == (0.0, False, 0.0)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.0)])
def test_adam_bias_correction_makes_the_first_step_eta_sign_g(betas):
    # at t = 1: m̂ = g and v̂ = g², so the step is η g/(|g| + ε) ≈ η sign(g) at any scale
    w = Tensor(np.zeros(4), requires_grad=True)
    g = np.array([1e-3, 1.0, -50.0, 2e4])
    w.grad = g.copy()
    eta, eps = 0.01, 1e-8
    optim.Adam([w], lr=eta, betas=betas, eps=eps).step()
    np.testing.assert_allclose(w.data, -eta * g / (np.abs(g) + eps), rtol=1e-14)
    np.testing.assert_allclose(w.data, -eta * np.sign(g), rtol=1e-5)
    # without the correction the step would be η (1-β1)/√(1-β2) sign(g)
    if betas[0] > 0:
        assert not np.allclose(w.data, -eta * (1 - betas[0]) / np.sqrt(1 - betas[1]))


def test_adamw_decays_every_weight_by_eta_lambda_and_adam_l2_does_not():
    # a weight whose loss gradient is 0: AdamW shrinks it by the factor (1 - ηλ); Adam's L2
    # term λw passes through the scaling 1/√v̂ and moves it by about η, whatever λ is
    eta, w0 = 1e-3, np.array([2.0, -0.5])
    for lam in (1e-2, 1e-1):
        w = Tensor(w0.copy(), requires_grad=True)
        w.grad = np.zeros(2)
        optim.AdamW([w], lr=eta, weight_decay=lam).step()
        np.testing.assert_array_equal(w.data, w0 * (1 - eta * lam))
        v = Tensor(w0.copy(), requires_grad=True)
        v.grad = np.zeros(2)
        optim.Adam([v], lr=eta, weight_decay=lam).step()
        np.testing.assert_allclose(v.data, w0 - eta * np.sign(w0), rtol=1e-6)
    # with λ = 0 the two are the same optimiser, bit for bit
    runs = [
        list(run_optimiser(lambda ps, cls=cls: cls(ps, lr=1e-2, weight_decay=0.0), 10))
        for cls in (optim.Adam, optim.AdamW)
    ]
    for x, y in zip(*runs, strict=True):
        for k in range(2):
            np.testing.assert_array_equal(x[k], y[k])


MAKERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "RMSProp": lambda ps: optim.RMSProp(ps, momentum=0.5, weight_decay=0.1),
    "Adam": lambda ps: optim.Adam(ps, weight_decay=0.1),
    "AdamW": lambda ps: optim.AdamW(ps),
}


@pytest.mark.parametrize("name", MAKERS)
def test_step_skips_params_without_grad_keeps_dtype_and_bumps_version(name):
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    opt = MAKERS[name]([a, b])
    loss = (a * a).sum()
    loss.backward()  # b not used: b.grad is None
    version = a.version
    opt.step()
    assert a.version > version and np.all(a.data < 1) and a.data.dtype == np.float32
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert opt.state[1] == {}  # no step count or average started for b
    assert all(v.dtype == np.float32 for v in opt.state[0].values() if hasattr(v, "dtype"))
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()  # the graph saw a before the step
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("name", MAKERS)
def test_optimiser_refuses_repeated_or_non_parameters(name):
    p, q = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    with pytest.raises(ValueError, match=f"{name}: parameter 2 is the same Tensor as parameter 0"):
        MAKERS[name]([p, q, p])
    with pytest.raises(TypeError, match="requires_grad"):
        MAKERS[name]([Tensor(np.ones(2))])
    with pytest.raises(TypeError, match=r"pass model.parameters\(\), not the Linear"):
        MAKERS[name](nn.Linear(2, 1, seed=0))


BAD_ARGUMENTS = [
    (lambda ps: optim.SGD(ps, lr=0.0), r"SGD: lr must be > 0"),
    (lambda ps: optim.SGD(ps, lr=-0.1), r"SGD: lr must be > 0"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), r"SGD: lr must be > 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.1), r"SGD: momentum must lie in \[0, 1\)"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4), r"SGD: weight_decay must be >= 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), r"SGD: nesterov=True needs momentum"),
    (lambda ps: optim.RMSProp(ps, lr=0.0), r"RMSProp: lr must be > 0"),
    (lambda ps: optim.RMSProp(ps, alpha=1.0), r"RMSProp: alpha must lie in \[0, 1\)"),
    (lambda ps: optim.RMSProp(ps, eps=0.0), r"RMSProp: eps must be > 0"),
    (lambda ps: optim.RMSProp(ps, momentum=1.0), r"RMSProp: momentum must lie in \[0, 1\)"),
    (lambda ps: optim.RMSProp(ps, weight_decay=-1.0), r"RMSProp: weight_decay must be >= 0"),
    (lambda ps: optim.Adam(ps, lr=-1e-3), r"Adam: lr must be > 0"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), r"Adam: betas\[0\] must lie in \[0, 1\)"),
    (lambda ps: optim.Adam(ps, betas=(-0.1, 0.999)), r"Adam: betas\[0\] must lie in \[0, 1\)"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"Adam: betas\[1\] must lie in \[0, 1\)"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), r"Adam: eps must be > 0"),
    (lambda ps: optim.Adam(ps, weight_decay=-0.1), r"Adam: weight_decay must be >= 0"),
    (lambda ps: optim.AdamW(ps, lr=0.0), r"AdamW: lr must be > 0"),
    (lambda ps: optim.AdamW(ps, betas=(0.9, 1.5)), r"AdamW: betas\[1\] must lie in \[0, 1\)"),
    (lambda ps: optim.AdamW(ps, eps=0.0), r"AdamW: eps must be > 0"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.01), r"AdamW: weight_decay must be >= 0"),
]


@pytest.mark.parametrize("make, message", BAD_ARGUMENTS)
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make([Tensor(np.ones(2), requires_grad=True)])


# -- clip_grad_norm ------------------------------------------------------------------------


def _with_grads(*grads):
    ps = []
    for g in grads:
        p = Tensor(np.zeros(np.shape(g)), requires_grad=True)
        p.grad = None if g is None else np.array(g, dtype=float)
        ps.append(p)
    return ps


def test_clip_grad_norm_scales_all_gradients_together():
    a, b, unused = _with_grads([3.0, 0.0], [[0.0, -4.0]], [0.0])
    unused.grad = None
    total = optim.clip_grad_norm([a, b, unused], max_norm=1.0)
    assert total == 5.0  # √(3² + 4²): the norm before clipping
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_array_equal(a.grad, np.array([3.0, 0.0]) * scale)
    np.testing.assert_array_equal(b.grad, np.array([[0.0, -4.0]]) * scale)
    assert unused.grad is None
    new = np.sqrt(np.sum(a.grad**2) + np.sum(b.grad**2))
    assert 1.0 - 1e-6 < new <= 1.0  # direction kept, length capped at max_norm


def test_clip_grad_norm_is_a_no_op_below_max_norm():
    a, b = _with_grads([0.3, 0.4], [[1.2]])
    ga, gb = a.grad, b.grad
    total = optim.clip_grad_norm([a, b], max_norm=1.5)
    assert total == pytest.approx(1.3, rel=1e-15)
    assert a.grad is ga and b.grad is gb
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])


def test_clip_grad_norm_scales_a_shared_gradient_array_once():
    a, b = _with_grads([6.0, 0.0], [0.0, 0.0])
    b.grad = a.grad  # the engine may hand the same array to two parameters
    total = optim.clip_grad_norm([a, b], max_norm=1.0)
    assert total == pytest.approx(6.0 * np.sqrt(2))
    np.testing.assert_allclose(a.grad, [1 / np.sqrt(2), 0.0], rtol=1e-6)
    np.testing.assert_allclose(b.grad, [1 / np.sqrt(2), 0.0], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_clip_grad_norm_refuses_a_non_finite_norm(bad):
    a, b = _with_grads([1.0, bad], [2.0])
    with pytest.raises(FloatingPointError, match="gradient norm is (nan|inf)"):
        optim.clip_grad_norm([a, b], max_norm=1.0)
    np.testing.assert_array_equal(b.grad, [2.0])  # nothing was scaled


def test_clip_grad_norm_bad_arguments():
    (a,) = _with_grads([1.0])
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be > 0"):
        optim.clip_grad_norm([a], max_norm=0.0)
    with pytest.raises(ValueError, match="parameter 1 is the same Tensor as parameter 0"):
        optim.clip_grad_norm([a, a], max_norm=1.0)


def test_clip_then_step_in_a_training_loop():
    model = nn.MLP([2, 8, 1], activation="tanh", seed=0)
    X = np.random.default_rng(0).standard_normal((16, 2))
    y = X[:, :1] * X[:, 1:]
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = 0.5 * ((model(Tensor(X)) - Tensor(y)) ** 2).mean()
        loss.backward()
        norm = optim.clip_grad_norm(model.parameters(), max_norm=0.5)
        assert norm >= 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_all_names_public_and_defined():
    assert all(not name.startswith("_") for name in optim.__all__)
    for name in optim.__all__:
        assert getattr(optim, name).__module__ == "bpkit.optim"
    defined = {
        name
        for name, obj in vars(optim).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == "bpkit.optim"
    }
    assert defined == set(optim.__all__)


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


def test_exact_hvp_and_hessian_match_autograd_and_differences():
    params, loss_fn, ag_loss = _tiny_mlp_loss()
    w = optim.get_flat(params)
    want = autograd.hessian(ag_loss)(w)
    H = optim.hessian(loss_fn, params)
    np.testing.assert_allclose(H, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(H, H.T)
    v = np.random.default_rng(4).normal(size=w.size)
    Hv = optim.hvp(loss_fn, params, v)
    np.testing.assert_allclose(Hv, want @ v, rtol=1e-10, atol=1e-12)
    # central differences of the gradient along v, independently of bpkit's hessian_fd
    h = 1e-5
    optim.set_flat(params, w + h * v)
    g_plus = optim.flat_grad(loss_fn, params)[1]
    optim.set_flat(params, w - h * v)
    g_minus = optim.flat_grad(loss_fn, params)[1]
    optim.set_flat(params, w)
    np.testing.assert_allclose(Hv, (g_plus - g_minus) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(optim.get_flat(params), w)  # parameters untouched
    assert all(p.grad is None for p in params)


def test_exact_hessian_of_a_loss_linear_in_one_parameter_and_inside_no_grad():
    a = Tensor(np.array([1.5, -0.5]), requires_grad=True)
    b = Tensor(np.array([2.0]), requires_grad=True)
    c = Tensor(np.array([3.0]), requires_grad=True)  # the loss does not depend on c

    def loss_fn():  # C = b * sum(a^2) + sum(a): H = [[2b I, 2a], [2a^T, 0]]
        return (b * (a * a).sum() + a.sum()).sum()

    want = np.zeros((4, 4))
    want[:2, :2] = 2 * 2.0 * np.eye(2)
    want[:2, 2] = want[2, :2] = 2 * a.data
    with bpkit.no_grad():  # the backward pass is recorded all the same
        H = optim.hessian(loss_fn, [a, b, c])
    np.testing.assert_allclose(H, want, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(optim.hvp(loss_fn, [a, b, c], np.eye(4)[3]), 0)
    with pytest.raises(ValueError, match="shape"):
        optim.hvp(loss_fn, [a, b, c], np.ones(3))
    with pytest.raises(TypeError, match="one-element"):
        optim.hessian(lambda: a * b, [a, b])
