"""Issue 9: one table of primitives, derivatives of any order, NumPy interop.

Every primitive's VJP and JVP against central differences; second derivatives and hvp
against HIPS autograd and against central differences of gradients, on random MLPs with
every activation and loss."""

from __future__ import annotations

import subprocess
import sys

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import numeric_grad

import bpkit
from bpkit import F, Tensor, ops

rng = np.random.default_rng(0)

# (primitive, input shapes, keyword params, input transform keeping the input in its domain)
CASES = {
    "add": (ops.add, [(2, 3), (3,)], {}),
    "sub": (ops.sub, [(2, 3), (2, 1)], {}),
    "mul": (ops.mul, [(2, 3), (3,)], {}),
    "div": (ops.div, [(2, 3), (2, 3)], {}),
    "pow": (ops.power, [(2, 3), (2, 3)], {}),
    "pow_k": (ops.power_k, [(2, 3)], {"k": 3}),
    "matmul": (ops.matmul, [(2, 3), (3, 4)], {}),
    "matmul_batched": (ops.matmul, [(2, 2, 3), (3,)], {}),
    "neg": (ops.neg, [(2, 3)], {}),
    "exp": (ops.exp, [(2, 3)], {}),
    "log": (ops.log, [(2, 3)], {}),
    "tanh": (ops.tanh, [(2, 3)], {}),
    "sigmoid": (ops.sigmoid, [(2, 3)], {}),
    "relu": (ops.relu, [(2, 3)], {}),
    "softplus": (ops.softplus, [(2, 3)], {}),
    "sum": (ops.sum_, [(2, 3)], {"axes": (1,), "keepdims": False}),
    "max": (ops.max_, [(2, 3)], {"axes": (0,), "keepdims": True}),
    "reshape": (ops.reshape, [(2, 3)], {"shape": (3, 2)}),
    "transpose": (ops.transpose, [(2, 3, 4)], {"perm": (2, 0, 1)}),
    "getitem": (ops.getitem, [(4, 3)], {"index": (np.array([0, 2, 2]), slice(1, 3))}),
    "scatter": (ops.scatter, [(3, 2)], {"index": (np.array([0, 2, 2]), slice(1, 3)),
                                        "shape": (4, 3)}),
    "expand": (ops.expand, [(2, 1)], {"shape": (2, 3), "kept": (2, 1)}),
    "softmax": (ops.softmax, [(2, 4)], {"axis": 1}),
    "log_softmax": (ops.log_softmax, [(2, 4)], {"axis": -1}),
    "standardize": (ops.standardize, [(3, 4)], {"axes": (0,), "eps": 1e-5}),
    "cross_entropy": (ops.cross_entropy, [(3, 4)], {"labels": np.array([0, 3, 3])}),
    "linear": (ops.linear, [(5, 3), (4, 3), (4,)], {}),
    "im2col": (ops.im2col, [(2, 2, 4, 5)], {"k": (2, 3), "s": (2, 1), "p": (1, 0)}),
    "col2im": (ops.col2im, [(2 * 3 * 3, 2 * 2 * 3)], {"shape": (2, 2, 4, 5), "k": (2, 3),
                                                     "s": (2, 1), "p": (1, 0)}),
    "where": (ops._where, [(2, 3), (2, 3)], {"mask": np.array([[1, 0, 1], [0, 0, 1]], bool)}),
}


def _inputs(name, shapes):
    xs = [rng.uniform(0.5, 1.5, s) * rng.choice([-1.0, 1.0], s) for s in shapes]
    if name in ("log", "pow"):
        xs[0] = np.abs(xs[0])
    return xs


def _scalar_of(prim, params, r):
    """C = sum(r * prim(*xs)) as a function of arrays, run by bpkit's Tensors."""
    return lambda *ts: (prim(*ts, **params) * r).sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_primitive_vjp_and_jvp_against_central_differences(name):
    prim, shapes, params = CASES[name]
    xs = _inputs(name, shapes)
    out = prim(*xs, **params)
    r = rng.standard_normal(np.shape(out))
    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    _scalar_of(prim, params, r)(*ts).backward()
    for i, x in enumerate(xs):
        def c(xi, i=i):
            args = [xi if j == i else xj for j, xj in enumerate(xs)]
            return float((prim(*args, **params) * r).sum())

        np.testing.assert_allclose(ts[i].grad, numeric_grad(c, x), rtol=1e-6, atol=1e-8)
        v = rng.standard_normal(x.shape)  # JVP of input i: the tangent of C along v
        jvp_i = prim.jvps[i](v, np.asarray(out), *xs, **params)
        np.testing.assert_allclose(
            float((np.broadcast_to(jvp_i, np.shape(out)) * r).sum()),
            float((numeric_grad(c, x) * v).sum()), rtol=1e-6, atol=1e-8,
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_primitive_has_second_derivatives(name):
    """d/dx of <dC/dx, v> (a recorded backward pass) against central differences of the
    first-order gradient."""
    prim, shapes, params = CASES[name]
    xs = _inputs(name, shapes)
    r = rng.standard_normal(np.shape(prim(*xs, **params)))
    f = _scalar_of(prim, params, r)
    v = rng.standard_normal(xs[0].shape)

    def first(x0):
        ts = [Tensor(x0.copy(), requires_grad=True)] + [Tensor(x) for x in xs[1:]]
        (f(*ts) ** 2).backward()  # squared, so that a linear primitive has a Hessian too
        return ts[0].grad

    def g_dot_v(x0):
        return float((first(x0) * v).sum())

    t0 = Tensor(xs[0].copy(), requires_grad=True)
    (f(t0, *[Tensor(x) for x in xs[1:]]) ** 2).backward(create_graph=True)
    g = t0.grad
    assert isinstance(g, Tensor)
    t0.grad = None
    (g * v).sum().backward()
    np.testing.assert_allclose(t0.grad, numeric_grad(g_dot_v, xs[0]), rtol=1e-5, atol=1e-7)
    hv = bpkit.hvp(lambda x: f(x, *[Tensor(x) for x in xs[1:]]) ** 2, xs[0], v)
    np.testing.assert_allclose(hv, numeric_grad(g_dot_v, xs[0]), rtol=1e-5, atol=1e-7)


ACTS = {"relu": (F.relu, lambda z: anp.maximum(z, 0)), "tanh": (F.tanh, anp.tanh),
        "sigmoid": (F.sigmoid, lambda z: 1 / (1 + anp.exp(-z))),
        "swish": (F.swish, lambda z: z / (1 + anp.exp(-z))),
        "mish": (F.mish, lambda z: z * anp.tanh(anp.log1p(anp.exp(z)))),
        "softplus": (F.softplus, lambda z: anp.log1p(anp.exp(z)))}


def _ag_log_softmax(z):
    m = anp.max(z, axis=1, keepdims=True)
    return z - m - anp.log(anp.sum(anp.exp(z - m), axis=1, keepdims=True))


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_hvp_and_hessian_of_random_mlps_match_autograd(act, loss):
    sizes, n = [3, 4, 2], 5
    shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    counts = [o * i + o for o, i in shapes]
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 2)) if loss == "mse" else rng.integers(0, 2, n)
    f_bp, f_ag = ACTS[act]

    def unpack(theta):
        out, i = [], 0
        for o, k in shapes:
            out.append((theta[i : i + o * k].reshape(o, k), theta[i + o * k : i + o * k + o]))
            i += o * k + o
        return out

    def bp_loss(theta):
        a = Tensor(X)
        for layer, (W, b) in enumerate(unpack(theta)):
            a = F.linear(a, W, b)
            a = f_bp(a) if layer < len(shapes) - 1 else a
        return F.mse_loss(a, Y) if loss == "mse" else F.cross_entropy(a, Y)

    def ag_loss(theta):
        a = X
        for layer, (W, b) in enumerate(unpack(theta)):
            a = anp.dot(a, W.T) + b
            a = f_ag(a) if layer < len(shapes) - 1 else a
        if loss == "mse":
            return anp.mean((a - Y) ** 2)
        return -anp.mean(_ag_log_softmax(a)[np.arange(n), Y])

    theta = rng.standard_normal(sum(counts)) * 0.8
    v = rng.standard_normal(theta.size)
    want = autograd.hessian(ag_loss)(theta)
    np.testing.assert_allclose(bpkit.hvp(bp_loss, theta, v), want @ v, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bpkit.hessian(bp_loss, theta), want, rtol=1e-8, atol=1e-10)
    fd = numeric_grad(lambda t: float((bpkit.grad(bp_loss)(t) * v).sum()), theta, h=1e-5)
    np.testing.assert_allclose(bpkit.hvp(bp_loss, theta, v), fd, rtol=1e-5, atol=1e-6)


def test_grad_composes_and_jacobian():
    f = lambda x: (x.tanh() * x).sum()  # noqa: E731
    d2 = bpkit.grad(bpkit.grad(f))
    d3 = bpkit.grad(bpkit.grad(bpkit.grad(f)))
    ag = autograd.grad(autograd.grad(lambda x: anp.tanh(x) * x))
    assert d2(0.7) == pytest.approx(ag(0.7), rel=1e-12)
    assert d3(0.7) == pytest.approx(autograd.grad(ag)(0.7), rel=1e-12)
    x = rng.standard_normal(3)
    J = bpkit.jacobian(lambda t: (t[:, None] * t[None, :]).sum(axis=0).exp(), x)
    np.testing.assert_allclose(J, autograd.jacobian(lambda t: anp.exp(t * t.sum()))(x),
                               rtol=1e-12)
    assert bpkit.hvp(lambda t: (t * 2.0).sum(), x, x).tolist() == [0.0, 0.0, 0.0]


def test_backward_create_graph_gives_tensor_gradients_and_leaves_others_alone():
    w = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    c = (w**3).sum()
    c.backward(create_graph=True)
    assert isinstance(w.grad, Tensor) and w.grad.requires_grad
    g = w.grad
    w.grad = None
    g.sum().backward()
    np.testing.assert_allclose(w.grad, 6 * w.data)
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    bpkit.grad(lambda t: (t * x).sum())(np.ones(2))  # a closed-over tensor keeps no grad
    assert x.grad is None


def test_numpy_interop_is_explicit():
    t = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = np.asarray(t)
    assert a.dtype == np.float64 and a.shape == (2,) and a is t.data
    assert float(Tensor(np.array([3.5]))) == 3.5
    with pytest.raises(TypeError, match=r"np.exp .*t\.exp\(\)"):
        np.exp(t)
    with pytest.raises(TypeError, match=r"np.sum .*t\.sum\(\)"):
        np.sum(t)
    with pytest.raises(TypeError, match="np.maximum .*relu"):
        np.maximum(t, 0)
    out = np.array([1.0, 1.0]) * t + np.float64(2.0)  # operators still work both ways
    assert isinstance(out, Tensor) and out.requires_grad


def test_signatures_show_no_private_parameters():
    import inspect

    for f in (bpkit.Value, bpkit.Tensor, bpkit.Tensor.backward, bpkit.grad, bpkit.hvp):
        assert not any(p.startswith("_") for p in inspect.signature(f).parameters), f


def test_import_draw_without_matplotlib_names_the_extra():
    code = ("import sys; sys.modules['matplotlib'] = sys.modules['matplotlib.pyplot'] = None\n"
            "try:\n    import bpkit.draw\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "bpkit[plot]" in out


def test_no_module_imports_a_private_name_of_another():
    import ast
    import pathlib

    for path in pathlib.Path(bpkit.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert not any(a.name.startswith("_") for a in node.names), path.name


def test_hvp_of_a_list_of_parameters_matches_the_flat_vector_and_keeps_float32():
    rng = np.random.default_rng(0)
    W1, W2 = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (2, 4)))
    x, y = rng.standard_normal((5, 3)).astype(np.float32), np.array([0, 1, 1, 0, 1])
    v1, v2 = (rng.standard_normal(w.shape).astype(np.float32) for w in (W1, W2))

    def loss(ps):
        return bpkit.F.cross_entropy((Tensor(x) @ ps[0].T).relu() @ ps[1].T, y)

    def flat_loss(t):
        return loss([t[:12].reshape(4, 3), t[12:].reshape(2, 4)])

    h1, h2 = bpkit.hvp(loss, [W1, W2], [v1, v2])
    assert h1.dtype == h2.dtype == np.float32  # a boolean mask keeps the tensor's dtype
    flat = bpkit.hvp(flat_loss, np.concatenate([W1.ravel(), W2.ravel()]),
                     np.concatenate([v1.ravel(), v2.ravel()]))
    np.testing.assert_allclose(np.concatenate([h1.ravel(), h2.ravel()]), flat, rtol=1e-5,
                               atol=1e-6)
    for vs in ([v1], [v1, v2, v2]):  # one direction per array: none missing, none ignored
        with pytest.raises(ValueError, match=f"hvp: {len(vs)} directions v for 2 arrays x"):
            bpkit.hvp(loss, [W1, W2], vs)
