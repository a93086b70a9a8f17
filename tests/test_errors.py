"""Bad input gets a clear error naming the operation and the shapes/dtypes involved."""

import numpy as np
import pytest

import bpkit
from bpkit import F, Tensor


def test_mismatched_shapes_name_op_and_shapes():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4,)))
    for op, name in [
        (lambda: a + b, "add"),
        (lambda: a - b, "sub"),
        (lambda: a * b, "mul"),
        (lambda: a / b, "div"),
        (lambda: a**b, "pow"),
    ]:
        with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\)"):
            op()


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul: .*\(\) and \(3,\)"):
        Tensor(np.array(1.0)) @ Tensor(np.ones(3))


def test_reshape_transpose_axis_and_index_errors():
    t = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4,\)"):
        t.reshape(4)
    with pytest.raises(ValueError, match="transpose"):
        t.transpose(0, 0)
    with pytest.raises(np.exceptions.AxisError, match=r"sum: axis 2 .* \(2, 3\)"):
        t.sum(axis=2)
    with pytest.raises(ValueError, match=r"sum: axis \(1, -1\) repeats an axis of shape \(2, 3\)"):
        t.sum(axis=(1, -1))
    with pytest.raises(np.exceptions.AxisError, match=r"softmax: axis 2 .* \(2, 3\)"):
        t.softmax(axis=2)
    with pytest.raises(np.exceptions.AxisError, match=r"log_softmax: axis -3 .* \(2, 3\)"):
        t.log_softmax(axis=-3)
    with pytest.raises(IndexError, match=r"getitem: .*\(2, 3\)"):
        t[5]
    with pytest.raises(TypeError, match="getitem"):
        t[Tensor([0.0])]


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="bool"):
        Tensor(np.array([True]), requires_grad=True)
    with pytest.raises(TypeError, match="complex128"):
        Tensor(np.ones(2, complex))
    with pytest.raises(TypeError, match=r"Tensor: dtype float16 .*need float32/float64"):
        Tensor(np.ones(2, np.float16), requires_grad=True)


def test_backward_needs_seed_for_non_scalar():
    t = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match=r"backward: the output has shape \(3,\).*seed"):
        (t * 2).backward()
    with pytest.raises(
        ValueError, match=r"seed gradient has shape \(2,\), output has shape \(3,\)"
    ):
        (t * 2).backward(np.ones(2))


def test_backward_on_tensor_without_graph():
    t = Tensor(np.ones(3), requires_grad=True)
    with bpkit.no_grad():
        y = (t * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_debug_names_the_op_that_makes_nan_or_inf():
    t = Tensor(np.array([[1.0, -1.0]], np.float32), requires_grad=True)
    with bpkit.debug(), np.errstate(all="ignore"):
        with pytest.raises(
            FloatingPointError, match=r"log: forward pass produced NaN .*\(1, 2\) float32"
        ):
            t.log()
        with pytest.raises(FloatingPointError, match=r"exp: forward pass produced inf"):
            (t * 100.0).exp()
        with pytest.raises(FloatingPointError, match=r"div"):
            t / Tensor(np.zeros((1, 2), np.float32))
    # outside debug: IEEE semantics, no error
    with np.errstate(all="ignore"):
        assert np.isnan(t.log().data).any()


def test_debug_checks_the_backward_pass():
    t = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = (t**0.5).sum()  # finite forward; d sqrt(x)/dx = inf at 0
    with bpkit.debug(), pytest.raises(FloatingPointError, match="backward"):
        with np.errstate(divide="ignore"):
            y.backward()


def test_functional_errors():
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(np.ones((3, 1)), np.ones(3))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(np.ones((3, 2)), [0, 1, 2])


def test_grad_requires_scalar_output():
    with pytest.raises(ValueError, match=r"grad: f must return a scalar.*\(3,\)"):
        bpkit.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="grad: f must return a Tensor"):
        bpkit.grad(lambda x: 3.0)(np.ones(3))


def test_tensor_with_a_value_operand_names_the_type():
    with pytest.raises(TypeError, match=r"Tensor: cannot use data of type Value"):
        Tensor(np.ones(2)) + bpkit.Value(1.0)


def test_broadcast_errors_name_the_primitive_and_shapes_in_both_modes():
    message = r"add: shapes \(3,\) and \(4,\) cannot be broadcast together"
    with pytest.raises(ValueError, match=message):
        Tensor(np.ones(3)) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=message):
        bpkit.jvp(lambda x: x + np.ones(4), np.ones(3), np.ones(3))
