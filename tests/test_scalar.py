"""Tests of bpkit.Value: local rules vs central differences, Value vs Tensor, graph shape,
the iterative topological sort on a 1,000,000-node chain."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpkit import F, Tensor, Value

SETTINGS = settings(max_examples=25, deadline=None)
floats = st.floats(-2.0, 2.0, allow_nan=False)
positive = st.floats(0.3, 3.0, allow_nan=False)


def central(f, *xs, h=1e-6):
    """Central differences of f(*floats) -> float with respect to each argument."""
    grads = []
    for i in range(len(xs)):
        up = list(xs)
        down = list(xs)
        up[i] += h
        down[i] -= h
        grads.append((f(*up) - f(*down)) / (2 * h))
    return grads


# Each expression is written once and evaluated on Values, on plain floats (through math)
# for the finite differences, and on 0-d Tensors.
EXPRESSIONS = {
    "add_mul_sub": lambda a, b, m: a * b + a - b * 3.0 + 2.0,
    "div": lambda a, b, m: (a + 3.0) / (b * b + 1.0) - 2.0 / (a * a + 1.0),
    "pow": lambda a, b, m: (a * a + 1.0) ** 1.5 + a**3 - 2.0 * b**2,
    "exp_log": lambda a, b, m: m.exp(a * 0.5) * m.log(b * b + 1.0),
    "tanh": lambda a, b, m: m.tanh(a * b) + m.tanh(a),
    "sigmoid": lambda a, b, m: m.sigmoid(a - b) * m.sigmoid(b),
    "neg_rsub": lambda a, b, m: -a + (1.0 - b) * (2.0 - a),
    "fan_out": lambda a, b, m: a * a * a + a * b + b,
    "softplus": lambda a, b, m: m.softplus(a * 3.0) * m.softplus(-b),
}


class ValueMath:
    exp = staticmethod(lambda v: v.exp())
    log = staticmethod(lambda v: v.log())
    tanh = staticmethod(lambda v: v.tanh())
    sigmoid = staticmethod(lambda v: v.sigmoid())
    softplus = staticmethod(lambda v: v.softplus())


class FloatMath:
    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    tanh = staticmethod(math.tanh)
    sigmoid = staticmethod(lambda z: 1.0 / (1.0 + math.exp(-z)))
    softplus = staticmethod(lambda z: math.log1p(math.exp(z)))


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
@SETTINGS
@given(a=floats, b=floats)
def test_value_gradients_vs_central_differences(name, a, b):
    expr = EXPRESSIONS[name]
    va, vb = Value(a), Value(b)
    out = expr(va, vb, ValueMath)
    out.backward()
    assert out.data == pytest.approx(expr(a, b, FloatMath), rel=1e-12, abs=1e-12)
    ga, gb = central(lambda x, y: expr(x, y, FloatMath), a, b)
    assert va.grad == pytest.approx(ga, rel=1e-6, abs=1e-6)
    assert vb.grad == pytest.approx(gb, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
@SETTINGS
@given(a=floats, b=floats)
def test_value_agrees_with_tensor(name, a, b):
    expr = EXPRESSIONS[name]
    va, vb = Value(a), Value(b)
    expr(va, vb, ValueMath).backward()
    ta, tb = Tensor(np.array(a), requires_grad=True), Tensor(np.array(b), requires_grad=True)
    out = expr(ta, tb, ValueMath)
    out.backward()
    assert va.grad == pytest.approx(float(ta.grad), rel=1e-12, abs=1e-12)
    assert vb.grad == pytest.approx(float(tb.grad), rel=1e-12, abs=1e-12)


@SETTINGS
@given(a=st.floats(-3.0, 3.0).filter(lambda z: abs(z) > 1e-3))
def test_relu(a):
    v = Value(a)
    r = v.relu()
    r.backward()
    assert r.data == max(a, 0.0) and v.grad == (1.0 if a > 0 else 0.0)


@SETTINGS
@given(x=positive, e=st.floats(-2.0, 2.0))
def test_value_exponent_and_rpow(x, e):
    vx, ve = Value(x), Value(e)
    (vx**ve + 2.0**vx).backward()
    gx, ge = central(lambda p, q: p**q + 2.0**p, x, e)
    assert vx.grad == pytest.approx(gx, rel=1e-6, abs=1e-6)
    assert ve.grad == pytest.approx(ge, rel=1e-6, abs=1e-6)


def test_every_elementwise_activation_of_functional_accepts_a_value():
    for name in ["sigmoid", "tanh", "relu", "swish", "mish", "softplus"]:
        v, t = Value(0.7), Tensor(np.array(0.7), requires_grad=True)
        out_v, out_t = getattr(F, name)(v), getattr(F, name)(t)
        out_v.backward()
        out_t.backward()
        assert out_v.data == pytest.approx(out_t.item(), rel=1e-15)
        assert v.grad == pytest.approx(float(t.grad), rel=1e-15)
    assert Value(1000.0).softplus().data == 1000.0 and Value(-1000.0).softplus().data == 0.0


def test_sigmoid_is_stable_for_large_inputs():
    for z in (-1000.0, -50.0, 50.0, 1000.0):
        v = Value(z)
        s = v.sigmoid()
        s.backward()
        assert 0.0 <= s.data <= 1.0 and math.isfinite(v.grad)
    assert Value(-1000.0).sigmoid().data == 0.0 and Value(1000.0).sigmoid().data == 1.0


def test_dot_node_matches_binary_nodes():
    rng = np.random.default_rng(0)
    w = [Value(x) for x in rng.standard_normal(5)]
    x = [Value(x) for x in rng.standard_normal(5)]
    b = Value(0.3)
    z = Value.dot(w, x, b)
    z.tanh().backward()
    assert z.op == "dot" and len(z.inputs) == 11
    grads = [v.grad for v in w + x + [b]]
    for v in w + x + [b]:
        v.grad = 0.0
    z2 = b
    for wk, xk in zip(w, x, strict=True):
        z2 = z2 + wk * xk
    z2.tanh().backward()
    assert z.data == pytest.approx(z2.data, rel=1e-14)
    assert grads == pytest.approx([v.grad for v in w + x + [b]], rel=1e-12)


def test_dot_with_constant_inputs_and_sum():
    w = [Value(2.0), Value(-1.0)]
    z = Value.dot(w, [3.0, 4.0])
    s = Value.sum([z, w[0], 5.0])
    s.backward()
    assert s.data == 2.0 * 3 - 4 + 2 + 5
    assert [v.grad for v in w] == [4.0, 4.0]
    assert len(z.inputs) == 2  # constants get no node


def test_one_million_node_chain_backward_without_recursion_error():
    x = Value(0.5)
    y = x
    for _ in range(1_000_000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_fan_out_and_repeated_backward():
    a = Value(3.0)
    h = a * a  # intermediate
    y = h + h
    y.backward()
    assert a.grad == 12.0 and h.grad == 2.0
    y.backward()
    assert a.grad == 24.0  # leaves accumulate
    assert h.grad == 2.0  # intermediates are recomputed


def test_graph_fields_for_drawing():
    a = Value(1.0, label="a")
    b = a.tanh()
    c = b * 2
    assert c.op == "*" and c.inputs[0] is b and b.inputs == (a,) and b.op == "tanh"
    assert a.label == "a" and "label='a'" in repr(a)
    assert not hasattr(a, "__dict__")  # __slots__


def test_errors():
    with pytest.raises(ValueError, match="log"):
        Value(-1.0).log()
    with pytest.raises(ZeroDivisionError, match="div"):
        Value(1.0) / Value(0.0)
    with pytest.raises(TypeError, match="pow"):
        Value(1.0) ** "2"


def test_more_errors_and_numpy_scalars():
    with pytest.raises(ValueError, match="negative base"):
        Value(-2.0) ** 0.5
    with pytest.raises(OverflowError, match="exp"):
        Value(1000.0).exp()
    assert (Value(-2.0) ** 2).data == 4.0 and (Value(0.0) ** 0).data == 1.0
    v = Value(3.0)
    out = np.float32(2.0) * v + np.float64(1.0)  # NumPy scalars defer to Value
    assert isinstance(out, Value) and out.data == 7.0


def test_numpy_number_exponents_work_like_python_numbers():
    for k in (np.int64(3), np.float32(0.5), np.float64(1.5)):
        v, w = Value(2.0), Value(2.0)
        (v**k).backward()
        (w ** (int(k) if isinstance(k, np.integer) else float(k))).backward()
        assert v.grad == w.grad  # same value and float64 precision as a Python exponent


def test_clear_errors_for_rpow_base_and_non_numbers():
    with pytest.raises(ValueError, match=r"rpow: base must be > 0 .* got -2\.0"):
        (-2.0) ** Value(2.0)
    with pytest.raises(ValueError, match="rpow: base must be > 0"):
        0.0 ** Value(2.0)
    with pytest.raises(TypeError, match=r"Value: data must be a real number, got Tensor"):
        Value(1.0) + Tensor(np.array(2.0))
    with pytest.raises(TypeError, match=r"Value: data must be a real number, got ndarray"):
        Value(np.ones(2))
