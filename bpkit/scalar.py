"""Scalar reverse mode: the per-neuron view of backpropagation.

A :class:`bpkit.Value` holds a number ``data``, the ``inputs`` it was computed from, their
local derivatives d(out)/d(input) in ``partials`` (computed at forward time), its ``op``, a
``label`` and, after ``C.backward()``, ``grad`` = dC/d(data). The backward pass applies to
every edge, in reverse topological order (a node used twice receives both contributions):

    input.grad += d(out)/d(input) * out.grad
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from . import engine

__all__ = ["Value"]

Number = int | float


def _pow(a: float, k: float) -> float:
    """a^k, signed inf where it overflows (as a * a gives; Python's ** raises instead)."""
    try:
        return a**k
    except OverflowError:
        negative = a < 0 and float(k).is_integer() and int(k) % 2 == 1
        return -math.inf if negative else math.inf


class Value:
    """A scalar in a computation graph, with its adjoint ``grad``."""

    __slots__ = ("data", "grad", "inputs", "partials", "op", "label")
    __array_ufunc__ = None  # NumPy scalars (op) Value defer to Value's reflected operators

    def __init__(self, data: Number, label: str = "") -> None:
        if isinstance(data, Value):
            raise TypeError("Value(data): data is already a Value; use it directly")
        try:
            if hasattr(data, "bind"):
                raise TypeError("a Tensor or Dual: float() would drop its graph")
            self.data = float(data)
        except (TypeError, ValueError) as e:
            raise TypeError(f"Value: data must be a real number, got {type(data).__name__} "
                            "(a Value is one scalar; use bpkit.Tensor for arrays)") from e
        self.grad = 0.0
        self.inputs: tuple[Value, ...] = ()  # the nodes this one was computed from
        self.partials: tuple[float, ...] = ()  # d(self)/d(input) for each input
        self.op = ""
        self.label = label

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{label})"

    # -- arithmetic: each rule gives the result and its local derivatives -----------------

    def __add__(self, other: Value | Number) -> Value:
        """a + b; local derivatives 1 and 1."""
        other = other if isinstance(other, Value) else Value(other)
        return _node(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Value | Number) -> Value:
        """a b; local derivatives b and a."""
        other = other if isinstance(other, Value) else Value(other)
        return _node(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, k: Number) -> Value:
        """a^k; local derivative k a^(k-1), and a^k log a for a Value exponent k (a > 0)."""
        if isinstance(k, Value):
            if not self.data > 0:
                raise ValueError(
                    f"pow: Value base must be > 0 for a Value exponent, got {self.data}")
            out = _pow(self.data, k.data)
            partials = (k.data * _pow(self.data, k.data - 1), out * math.log(self.data))
            return _node(out, (self, k), partials, "**")
        if isinstance(k, numbers.Integral):  # also NumPy integers and floats, as Python's
            k = int(k)
        elif isinstance(k, numbers.Real):
            k = float(k)
        else:
            raise TypeError(f"pow: exponent must be int, float or Value, got {type(k).__name__}")
        if self.data < 0 and not float(k).is_integer():
            raise ValueError(f"pow: negative base {self.data} with non-integer exponent {k}")
        if k == 0:
            return _node(1.0, (self,), (0.0,), "**0")
        if self.data == 0 and k < 1:
            raise ZeroDivisionError(f"pow: base 0 with exponent {k} (derivative is infinite)")
        return _node(_pow(self.data, k), (self,), (k * _pow(self.data, k - 1),), f"**{k}")

    def __rpow__(self, base: Number) -> Value:
        if base <= 0:
            raise ValueError(f"rpow: base must be > 0 for a Value exponent, got {base}")
        out = _pow(base, self.data)
        return _node(out, (self,), (out * math.log(base),), f"{base}**")

    def __neg__(self) -> Value:
        return _node(-self.data, (self,), (-1.0,), "neg")

    def __sub__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return _node(self.data - other.data, (self, other), (1.0, -1.0), "-")

    def __truediv__(self, other: Value | Number) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        if other.data == 0.0:
            raise ZeroDivisionError(f"div: division of {self.data} by a Value equal to 0")
        # d/db = -a/b^2 = -(a/b)/b: divisions, not a product with 1/b (inf for a subnormal b)
        q = self.data / other.data
        return _node(q, (self, other), (1.0 / other.data, -q / other.data), "/")

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return Value(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return Value(other) / self

    # -- elementary functions -------------------------------------------------------------

    def exp(self) -> Value:
        """e^a; local derivative e^a."""
        if self.data > 709.78:
            raise OverflowError(f"exp: e^{self.data} overflows a float")
        out = math.exp(self.data)
        return _node(out, (self,), (out,), "exp")

    def log(self) -> Value:
        """log a (a > 0); local derivative 1/a."""
        if self.data <= 0:
            raise ValueError(f"log: argument must be > 0, got {self.data}")
        return _node(math.log(self.data), (self,), (1.0 / self.data,), "log")

    def tanh(self) -> Value:
        """tanh a; local derivative 1 - tanh^2 a."""
        t = math.tanh(self.data)
        return _node(t, (self,), (1.0 - t * t,), "tanh")

    def sigmoid(self) -> Value:
        """sigma(a) = 1/(1 + e^-a); local derivative sigma (1 - sigma)."""
        z = self.data
        if z >= 0:  # stable for large |z|: never exponentiate a large positive number
            s = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        return _node(s, (self,), (s * (1.0 - s),), "sigmoid")

    def softplus(self) -> Value:
        r""":math:`\log(1 + e^a) = \max(a, 0) + \log(1 + e^{-|a|})`; local derivative
        :math:`\sigma(a)`."""
        z = self.data
        e = math.exp(-abs(z))
        s = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return _node(max(z, 0.0) + math.log1p(e), (self,), (s,), "softplus")

    def relu(self) -> Value:
        """max(a, 0); local derivative 1 for a > 0, else 0 (also at 0). NaN stays NaN."""
        if self.data > 0:
            return _node(self.data, (self,), (1.0,), "relu")
        return _node(0.0 if self.data == self.data else math.nan, (self,), (0.0,), "relu")

    @staticmethod
    def dot(w: Sequence[Value], x: Sequence[Value | Number],
            b: Value | Number | None = None) -> Value:
        """A neuron's z = sum_k w_k x_k + b as one node (not 2n binary ones): dz/dw_k = x_k,
        dz/dx_k = w_k, dz/db = 1. Plain numbers in ``x`` are constants."""
        if len(w) != len(x):
            raise ValueError(f"dot: {len(w)} weights but {len(x)} inputs")
        z = 0.0
        prev: list[Value] = []
        local: list[float] = []
        for wk, xk in zip(w, x, strict=True):
            if isinstance(xk, Value):
                z += wk.data * xk.data
                prev += (wk, xk)
                local += (xk.data, wk.data)
            else:
                z += wk.data * xk
                prev.append(wk)
                local.append(xk)
        if isinstance(b, Value):
            z += b.data
            prev.append(b)
            local.append(1.0)
        elif b is not None:
            z += b
        return _node(z, tuple(prev), tuple(local), "dot")

    @staticmethod
    def sum(values: Iterable[Value | Number]) -> Value:
        """The sum of many values as one node; each local derivative is 1."""
        total = 0.0
        prev = []
        for v in values:
            if isinstance(v, Value):
                total += v.data
                prev.append(v)
            else:
                total += v
        return _node(total, tuple(prev), (1.0,) * len(prev), "sum")

    def backward(self) -> None:
        """Set self.grad = 1 and propagate adjoints to every node it depends on (no recursion
        limit). Leaves' grads accumulate across calls (reset with ``v.grad = 0``);
        intermediate nodes hold this call's adjoint."""
        engine.backward(self, 1.0)


def _node(data: float, inputs: tuple[Value, ...], partials: tuple[float, ...], op: str) -> Value:
    out = Value.__new__(Value)
    out.data, out.grad, out.inputs, out.partials, out.op, out.label = (
        data, 0.0, inputs, partials, op, "")
    return out
