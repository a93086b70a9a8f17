"""Differential fuzzing: bpkit against NumPy (forward values) and HIPS autograd (gradients)
in float64, on edge values (0, -0.0, subnormals, 1e300, +-inf, NaN) and edge shapes (empty,
0-d, broadcast, transposed and strided views); forward mode against reverse mode; random
graphs with reuse; the scalar engine against the array engine; layers at batch 0 and 1;
tampered save files.

Examples are drawn by Hypothesis with the profile of conftest.py (the same examples on every
run; ``HYPOTHESIS_PROFILE=explore`` draws new ones). Forward values must agree exactly up to
rounding, with NaN where NumPy has NaN. Gradients are compared where both engines compute
the same mathematical quantity: at the ordinary edge values (zeros, -0.0, tiny and large
normal numbers), not at +-inf, NaN or subnormals, where a gradient formula may legitimately
be evaluated differently (for example autograd writes d(a/b)/db as -a/b^2, which underflows
for a subnormal b). Those values still run through every forward comparison.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as ag_grad
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bpkit
from bpkit import F, Tensor, Value, nn

EDGES = [0.0, -0.0, 5e-324, -1e-310, 1e-300, 1e300, -1e300, np.inf, -np.inf, np.nan]
MILD_EDGES = [0.0, -0.0, 1e-100, -1e-100, 1e100, -1e100, 1.0, -1.0, 2.0]
ANY = st.sampled_from(EDGES) | st.floats(-5, 5)  # forward comparisons
# gradient comparisons: no number whose square underflows (autograd's d(a/b)/db = -a/b^2)
MILD = st.sampled_from(MILD_EDGES) | st.floats(-5, 5).map(lambda v: 0.0 if abs(v) < 1e-100 else v)
SHAPES = st.sampled_from([(), (1,), (3,), (0,), (2, 3), (3, 1), (0, 3), (2, 2, 2)])
FAST = settings(max_examples=300, deadline=None)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, on edge values


@st.composite
def arrays(draw, elements=ANY, shape=None):
    """A float64 array, contiguous, transposed (a column-major view) or strided ([::2])."""
    shape = draw(SHAPES) if shape is None else shape
    layout = draw(st.sampled_from(["C", "T", "strided"]))
    if layout == "T" and len(shape) >= 2:
        return draw(hnp.arrays(np.float64, shape[::-1], elements=elements)).T
    if layout == "strided" and len(shape) >= 1:
        big = (2 * shape[0],) + tuple(shape[1:])
        return draw(hnp.arrays(np.float64, big, elements=elements))[::2]
    return draw(hnp.arrays(np.float64, shape, elements=elements))


def same(got, want, rtol=1e-12, atol=0.0):
    """Equal up to rounding, with NaN in the same places and infinities of the same sign."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def bp_vjp(f, arrays_in, g):
    """bpkit's gradients of sum(g * f(*inputs)) with respect to each input."""
    ts = [Tensor(a, requires_grad=True) for a in arrays_in]
    out = f(*ts)
    out.backward(np.broadcast_to(g, out.shape).copy())
    return [t.grad if t.grad is not None else np.zeros_like(t.data) for t in ts]


def ag_vjp(f, arrays_in, g):
    return [
        np.asarray(ag_grad(lambda *a, i=i: anp.sum(f(*a) * g), i)(*arrays_in))
        for i in range(len(arrays_in))
    ]


# -- unary primitives ----------------------------------------------------------------------

# name: (bpkit, NumPy forward reference, autograd reference with the same convention)
UNARY = {
    "neg": (lambda a: -a, np.negative, lambda a: -a),
    "exp": (lambda a: a.exp(), np.exp, anp.exp),
    "log": (lambda a: a.log(), np.log, anp.log),
    "tanh": (lambda a: a.tanh(), np.tanh, anp.tanh),
    "sigmoid": (lambda a: a.sigmoid(), lambda x: 0.5 * (np.tanh(x / 2) + 1),
                lambda a: 0.5 * (anp.tanh(a / 2) + 1)),
    "relu": (lambda a: a.relu(), lambda x: np.maximum(x, 0), lambda a: anp.where(a > 0, a, 0.0)),
    "softplus": (lambda a: a.softplus(), lambda x: np.logaddexp(0, x),
                 lambda a: anp.logaddexp(0, a)),
    "square": (lambda a: a**2, lambda x: x**2, lambda a: a**2),
    "cube": (lambda a: a**3, lambda x: x**3, lambda a: a**3),
    "pow0": (lambda a: a**0, lambda x: x**0, lambda a: a**0),
    "sqrt": (lambda a: a**0.5, np.sqrt, lambda a: a**0.5),
    "recip": (lambda a: a**-1, lambda x: 1 / x, lambda a: a**-1),
}


@FAST
@given(name=st.sampled_from(sorted(UNARY)), x=arrays())
def test_unary_forward_matches_numpy_on_edge_values(name, x):
    bp, ref, _ = UNARY[name]
    with np.errstate(all="ignore"):
        got, want = bp(Tensor(x)).data, ref(x)
    same(got, want, rtol=1e-12 if name != "sigmoid" else 1e-9, atol=1e-300)


@FAST
@given(name=st.sampled_from(sorted(UNARY)), x=arrays(MILD), seed=st.integers(0, 99))
def test_unary_gradients_match_autograd(name, x, seed):
    bp, _, ag = UNARY[name]
    g = np.random.default_rng(seed).uniform(0.5, 2, x.shape)
    with np.errstate(all="ignore"):
        (got,), (want,) = bp_vjp(bp, [x], g), ag_vjp(ag, [x], g)
    same(got, want, rtol=1e-9, atol=1e-15)


# -- binary primitives with broadcasting -----------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a**b, np.power),
}
PAIRS = st.sampled_from([
    ((), ()), ((3,), ()), ((), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((0, 3), (3,)),
    ((3,), (0, 1)), ((2, 2, 2), (2, 1)), ((1,), (3,)),
])


@FAST
@given(name=st.sampled_from(sorted(BINARY)), shapes=PAIRS, data=st.data())
def test_binary_forward_matches_numpy_on_edge_values(name, shapes, data):
    a, b = (data.draw(arrays(ANY, s)) for s in shapes)
    bp, ref = BINARY[name]
    with np.errstate(all="ignore"):
        same(bp(Tensor(a), Tensor(b)).data, ref(a, b))
        same(bp(Tensor(a), b[()] if b.ndim == 0 else b).data, ref(a, b))  # a constant operand


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(BINARY)), shapes=PAIRS, data=st.data())
def test_binary_gradients_match_autograd(name, shapes, data):
    a, b = (data.draw(arrays(MILD, s)) for s in shapes)
    if name == "pow":  # a real power needs a >= 0 (or an integer exponent)
        a = np.abs(a)
    bp = BINARY[name][0]
    g = np.random.default_rng(data.draw(st.integers(0, 99))).uniform(0.5, 2, np.broadcast_shapes(
        a.shape, b.shape))
    with np.errstate(all="ignore"):
        got, want = bp_vjp(bp, [a, b], g), ag_vjp(bp, [a, b], g)
    for gt, w, x in zip(got, want, (a, b), strict=True):
        assert gt.shape == x.shape and gt.dtype == x.dtype
        same(gt, w, rtol=1e-9, atol=1e-15)


# -- reductions, shape operations, indexing, products ----------------------------------------

STRUCTURAL = {
    # name: (bpkit, autograd/NumPy reference); both take one array
    "sum": (lambda a: a.sum(), anp.sum),
    "sum0": (lambda a: a.sum(axis=0), lambda a: anp.sum(a, axis=0)),
    "sum-1k": (lambda a: a.sum(axis=-1, keepdims=True), lambda a: anp.sum(a, -1, keepdims=True)),
    "mean": (lambda a: a.mean(), anp.mean),
    "mean0": (lambda a: a.mean(axis=0), lambda a: anp.mean(a, axis=0)),
    "max-1": (lambda a: a.max(axis=-1), lambda a: anp.max(a, axis=-1)),
    "T": (lambda a: a.T, lambda a: a.T),
    "reshape": (lambda a: a.reshape(-1), lambda a: anp.reshape(a, -1)),
    "getitem": (lambda a: a[::-1], lambda a: a[::-1]),
    "fancy": (lambda a: a[np.array([0, 0, -1])], lambda a: a[np.array([0, 0, -1])]),
    "softmax": (lambda a: a.softmax(axis=-1),
                lambda a: anp.exp(a - anp.max(a, -1, keepdims=True))
                / anp.sum(anp.exp(a - anp.max(a, -1, keepdims=True)), -1, keepdims=True)),
    "log_softmax": (lambda a: a.log_softmax(axis=-1),
                    lambda a: a - anp.max(a, -1, keepdims=True) - anp.log(
                        anp.sum(anp.exp(a - anp.max(a, -1, keepdims=True)), -1, keepdims=True))),
    "matmul": (lambda a: a @ a.T, lambda a: anp.matmul(a, a.T)),
    "matvec": (lambda a: a @ np.arange(a.shape[-1], dtype=float),
               lambda a: anp.matmul(a, np.arange(a.shape[-1], dtype=float))),
}
NEEDS = {  # which shapes an operation accepts
    "max-1": lambda s: len(s) >= 1 and s[-1] > 0, "softmax": lambda s: len(s) >= 1 and s[-1] > 0,
    "log_softmax": lambda s: len(s) >= 1 and s[-1] > 0, "sum0": lambda s: len(s) >= 1,
    "mean0": lambda s: len(s) >= 1, "sum-1k": lambda s: len(s) >= 1,
    "getitem": lambda s: len(s) >= 1, "fancy": lambda s: len(s) >= 1 and s[0] > 0,
    "matmul": lambda s: len(s) >= 1, "matvec": lambda s: len(s) >= 1,
}


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(sorted(STRUCTURAL)), shape=SHAPES, data=st.data())
def test_structural_ops_match_numpy_and_autograd(name, shape, data):
    assume(NEEDS.get(name, lambda s: True)(shape))
    bp, ref = STRUCTURAL[name]
    x = data.draw(arrays(ANY, shape))
    with np.errstate(all="ignore"):
        same(bp(Tensor(x)).data, ref(x), rtol=1e-12, atol=1e-300)
    x = data.draw(arrays(MILD, shape))
    if name in ("softmax", "log_softmax", "matmul", "matvec"):
        x = np.clip(x, -30, 30)  # a difference of 1e100s is not what these test
    with np.errstate(all="ignore"):
        want = ref(x)
        g = np.random.default_rng(0).uniform(0.5, 2, np.shape(want))
        (got,), (wgrad,) = bp_vjp(bp, [x], g), ag_vjp(ref, [x], g)
    same(got, wgrad, rtol=1e-9, atol=1e-12)


# -- forward mode against reverse mode ------------------------------------------------------

FORWARD_OPS = [
    lambda a: a * a + 1.0, lambda a: a.tanh(), lambda a: a.sigmoid(), lambda a: a.exp() * 0.5,
    lambda a: (a * a + 1.0).log(), lambda a: a.relu() - a, lambda a: a.softplus(),
    lambda a: a / (a * a + 2.0), lambda a: a**3, lambda a: a.softmax(axis=-1),
    lambda a: a.log_softmax(axis=-1), lambda a: a.T.reshape(a.shape), lambda a: F.swish(a),
    lambda a: F.mish(a), lambda a: a - a.max(axis=-1, keepdims=True),
    lambda a: a.mean(axis=0, keepdims=True) * a, lambda a: (a * a + 0.5) ** 1.5,
    lambda a: 2.0 ** (a * 0.5), lambda a: a[np.array([2, 0, 0])] + a[::-1],
]


@settings(max_examples=200, deadline=None)
@given(program=st.lists(st.integers(0, len(FORWARD_OPS) - 1), min_size=1, max_size=6),
       x=arrays(st.floats(-3, 3), (3, 3)),
       v=hnp.arrays(np.float64, (3, 3), elements=st.floats(-1, 1)))
def test_jvp_matches_reverse_mode(program, x, v):
    def f(a):
        for i in program:
            a = FORWARD_OPS[i](a)
        return (a * np.arange(9.0).reshape(3, 3)).sum()

    with np.errstate(all="ignore"):
        value, tangent = bpkit.jvp(f, x, v)
        g = bpkit.grad(f)(x)
    # a program may overflow (2 ** 5000); derivatives at inf or NaN are not compared
    assume(np.isfinite(value) and np.isfinite(g).all())
    assert value == pytest.approx(f(Tensor(x)).item(), rel=1e-12, abs=1e-300)
    assert tangent == pytest.approx(float(np.sum(g * v)), rel=1e-8, abs=1e-10)


# -- random graphs with heavy reuse ----------------------------------------------------------

GRAPH_OPS = [
    (lambda a, b: a + b), (lambda a, b: a * b), (lambda a, b: a - b * 0.5),
    (lambda a, b: a / (b * b + 1.0)), (lambda a, b: a.tanh() * b),
]
AG_GRAPH_OPS = GRAPH_OPS[:4] + [lambda a, b: anp.tanh(a) * b]


@settings(max_examples=200, deadline=None)
@given(program=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)),
                        min_size=1, max_size=25),
       x=arrays(st.floats(-2, 2), (2, 3)), y=arrays(st.floats(-2, 2), (3,)))
def test_random_graphs_with_reuse_match_autograd(program, x, y):
    """Each step combines two of the last four values: every value is used many times."""
    def run(values, ops):
        vals = list(values)
        for op, i, j in program:
            vals.append(ops[op](vals[-1 - i % len(vals)], vals[-1 - j % len(vals)]))
        return vals[-1] + vals[0]  # shape (2, 3) however the program ends

    with np.errstate(all="ignore"):
        got = bp_vjp(lambda a, b: run([a, b], GRAPH_OPS), [x, y], np.ones((2, 3)))
        want = ag_vjp(lambda a, b: run([a, b], AG_GRAPH_OPS), [x, y], np.ones((2, 3)))
    for gt, w in zip(got, want, strict=True):
        same(gt, w, rtol=1e-9, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(program=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)),
                        min_size=1, max_size=10),
       which=st.integers(0, 1), how=st.sampled_from(["+=", "assign", "view"]))
def test_in_place_change_raises_or_leaves_the_gradient_right(program, which, how):
    """After an input changes in place, backward raises or gives the recorded graph's
    gradient: never the gradient of neither graph."""
    x, y = np.linspace(-1, 1, 6).reshape(2, 3), np.array([0.5, -1.0, 2.0])

    def run(values, ops):
        vals = list(values)
        for op, i, j in program:
            vals.append(ops[op](vals[-1 - i % len(vals)], vals[-1 - j % len(vals)]))
        return vals[-1] + vals[0]

    want = ag_vjp(lambda a, b: run([a, b], AG_GRAPH_OPS), [x, y], np.ones((2, 3)))
    ts = [Tensor(x.copy(), requires_grad=True), Tensor(y.copy(), requires_grad=True)]
    out = run(ts, GRAPH_OPS)
    t = ts[which]
    if how == "+=":
        t.data += 1.0
    elif how == "assign":
        t.assign(t.data * 3.0)
    else:
        t.T.data *= 3.0  # through a view
    try:
        out.backward(np.ones((2, 3)))
    except RuntimeError as e:
        assert "modified in place" in str(e)
        return
    for tt, w in zip(ts, want, strict=True):
        same(np.zeros_like(w) if tt.grad is None else tt.grad, w, rtol=1e-9, atol=1e-12)


# -- the scalar engine against the array engine ----------------------------------------------

SCALAR_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "tanh": lambda a, b: a.tanh() + b, "relu": lambda a, b: a.relu(),
    "sigmoid": lambda a, b: a.sigmoid() * b, "square": lambda a, b: a**2,
    "softplus": lambda a, b: a.softplus(),
}


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(SCALAR_OPS)), a=ANY, b=ANY)
def test_value_matches_tensor_on_edge_values(name, a, b):
    """Value agrees with Tensor, or raises a clear error (a division by 0, say) by design."""
    f = SCALAR_OPS[name]
    try:
        va, vb = Value(a), Value(b)
        out = f(va, vb)
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        assert str(e).split(":")[0] in ("div", "pow", "exp", "log")
        return
    with np.errstate(all="ignore"):
        ref = f(Tensor(a), Tensor(b)).data
    same(out.data, ref, rtol=1e-12, atol=1e-300)


# -- layers at batch 0 and batch 1 -----------------------------------------------------------

LAYERS = {
    "linear": (lambda: nn.Linear(3, 2, seed=0), (3,)),
    "mlp": (lambda: nn.MLP([3, 4, 2], activation="tanh", seed=0), (3,)),
    "conv": (lambda: nn.Conv2d(2, 3, 2, padding=1, seed=0), (2, 4, 4)),
    "conv_strided": (lambda: nn.Conv2d(2, 1, (3, 2), stride=2, seed=0), (2, 5, 4)),
    "avgpool": (lambda: nn.AvgPool2d(2), (2, 4, 4)),
    "maxpool": (lambda: nn.MaxPool2d(2), (2, 4, 4)),
    "flatten": (lambda: nn.Flatten(), (2, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("n", [0, 1])
def test_layers_at_batch_zero_and_one(name, n):
    make, shape = LAYERS[name]
    layer = make()
    x = np.random.default_rng(n).standard_normal((3,) + shape)
    full = layer(Tensor(x)).data
    xt = Tensor(x[:n], requires_grad=True)
    out = layer(xt)
    assert out.shape == (n,) + full.shape[1:]
    np.testing.assert_allclose(out.data, full[:n], rtol=1e-12)  # the batch is row by row
    out.sum().backward()
    assert xt.grad.shape == xt.shape
    for p in layer.parameters():
        if n == 0:  # no examples: no contribution to any parameter
            np.testing.assert_array_equal(p.grad, 0.0)
        assert p.grad.shape == p.shape


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_losses_at_batch_one_match_autograd(loss):
    z = np.array([[1.0, -2.0, 0.5]])
    if loss == "mse":
        t = np.array([[0.0, 1.0, 2.0]])
        got = bp_vjp(lambda a: F.mse_loss(a, t), [z], 1.0)[0]
        want = ag_grad(lambda a: anp.mean((a - t) ** 2))(z)
    else:
        got = bp_vjp(lambda a: F.cross_entropy(a, [2]), [z], 1.0)[0]
        want = ag_grad(lambda a: -(a[0, 2] - anp.log(anp.sum(anp.exp(a)))))(z)
    same(got, want, rtol=1e-12)


# -- tampered save files ---------------------------------------------------------------------

BAD_VALUES = st.sampled_from([
    np.ones(2, complex), np.array(["1", "2"]), np.array([1, 2], dtype="datetime64[s]"),
    np.array([True, False]), np.ones(5), np.ones((2, 1)), np.ones((3, 3)),
])


@settings(max_examples=60, deadline=None)
@given(action=st.sampled_from(["drop", "add", "replace"]), key=st.integers(0, 3),
       bad=BAD_VALUES, good_first=st.booleans())
def test_tampered_save_files_load_all_or_nothing(tmp_path_factory, action, key, bad, good_first):
    model = nn.MLP([3, 2, 2], seed=0)
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}  # a valid file would change everything
    names = sorted(state)
    if action == "drop":
        del state[names[key]]
    elif action == "add":
        state["extra"] = bad
    else:
        state[names[key]] = bad
    if not good_first:  # the bad entry first or last in the file
        state = dict(reversed(state.items()))
    path = tmp_path_factory.mktemp("npz") / "m.npz"
    np.savez(path, **state)
    ok_shape = action == "replace" and bad.shape == before[names[key]].shape
    if ok_shape and bad.dtype.kind in "iuf":
        model.load(path)  # a valid file: loads
        return
    with pytest.raises((ValueError, TypeError), match="load_state_dict|Module.load"):
        model.load(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
