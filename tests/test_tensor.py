"""Tests of bpkit.Tensor: every operation's gradient against central differences (float64,
random shapes), broadcasting, dtypes, graph semantics and no_grad."""

import numpy as np
import pytest
from finite_differences import numeric_grad
from hypothesis import given, settings
from hypothesis import strategies as st

import bpkit
from bpkit import Tensor

SETTINGS = settings(max_examples=15, deadline=None)


def check_unary(op, x, r=None, tol=1e-6):
    """d/dx sum(r * op(x)) by reverse mode vs central differences."""
    x = np.asarray(x, dtype=np.float64)
    out_shape = op(Tensor(x)).shape
    if r is None:
        r = np.random.default_rng(1).standard_normal(out_shape)
    t = Tensor(x, requires_grad=True)
    (op(t) * r).sum().backward()
    num = numeric_grad(lambda v: float((op(Tensor(v)).data * r).sum()), x)
    assert t.grad.shape == x.shape and t.grad.dtype == np.float64
    np.testing.assert_allclose(t.grad, num, rtol=tol, atol=tol)


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


def arrays(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# -- elementwise --------------------------------------------------------------------------

UNARY = {
    "exp": lambda t: t.exp(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "neg": lambda t: -t,
    "pow3": lambda t: t**3,
    "square_via_mul": lambda t: t * t,
    "scalar_ops": lambda t: (2.0 - t) / 3.0 + 1.5 * t - 0.5,
    "rdiv": lambda t: 1.0 / (t * t + 1.0),
    "softplus": lambda t: t.softplus(),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_unary_gradients(name, shape, seed):
    check_unary(UNARY[name], arrays(shape, seed))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_log_and_fractional_pow_on_positive_inputs(shape, seed):
    x = arrays(shape, seed, 0.5, 3.0)
    check_unary(lambda t: t.log(), x)
    check_unary(lambda t: t**0.5, x)
    check_unary(lambda t: 2.0**t, x)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_relu_gradient_away_from_kink(shape, seed):
    x = arrays(shape, seed)
    x[np.abs(x) < 1e-3] = 0.5  # central differences are wrong at the kink
    check_unary(lambda t: t.relu(), x)


def test_power_zero_has_zero_gradient_even_at_zero():
    # d(x^0)/dx = 0 everywhere; k x^(k-1) would give 0 * inf = NaN at x = 0
    t = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (t**0).sum().backward()
    np.testing.assert_array_equal(t.grad, [0.0, 0.0])
    value, d = bpkit.jvp(lambda x: (x**0).sum(), np.array([0.0, 2.0]), np.ones(2))
    assert value == 2.0 and d == 0.0


def test_relu_gradient_at_zero_is_zero():
    t = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    t.relu().sum().backward()
    np.testing.assert_array_equal(t.grad, [0.0, 0.0, 1.0])


def broadcastable_pair(draw_shape, seed):
    """Two shapes that broadcast: drop leading axes and set some axes to 1."""
    rng = np.random.default_rng(seed)
    a = list(draw_shape)
    b = [n if rng.random() < 0.5 else 1 for n in a]
    b = b[rng.integers(0, len(b) + 1) :] if b else b
    return tuple(a), tuple(b)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("swap", [False, True])
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_binary_gradients_with_broadcasting(name, swap, shape, seed):
    sa, sb = broadcastable_pair(shape, seed)
    if swap:
        sa, sb = sb, sa
    low = 0.5 if name in ("div", "pow") else -2.0  # keep away from poles and log of < 0
    a, b = arrays(sa, seed, low, 2.0), arrays(sb, seed + 1, low, 2.0)
    op = BINARY[name]
    r = np.random.default_rng(2).standard_normal(np.broadcast_shapes(sa, sb))
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    (op(ta, tb) * r).sum().backward()
    assert ta.grad.shape == sa and tb.grad.shape == sb
    num_a = numeric_grad(lambda v: float((op(Tensor(v), Tensor(b)).data * r).sum()), a)
    num_b = numeric_grad(lambda v: float((op(Tensor(a), Tensor(v)).data * r).sum()), b)
    np.testing.assert_allclose(ta.grad, num_a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tb.grad, num_b, rtol=1e-6, atol=1e-6)


def test_reflected_operators_with_arrays_and_numbers():
    x = np.array([1.0, 2.0, 3.0])
    t = Tensor(x, requires_grad=True)
    out = (x + t) * 2 - (1 - t) + x / t + 2 / t + x * t + x - t
    assert isinstance(out, Tensor)
    out.sum().backward()
    expected = 2 + 1 - x / x**2 - 2 / x**2 + x - 1
    np.testing.assert_allclose(t.grad, expected)


# -- matmul -------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_gradients(sa, sb):
    a, b = arrays(sa, 3), arrays(sb, 4)
    out_shape = np.matmul(a, b).shape
    r = np.random.default_rng(5).standard_normal(out_shape)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    (((ta @ tb) * r).sum()).backward()
    num_a = numeric_grad(lambda v: float((np.matmul(v, b) * r).sum()), a)
    num_b = numeric_grad(lambda v: float((np.matmul(a, v) * r).sum()), b)
    np.testing.assert_allclose(ta.grad, num_a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tb.grad, num_b, rtol=1e-6, atol=1e-7)


def test_matmul_with_constant_operand_and_transposed_weight():
    x, W = arrays((5, 3), 0), arrays((4, 3), 1)
    tW = Tensor(W, requires_grad=True)
    ((x @ tW.T) ** 2).sum().backward()
    num = numeric_grad(lambda v: float(((x @ v.T) ** 2).sum()), W)
    np.testing.assert_allclose(tW.grad, num, rtol=1e-6, atol=1e-7)


# -- reductions ---------------------------------------------------------------------------

AXES = [None, 0, -1, (0, 1), 1]


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradients(op, axis, keepdims):
    x = arrays((3, 4, 2), 7)  # continuous random values: no ties for max
    check_unary(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), x)
    ref = getattr(np, "amax" if op == "max" else op)(x, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(getattr(Tensor(x), op)(axis=axis, keepdims=keepdims).data, ref)


def test_axis_may_be_a_numpy_integer():
    x = arrays((3, 4), 1)
    for op in ["sum", "mean", "max"]:
        ref = getattr(Tensor(x), op)(axis=1).data
        np.testing.assert_array_equal(getattr(Tensor(x), op)(axis=np.int64(1)).data, ref)
        np.testing.assert_array_equal(getattr(Tensor(x), op)(axis=(np.int64(1),)).data, ref)


def test_max_ties_share_the_gradient_equally():
    t = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    t.max(axis=1).sum().backward()
    np.testing.assert_allclose(t.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_reductions_of_a_zero_dim_tensor():
    t = Tensor(np.array(2.0), requires_grad=True)
    (t.sum() * t.mean() * t.max()).backward()
    assert t.grad.shape == () and float(t.grad) == pytest.approx(12.0)


# -- shape --------------------------------------------------------------------------------


def test_reshape_transpose_T_gradients():
    x = arrays((2, 3, 4), 8)
    check_unary(lambda t: t.reshape(6, 4), x)
    check_unary(lambda t: t.reshape((4, -1)), x)
    check_unary(lambda t: t.transpose(), x)
    check_unary(lambda t: t.transpose(1, 0, 2), x)
    check_unary(lambda t: t.transpose((2, 0, 1)) * t.transpose((2, 0, 1)), x)
    check_unary(lambda t: t.reshape(6, 4).T, x)


INDICES = [
    1,
    -1,
    slice(1, None),
    (slice(None), 2),
    (Ellipsis, 0),
    (None, 1),
    (slice(None, None, 2), slice(1, 3)),
    np.array([0, 2, 2, 0]),
    (np.array([0, 1, 1]), np.array([3, 3, 0])),
    (slice(None), [1, 1, 2]),
    np.array([True, False, True]),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing_gradients(index):
    x = arrays((3, 4), 9)
    check_unary(lambda t: t[index], x)


def test_fancy_index_repeats_accumulate():
    t = Tensor(np.zeros(3), requires_grad=True)
    t[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 0.0, 1.0])


# -- graph semantics ----------------------------------------------------------------------


def test_fan_out_sums_adjoints():
    x = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = x * x + x.exp() + x  # x used four times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + np.exp(x.data) + 1)


def test_backward_twice_accumulates_leaf_gradients_only():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    y = (h * h).sum()
    y.backward()
    g1, hg1 = x.grad.copy(), h.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * g1)  # leaves accumulate
    np.testing.assert_allclose(h.grad, hg1)  # intermediates hold this call's adjoint


def test_leaf_gradients_do_not_alias_each_other():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, np.ones(3))
    assert a.grad.flags.writeable and b.grad.flags.writeable


def test_leaf_gradients_that_are_views_of_one_array_are_separated():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones((3, 2)), requires_grad=True)
    (a.reshape(3, 2) + b.T.T * 2.0 + b).sum().backward()
    a.grad[0, 0] = 5.0
    np.testing.assert_array_equal(b.grad, np.full((3, 2), 3.0))
    np.testing.assert_array_equal(a.grad.ravel()[1:], np.ones(5))


def test_graphs_are_freed_by_reference_counting():
    """Backward closures hold inputs and arrays, never their own output: no reference cycles,
    so a graph's arrays are freed as soon as the loss goes out of scope."""
    import gc

    x = Tensor(np.ones((3, 4)), requires_grad=True)

    def step():
        h = (x @ np.ones((4, 4))).tanh().sigmoid().exp() / (x + 1.0) ** 2
        loss = bpkit.F.cross_entropy(bpkit.F.softmax(h).log() + h.T.T, [0, 1, 2]) + h.max()
        loss.backward()

    gc.collect()
    gc.disable()
    try:
        step()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_seed_gradient_for_non_scalar_output():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    seed = np.array([1.0, 0.0, -1.0])
    (x * x).backward(seed)
    np.testing.assert_allclose(x.grad, 2 * x.data * seed)
    np.testing.assert_array_equal(seed, [1.0, 0.0, -1.0])  # the seed is not modified


def test_constants_get_no_gradient():
    x = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.ones(2))
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(2), requires_grad=True)
    with bpkit.no_grad():
        y = (x * 2).exp().sum()
    assert not y.requires_grad and y.inputs == ()
    z = (x * 2).sum()  # grad mode is back on after the block
    assert z.requires_grad and z.inputs


def test_graph_nodes_have_op_and_prev_for_drawing():
    x = Tensor(np.ones(2), requires_grad=True, label="x")
    y = (x * 2.0).tanh()
    assert y.op == "tanh" and y.inputs[0].op == "mul" and y.inputs[0].inputs[0] is x
    assert x.label == "x"


# -- dtypes -------------------------------------------------------------------------------

F32_OPS = {
    "arith": lambda t: ((t * 2.0 + 1) / 3.0 - 0.5) ** 2,
    "rarith": lambda t: 2.0 / (1.0 + t * t) + 3 - t,
    "exp_tanh_sigmoid_relu": lambda t: t.exp().tanh() + t.sigmoid() + t.relu(),
    "reductions": lambda t: t.sum(axis=0) + t.mean(axis=0) + t.max(axis=0),
    "matmul": lambda t: t @ t.T,
    "index_reshape": lambda t: t[np.array([0, 1, 1])].reshape(-1),
    "softmax": lambda t: bpkit.F.softmax(t) + bpkit.F.log_softmax(t, axis=0),
    "mse": lambda t: bpkit.F.mse_loss(t, np.zeros((3, 4), np.float32)),
    "xent": lambda t: bpkit.F.cross_entropy(t, np.array([0, 1, 3])),
    "swish_mish": lambda t: bpkit.F.swish(t) * bpkit.F.mish(t),
}


@pytest.mark.parametrize("name", sorted(F32_OPS))
def test_float32_is_preserved_forward_and_backward(name):
    t = Tensor(arrays((3, 4), 10).astype(np.float32), requires_grad=True)
    out = F32_OPS[name](t)
    assert out.dtype == np.float32, out.dtype
    out.sum().backward()
    assert t.grad.dtype == np.float32 and t.grad.shape == (3, 4)


def test_mixed_float32_float64_follows_numpy_promotion():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float64), requires_grad=True)
    out = a * b
    assert out.dtype == np.result_type(np.float32, np.float64)
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_integer_data_without_grad_becomes_float64():
    t = Tensor([1, 2, 3])
    assert t.dtype == np.float64
    assert Tensor(np.array([True, False])).dtype == np.float64


def test_item_shape_repr():
    t = Tensor(np.float32(2.5))
    assert t.item() == 2.5 and t.shape == () and "dtype=float32" in repr(t)
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))


def test_python_numbers_are_weak_numpy_scalars_are_not():
    t = Tensor(np.ones(2, np.float32))
    assert (t * 2.0).dtype == np.float32 and (3 - t).dtype == np.float32
    assert (2.0**t).dtype == np.float32 and (t**2.5).dtype == np.float32
    ref = (np.ones(2, np.float32) * np.float64(2.0)).dtype  # NumPy's own promotion
    assert (t * np.float64(2.0)).dtype == ref
