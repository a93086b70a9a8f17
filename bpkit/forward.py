"""Forward mode: dual numbers carry a tangent along with every value.

A :class:`bpkit.forward.Dual` holds ``primal`` (the value x) and ``tangent`` (the
directional derivative dx = J v along a chosen direction v). Each operation applies its
derivative *forwards*:

    d(a + b) = da + db,   d(ab) = da b + a db,   d(f(a)) = f'(a) da,   d(AB) = dA B + A dB.

One forward pass gives one Jacobian-vector product J v; a full gradient of a function of n
inputs needs n passes, where reverse mode (:class:`bpkit.Tensor`) needs one.

:class:`bpkit.forward.Dual` implements the operators and methods of :class:`bpkit.Tensor` (and the
``bpkit.functional`` functions dispatch to them), so a function written with them runs
under both :func:`bpkit.grad` and :func:`bpkit.jvp`. Tensors and arrays met inside such a
function are constants (zero tangent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .tensor import Tensor, _sigmoid

__all__ = ["Dual", "jvp"]


def _split(x: Any, like: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """(value, tangent) of an operand; constants have tangent None (zero)."""
    if isinstance(x, Dual):
        return x.primal, x.tangent
    if isinstance(x, Tensor):
        return x.data, None
    if type(x) in (float, int, bool):  # Python numbers are "weak", as in NumPy
        return np.asarray(x, dtype=like.dtype), None
    arr = np.asarray(x)
    return (arr if arr.dtype.kind == "f" else arr.astype(np.float64)), None


def _fit(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The tangent with the primal's shape and dtype (broadcast where an operand was)."""
    if t.shape != p.shape:
        t = np.broadcast_to(t, p.shape)
    return t if t.dtype == p.dtype else t.astype(p.dtype)


class Dual:
    """A value x with a tangent dx of the same shape (forward-mode AD).

    Every operation carries the tangent forwards with its derivative: d f(a) = f'(a) da,
    d(ab) = da b + a db, d(AB) = dA B + A dB. :func:`bpkit.jvp` starts from dx = v.
    """

    __slots__ = ("primal", "tangent")
    _is_dual = True  # lets Tensor's operators hand over to Dual's reflected ones
    __array_ufunc__ = None

    def __init__(self, primal: Any, tangent: Any = None) -> None:
        p = np.asarray(primal)
        if p.dtype.kind != "f":
            p = p.astype(np.float64)
        t = np.zeros_like(p) if tangent is None else np.asarray(tangent)
        if t.shape != p.shape:
            raise ValueError(f"Dual: tangent shape {t.shape} differs from primal shape {p.shape}")
        self.primal = p
        self.tangent = t.astype(p.dtype, copy=False)

    @staticmethod
    def _new(p: Any, t: np.ndarray) -> Dual:
        out = Dual.__new__(Dual)
        out.primal = np.asarray(p)
        out.tangent = _fit(np.asarray(t), out.primal)
        return out

    def __repr__(self) -> str:
        return f"Dual(primal={self.primal!r}, tangent={self.tangent!r})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> np.dtype:
        return self.primal.dtype

    @property
    def ndim(self) -> int:
        return self.primal.ndim

    @property
    def size(self) -> int:
        return self.primal.size

    @property
    def data(self) -> np.ndarray:
        return self.primal

    def __len__(self) -> int:
        return len(self.primal)

    def item(self) -> float:
        return self.primal.item()

    # -- arithmetic -----------------------------------------------------------------------

    def _binary(self, other: Any, op: str, fn: Callable) -> tuple:
        b, db = _split(other, self.primal)
        try:
            p = fn(self.primal, b)
        except ValueError as e:
            raise ValueError(
                f"{op}: shapes {self.primal.shape} and {np.shape(b)} cannot be broadcast together"
            ) from e
        return b, db, p

    def __add__(self, other: Any) -> Dual:
        b, db, p = self._binary(other, "add", np.add)
        return Dual._new(p, self.tangent if db is None else self.tangent + db)

    def __radd__(self, other: Any) -> Dual:
        return self + other

    def __sub__(self, other: Any) -> Dual:
        b, db, p = self._binary(other, "sub", np.subtract)
        return Dual._new(p, self.tangent if db is None else self.tangent - db)

    def __rsub__(self, other: Any) -> Dual:
        return -self + other

    def __neg__(self) -> Dual:
        return Dual._new(-self.primal, -self.tangent)

    def __mul__(self, other: Any) -> Dual:
        b, db, p = self._binary(other, "mul", np.multiply)
        t = self.tangent * b  # d(ab) = da b + a db
        return Dual._new(p, t if db is None else t + self.primal * db)

    def __rmul__(self, other: Any) -> Dual:
        return self * other

    def __truediv__(self, other: Any) -> Dual:
        b, db, p = self._binary(other, "div", np.divide)
        t = self.tangent / b  # d(a/b) = da/b - (a/b) db/b
        return Dual._new(p, t if db is None else t - p * db / b)

    def __rtruediv__(self, other: Any) -> Dual:
        a, _ = _split(other, self.primal)
        p = a / self.primal  # d(c/b) = -(c/b) db/b
        return Dual._new(p, -p * self.tangent / self.primal)

    def __pow__(self, other: Any) -> Dual:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            k = other  # d(a^k) = k a^(k-1) da; 0 for k = 0 (also at a = 0)
            d = k * self.primal ** (k - 1) if k != 0 else np.zeros_like(self.primal)
            return Dual._new(self.primal**k, d * self.tangent)
        b, db, p = self._binary(other, "pow", np.power)
        a = self.primal  # d(a^b) = b a^(b-1) da + a^b log(a) db, with the limits of Tensor.__pow__
        t = b * a ** np.where(b, b - 1, 1) * self.tangent
        return Dual._new(p, t if db is None else t + p * np.log(np.where(a, a, 1)) * db)

    def __rpow__(self, other: Any) -> Dual:
        c, _ = _split(other, self.primal)
        p = c**self.primal  # d(c^a) = c^a log(c) da, with log 1 = 0 where c = 0
        return Dual._new(p, p * np.log(np.where(c, c, 1)) * self.tangent)

    def __matmul__(self, other: Any) -> Dual:
        b, db = _split(other, self.primal)
        p = _matmul(self.primal, b)
        t = np.matmul(self.tangent, b)  # d(AB) = dA B + A dB
        return Dual._new(p, t if db is None else t + np.matmul(self.primal, db))

    def __rmatmul__(self, other: Any) -> Dual:
        a, _ = _split(other, self.primal)
        return Dual._new(_matmul(a, self.primal), np.matmul(a, self.tangent))

    # -- reductions and shape -------------------------------------------------------------

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Dual:
        return Dual._new(
            self.primal.sum(axis=axis, keepdims=keepdims),
            self.tangent.sum(axis=axis, keepdims=keepdims),
        )

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Dual:
        """NaN for a mean of no entries, as Tensor.mean (NumPy's gives it with a warning)."""
        axes = range(self.ndim) if axis is None else np.atleast_1d(axis)
        if any(self.primal.shape[ax] == 0 for ax in axes):
            return self.sum(axis=axis, keepdims=keepdims) * np.nan
        return Dual._new(
            self.primal.mean(axis=axis, keepdims=keepdims),
            self.tangent.mean(axis=axis, keepdims=keepdims),
        )

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Dual:
        """Tangent: the mean of the tangents of the maximal entries (ties shared, as in
        Tensor.max)."""
        m = self.primal.max(axis=axis, keepdims=True)
        mask = self.primal == m
        t = (self.tangent * mask).sum(axis=axis, keepdims=True) / mask.sum(axis=axis, keepdims=True)
        if not keepdims:
            ax = tuple(range(self.primal.ndim)) if axis is None else axis
            m, t = np.squeeze(m, axis=ax), np.squeeze(t, axis=ax)
        return Dual._new(m, t)

    def reshape(self, *shape: int | tuple[int, ...]) -> Dual:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Dual._new(self.primal.reshape(shape), self.tangent.reshape(shape))

    def transpose(self, *axes: int) -> Dual:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        ax = axes or None
        return Dual._new(self.primal.transpose(ax), self.tangent.transpose(ax))

    @property
    def T(self) -> Dual:
        return self.transpose()

    def __getitem__(self, index: Any) -> Dual:
        if isinstance(index, list):
            index = np.asarray(index)
        return Dual._new(self.primal[index], self.tangent[index])

    # -- elementary functions: d f(a) = f'(a) da ------------------------------------------

    def exp(self) -> Dual:
        p = np.exp(self.primal)
        return Dual._new(p, p * self.tangent)

    def log(self) -> Dual:
        return Dual._new(np.log(self.primal), self.tangent / self.primal)

    def tanh(self) -> Dual:
        p = np.tanh(self.primal)
        return Dual._new(p, (1 - p * p) * self.tangent)

    def sigmoid(self) -> Dual:
        p = _sigmoid(self.primal)
        return Dual._new(p, p * (1 - p) * self.tangent)

    def relu(self) -> Dual:
        return Dual._new(np.maximum(self.primal, 0), self.tangent * (self.primal > 0))

    def softplus(self) -> Dual:
        x = self.primal
        p = np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        return Dual._new(p, _sigmoid(x) * self.tangent)

    def softmax(self, axis: int = -1) -> Dual:
        e = np.exp(self.primal - self.primal.max(axis=axis, keepdims=True))
        s = e / e.sum(axis=axis, keepdims=True)
        # ds = s * (da - sum(s * da))
        return Dual._new(s, s * (self.tangent - (s * self.tangent).sum(axis=axis, keepdims=True)))

    def log_softmax(self, axis: int = -1) -> Dual:
        shifted = self.primal - self.primal.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=axis, keepdims=True)
        # d log_softmax = da - sum(softmax * da)
        t = self.tangent - ((e / s) * self.tangent).sum(axis=axis, keepdims=True)
        return Dual._new(shifted - np.log(s), t)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError(
            f"matmul: operands must have at least one dimension, got shapes "
            f"{np.shape(a)} and {np.shape(b)} (use * for a scalar)"
        )
    try:
        return np.matmul(a, b)
    except ValueError as e:
        raise ValueError(f"matmul: shapes {np.shape(a)} and {np.shape(b)} are not aligned") from e


def _unwrap(x: Any) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


def jvp(f: Callable[..., Any], x: Any, v: Any) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Forward mode: return (f(x), J_f(x) v), the value and the directional derivative.

    ``x`` and ``v`` are array-likes of the same shape (Python floats give float results).
    ``f`` takes the dual number and may use operators, Tensor-style methods and
    ``bpkit.functional``.
    """
    p = np.asarray(x.data if isinstance(x, Tensor) else x)
    if p.dtype.kind != "f":
        p = p.astype(np.float64)
    t = np.asarray(v, dtype=p.dtype)
    if t.shape != p.shape:
        raise ValueError(f"jvp: direction v has shape {t.shape}, x has shape {p.shape}")
    out = f(Dual(p, t))
    if isinstance(out, Dual):
        return _unwrap(out.primal), _unwrap(out.tangent)
    value = out.data if isinstance(out, Tensor) else np.asarray(out)
    return _unwrap(value), _unwrap(np.zeros_like(value))
