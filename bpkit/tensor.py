"""Array reverse mode on NumPy: the matrix view of backpropagation.

A :class:`bpkit.Tensor` wraps a floating NumPy array ``data`` (float32 or float64). An operation
on tensors that require gradients records its inputs (``_prev``), its name (``_op``) and a
``_backward`` closure: given g = dC/d(out), it adds each input's share dC/d(input) to
``input.grad`` (vector-Jacobian products). Each rule sits next to its forward computation.

Conventions:

- Broadcasting: a gradient is summed back over broadcast axes to the input's shape
  ("unbroadcast"), so ``x.grad.shape == x.shape`` and ``x.grad.dtype == x.dtype`` always.
- Fan-out: a tensor used twice receives both contributions; they are added.
- ``backward`` keeps the graph: it can run again, and leaf gradients accumulate (like
  PyTorch with ``retain_graph=True``); gradients of intermediate tensors are recomputed
  from scratch on every call.
- ``max`` sends the gradient to the maximal entries; ties share it equally.
- Python numbers mixed with a float32 tensor stay float32; float32 with float64 tensors
  follows NumPy promotion (float64).
- ``with no_grad():`` builds no graph; ``with debug():`` raises FloatingPointError where a
  forward (or backward) pass first produces NaN or inf. Both are per thread.
- In-place changes: assigning to ``t.data`` (also ``t.data -= eta * g``) or calling
  ``t.assign(w)`` raises ``t.version``; an operation records the versions of the tensors its
  backward rule reads, and ``backward`` raises a RuntimeError naming the operation and the
  tensor if one has changed since, instead of mixing new data into the old graph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["Tensor", "no_grad", "debug", "is_grad_enabled"]


class _GradMode(threading.local):
    """Grad mode and debug mode, per thread (each thread starts with grad on, debug off)."""

    grad = True
    debug = False


_state = _GradMode()

ArrayLike = Any


@contextmanager
def no_grad() -> Iterator[None]:
    """Within the block, operations build no graph (for evaluation and parameter updates).

    The mode is per thread: another thread's ``no_grad()`` does not affect this one."""
    old = _state.grad
    _state.grad = False
    try:
        yield
    finally:
        _state.grad = old


@contextmanager
def debug() -> Iterator[None]:
    """Within the block, raise FloatingPointError at the first operation whose result
    (forward) or input gradient (backward) contains NaN or inf. Per thread, like no_grad."""
    old = _state.debug
    _state.debug = True
    try:
        yield
    finally:
        _state.debug = old


def is_grad_enabled() -> bool:
    """False inside ``no_grad()`` (in this thread)."""
    return _state.grad


def _describe(*arrays: np.ndarray) -> str:
    return ", ".join(f"{a.shape} {a.dtype}" for a in arrays)


_OP_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul"}


def _op_name(op: str) -> str:
    return _OP_NAMES.get(op, op) if not op.startswith("**") else "pow"


def _check_finite(op: str, out: np.ndarray, inputs: tuple[np.ndarray, ...]) -> None:
    """Under ``debug()``: raise if a forward result contains NaN or inf."""
    if not np.isfinite(out).all():
        bad = "NaN" if np.isnan(out).any() else "inf"
        src = "" if all(np.isfinite(a).all() for a in inputs) else " (an input was non-finite)"
        raise FloatingPointError(
            f"{_op_name(op)}: forward pass produced {bad} for inputs of shape/dtype "
            f"{_describe(*inputs)}{src}"
        )


def _check_grads(node: Tensor) -> None:
    """Under ``debug()``: raise if a backward rule wrote NaN or inf into an input's gradient."""
    for i, p in enumerate(node._prev):
        if p.grad is not None and not np.isfinite(p.grad).all():
            bad = "NaN" if np.isnan(p.grad).any() else "inf"
            raise FloatingPointError(
                f"{_op_name(node._op)}: backward pass produced {bad} in the gradient of input "
                f"{i} (shape/dtype {_describe(p.data)}); output gradient was "
                f"{'finite' if np.isfinite(node.grad).all() else 'already non-finite'}"
            )


def _check_versions(node: Tensor) -> None:
    """Raise if a tensor that node's backward rule reads was changed in place since the
    forward pass recorded it: the rule would mix the new data into the old graph."""
    for t, saved in node._saved:
        t = node if t is None else t
        if t._version[0] != saved:
            what = "the output" if t is node else f"input {node._prev.index(t)}"
            op = _op_name(node._op)
            raise RuntimeError(
                f"backward: {what} of {op} (shape/dtype {_describe(t._data)}"
                f"{', label ' + repr(t.label) if t.label else ''}) was modified in place since "
                f"{op} recorded it (version {saved} then, {t._version[0]} now), so the graph no "
                f"longer matches the data; recompute the forward pass after changing it (e.g. "
                f"after opt.step())"
            )


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum g over the axes that broadcasting added or stretched, giving an array of ``shape``."""
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def _accumulate(t: Tensor, g: np.ndarray, fresh: bool = False) -> None:
    """t.grad += g, after summing g back to t's shape and casting it to t's dtype.

    ``fresh`` says g is a new array nobody else holds, so t may keep it and later add into
    it in place (saving an allocation); otherwise the first addition allocates.
    """
    data = t._data
    if type(g) is not np.ndarray or g.shape != data.shape or g.dtype != data.dtype:
        g = np.asarray(g)  # NumPy turns 0-d results into scalars
        if g.shape != data.shape:
            g = np.asarray(_unbroadcast(g, data.shape))
        if g.dtype != data.dtype:
            g = g.astype(data.dtype)
        fresh = True
    if t.grad is None:
        t.grad = g
        t._owns_grad = fresh
    elif t._owns_grad:
        t.grad += g
    else:
        t.grad = t.grad + g
        t._owns_grad = True


def _matmul_like(x: np.ndarray, y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """x @ y, laid out in memory as ``like`` is: for a column-major ``like`` (often a
    transposed view, such as W.T), computed as (y^T x^T)^T. A gradient made this way has its
    operand's layout, so an update ``W -= eta * dC/dW`` streams contiguously."""
    if like.strides[0] < like.strides[1]:
        return np.matmul(y.T, x.T).T
    return np.matmul(x, y)


def _as_data(x: ArrayLike, like: np.ndarray | None = None) -> np.ndarray:
    """Convert a constant operand to an array; Python numbers take the dtype of ``like``."""
    if type(x) in (float, int, bool) and like is not None:  # weak, as in NumPy
        return np.asarray(x, dtype=like.dtype)
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        else:
            raise TypeError(
                f"Tensor: cannot use data of type {type(x).__name__} and dtype {arr.dtype} "
                f"(need float32/float64)"
            )
    return arr


class Tensor:
    """An array in a computation graph, with its adjoint ``grad`` = dC/d(data).

    ``data`` is any array-like; a floating ndarray is used as is, not copied. Floating data
    keeps its dtype (float32 or float64; other float types are refused); integer and boolean
    data become float64, except that a tensor created with ``requires_grad=True`` must be
    given floating data (a TypeError names the dtype).
    ``grad`` is None until :meth:`backward` reaches the tensor, then an ndarray of the
    tensor's shape and dtype. ``label`` is an optional name for drawings.
    """

    __slots__ = (
        "_data",
        "_version",
        "_saved",
        "grad",
        "requires_grad",
        "_prev",
        "_backward",
        "_op",
        "label",
        "_owns_grad",
    )
    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data: ArrayLike, requires_grad: bool = False, label: str = "") -> None:
        if isinstance(data, Tensor):
            version, data = data._version, data.data  # same memory, same version counter
        else:
            version = [0]
        if getattr(data, "_is_dual", False):
            raise TypeError(
                "Tensor: cannot wrap a forward-mode Dual; this operation has no forward-mode "
                "rule (use reverse mode, bpkit.grad)"
            )
        arr = np.asarray(data)
        if arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"Tensor: dtype {arr.dtype} is not supported (need float32/float64); convert "
                f"with np.asarray(x, dtype=np.float32)"
            )
        if arr.dtype.kind != "f":
            if requires_grad:
                raise TypeError(
                    f"Tensor(requires_grad=True): gradients need floating data, got dtype "
                    f"{arr.dtype} with shape {arr.shape}; pass e.g. np.asarray(x, dtype=np.float64)"
                )
            arr = _as_data(data)
            version = [0]
        self._data: np.ndarray = arr
        self._version = version
        self._saved: tuple[tuple[Tensor | None, int], ...] = ()
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._prev: tuple[Tensor, ...] = ()
        self._backward: Callable[[np.ndarray], None] | None = None
        self._op = ""
        self.label = label
        self._owns_grad = False

    # -- graph construction ---------------------------------------------------------------

    @staticmethod
    def _make(data: np.ndarray, prev: tuple[Tensor, ...], op: str) -> Tensor:
        """A result tensor; it joins the graph when grad mode is on and an input needs it."""
        out = Tensor.__new__(Tensor)
        out._data = data if type(data) is np.ndarray else np.asarray(data)
        out._version = [0]
        out._saved = ()
        out.grad = None
        out.label = ""
        out._owns_grad = False
        out._op = op
        if _state.debug:
            _check_finite(op, data, tuple(p.data for p in prev))
        out.requires_grad = False
        out._prev = ()
        if _state.grad:
            for p in prev:
                if p.requires_grad:
                    out.requires_grad = True
                    out._prev = prev
                    break
        out._backward = None
        return out

    def _lift(self, other: Any) -> Tensor:
        """The other operand of a binary operation as a Tensor (a constant unless it is one
        already); NotImplemented for a forward-mode Dual, which then handles the operation."""
        if isinstance(other, Tensor):
            return other
        if getattr(other, "_is_dual", False):
            return NotImplemented
        t = Tensor.__new__(Tensor)
        t._data = _as_data(other, self._data)
        t._version = [0]
        t._saved = ()
        t.grad = None
        t.requires_grad = False
        t._prev = ()
        t._backward = None
        t._op = ""
        t.label = ""
        t._owns_grad = False
        return t

    def _save(self, *tensors: Tensor | None) -> None:
        """Record the versions of the tensors whose data this node's backward rule reads,
        so that backward can detect a change in place since. None entries are skipped; the
        node itself is recorded as None (no reference cycle)."""
        saved = []
        for t in tensors:
            if t is not None:
                saved.append((None if t is self else t, t._version[0]))
        self._saved = tuple(saved)

    # -- properties -----------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """The array. Assigning to it, also in place (``t.data += d``, ``t.data -= eta * g``),
        counts as a change of the tensor: its :attr:`version` goes up. Writing into the
        array directly (``t.data[...] = w``) bypasses the count; use :meth:`assign`."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        self._version[0] += 1

    @property
    def version(self) -> int:
        """How many times ``data`` was changed in place; a view (``x.T``, ``x[0]``,
        ``x.detach()``) shares the count of the tensor it views. ``backward`` refuses to use
        a tensor whose version changed since an operation saved it."""
        return self._version[0]

    def assign(self, values: ArrayLike) -> None:
        """``data[...] = values``: overwrite the entries in place (keeping the array and its
        memory layout, so views and optimisers stay attached); the version goes up."""
        self._data[...] = values
        self._version[0] += 1

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        """The length of the first axis, as for NumPy arrays."""
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d Tensor (it has no axis); use t.item()")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The entries along the first axis, as Tensors ``t[0], t[1], ...``."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d Tensor (it has no axis); use t.item()")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> bool:
        """The truth of a one-element tensor, as for NumPy arrays; ambiguous otherwise."""
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a Tensor of shape {self.data.shape} is ambiguous (it "
                f"needs exactly one element); use (t.data != 0).any() or .all()"
            )
        return bool(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item: tensor has shape {self.data.shape}, need exactly one element")
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing ``data`` (and its version count), outside the graph."""
        return Tensor(self)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        dt = "" if self.data.dtype == np.float64 else f", dtype={self.data.dtype}"
        return f"Tensor({body}{dt}{flag})"

    # -- elementwise arithmetic (broadcasting; gradients unbroadcast in _accumulate) -------

    def _binary(self, other: Any, op: str, fn: Callable) -> np.ndarray:
        try:
            return fn(self.data, other.data)
        except ValueError as e:
            raise ValueError(
                f"{op}: shapes {self.data.shape} and {other.data.shape} cannot be broadcast "
                f"together"
            ) from e

    def __add__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        a, b = self, other
        out = Tensor._make(self._binary(b, "add", np.add), (a, b), "+")
        if out.requires_grad:

            def _backward(g: np.ndarray) -> None:  # d(a+b)/da = d(a+b)/db = 1
                if a.requires_grad:
                    _accumulate(a, g)
                if b.requires_grad:
                    _accumulate(b, g)

            out._backward = _backward
        return out

    def __sub__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        a, b = self, other
        out = Tensor._make(self._binary(b, "sub", np.subtract), (a, b), "-")
        if out.requires_grad:

            def _backward(g: np.ndarray) -> None:  # d(a-b)/da = 1, d(a-b)/db = -1
                if a.requires_grad:
                    _accumulate(a, g)
                if b.requires_grad:
                    _accumulate(b, -g, fresh=True)

            out._backward = _backward
        return out

    def __mul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        a, b = self, other
        out = Tensor._make(self._binary(b, "mul", np.multiply), (a, b), "*")
        if out.requires_grad:
            out._save(b if a.requires_grad else None, a if b.requires_grad else None)

            def _backward(g: np.ndarray) -> None:  # d(ab)/da = b, d(ab)/db = a
                if a.requires_grad:
                    _accumulate(a, g * b.data, fresh=True)
                if b.requires_grad:
                    _accumulate(b, g * a.data, fresh=True)

            out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        a, b = self, other
        q = self._binary(b, "div", np.divide)
        out = Tensor._make(q, (a, b), "/")
        if out.requires_grad:
            out._save(b, out)  # reads b, and q = out.data

            def _backward(g: np.ndarray) -> None:  # d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b
                if a.requires_grad:
                    _accumulate(a, g / b.data, fresh=True)
                if b.requires_grad:
                    _accumulate(b, -g * q / b.data, fresh=True)

            out._backward = _backward
        return out

    def __pow__(self, other: Any) -> Tensor:
        """a^b elementwise. d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log a; at b = 0 the first
        is 0 and at a = 0 the second is 0 (the limits, as in HIPS autograd), so one zero in
        the data does not turn the gradient into NaN."""
        a = self
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            k = other
            out = Tensor._make(a.data**k, (a,), f"**{k}")
            if out.requires_grad:
                out._save(a)

                def _backward(g: np.ndarray) -> None:  # d(a^k)/da = k a^(k-1); 0 for k = 0
                    d = k * a.data ** (k - 1) if k != 0 else np.zeros_like(a.data)
                    _accumulate(a, g * d, fresh=True)

                out._backward = _backward
            return out
        b = self._lift(other)
        if b is NotImplemented:
            return b
        p = self._binary(b, "pow", np.power)
        out = Tensor._make(p, (a, b), "**")
        if out.requires_grad:
            out._save(a, b, out)  # reads a, b and p = out.data

            def _backward_t(g: np.ndarray) -> None:
                A, B = a.data, b.data
                if a.requires_grad:  # d(a^b)/da = b a^(b-1), written b a^1 where b = 0
                    _accumulate(a, g * B * A ** np.where(B, B - 1, 1), fresh=True)
                if b.requires_grad:  # d(a^b)/db = a^b log a, with log 1 = 0 where a = 0
                    _accumulate(b, g * p * np.log(np.where(A, A, 1)), fresh=True)

            out._backward = _backward_t
        return out

    def __neg__(self) -> Tensor:
        a = self
        out = Tensor._make(-a.data, (a,), "neg")
        if out.requires_grad:
            out._backward = lambda g: _accumulate(a, -g, fresh=True)
        return out

    def __radd__(self, other: Any) -> Tensor:
        return self + other

    def __rmul__(self, other: Any) -> Tensor:
        return self * other

    def __rsub__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        return other - self

    def __rtruediv__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        return other / self

    def __rpow__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        return other**self

    # -- matrix product -------------------------------------------------------------------

    def __matmul__(self, other: Any) -> Tensor:
        """Matrix product a @ b with NumPy's rules (1-D operands, batched leading axes)."""
        other = self._lift(other)
        if other is NotImplemented:
            return other
        a, b = self, other
        if a.data.ndim == 0 or b.data.ndim == 0:
            raise ValueError(
                f"matmul: operands must have at least one dimension, got shapes "
                f"{a.data.shape} and {b.data.shape} (use * for a scalar)"
            )
        try:
            data = np.matmul(a.data, b.data)
        except ValueError as e:
            raise ValueError(
                f"matmul: shapes {a.data.shape} and {b.data.shape} are not aligned "
                f"(the last axis of the first must equal the "
                f"{'only' if b.data.ndim == 1 else 'second-to-last'} axis of the second)"
            ) from e
        out = Tensor._make(data, (a, b), "@")
        if out.requires_grad:
            out._save(b if a.requires_grad else None, a if b.requires_grad else None)

            def _backward(g: np.ndarray) -> None:
                # C = A B:  dC/dA = G B^T,  dC/dB = A^T G   (batched over leading axes)
                A, B = a.data, b.data
                if A.ndim == 2 and B.ndim == 2:  # each gradient in its operand's layout
                    if a.requires_grad:
                        _accumulate(a, _matmul_like(g, B.T, A), fresh=True)
                    if b.requires_grad:
                        _accumulate(b, _matmul_like(A.T, g, B), fresh=True)
                    return
                A2 = A[None, :] if A.ndim == 1 else A
                B2 = B[:, None] if B.ndim == 1 else B
                G2 = g.reshape(np.matmul(A2, B2).shape) if (A.ndim == 1 or B.ndim == 1) else g
                if a.requires_grad:
                    ga = _unbroadcast(np.matmul(G2, np.swapaxes(B2, -1, -2)), A2.shape)
                    _accumulate(a, ga.reshape(A.shape), fresh=True)
                if b.requires_grad:
                    gb = _unbroadcast(np.matmul(np.swapaxes(A2, -1, -2), G2), B2.shape)
                    _accumulate(b, gb.reshape(B.shape), fresh=True)

            out._backward = _backward
        return out

    def __rmatmul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if other is NotImplemented:
            return other
        return other @ self

    # -- reductions -----------------------------------------------------------------------

    def _axes(self, axis: int | tuple[int, ...] | None, op: str) -> tuple[int, ...]:
        """The reduced axes as a sorted tuple of non-negative ints."""
        nd = self.data.ndim
        if axis is None:
            return tuple(range(nd))
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        for ax in axes:
            if not -nd <= ax < nd:
                raise np.exceptions.AxisError(
                    f"{op}: axis {ax} is out of bounds for a tensor of shape {self.data.shape}"
                )
        out = tuple(sorted(ax % nd for ax in axes))
        if len(set(out)) != len(out):
            raise ValueError(f"{op}: axis {axis} repeats an axis of shape {self.data.shape}")
        return out

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default); the gradient is g copied along it."""
        a = self
        axes = self._axes(axis, "sum")
        out = Tensor._make(a.data.sum(axis=axes, keepdims=keepdims), (a,), "sum")
        if out.requires_grad:
            kept = tuple(1 if i in axes else n for i, n in enumerate(a.data.shape))

            def _backward(g: np.ndarray) -> None:
                full = np.empty_like(a.data)
                full[...] = g.reshape(kept)  # dC/da = g, copied along the summed axes
                _accumulate(a, full, fresh=True)

            out._backward = _backward
        return out

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis``: the sum divided by the number n of entries; gradient g/n.

        The mean of no entries (n = 0) is NaN, as in NumPy (and in forward mode); the
        gradient then has the input's empty shape."""
        axes = self._axes(axis, "mean")
        n = 1
        for ax in axes:
            n *= self.data.shape[ax]
        return self.sum(axis=axes, keepdims=keepdims) * (1.0 / n if n else np.nan)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``. The gradient goes to the maximal entries; ties share it
        equally (so it is a valid subgradient and symmetric in the tied entries)."""
        a = self
        axes = self._axes(axis, "max")
        _check_nonempty(a.data.shape, axes, "max")
        m = a.data.max(axis=axes, keepdims=True)
        out = Tensor._make(m if keepdims else np.squeeze(m, axis=axes), (a,), "max")
        if out.requires_grad:
            out._save(a, out)  # reads a and m, which out.data views

            def _backward(g: np.ndarray) -> None:
                g = g.reshape(m.shape)  # keepdims shape
                mask = a.data == m
                share = mask / mask.sum(axis=axes, keepdims=True)
                _accumulate(a, g * share, fresh=True)

            out._backward = _backward
        return out

    # -- shape ----------------------------------------------------------------------------

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        """Same entries, new shape; the gradient is reshaped back."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self
        try:
            data = a.data.reshape(shape)
        except ValueError as e:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {a.data.shape} "
                f"({a.data.size} entries) into {shape}"
            ) from e
        out = Tensor._make(data, (a,), "reshape")
        if np.may_share_memory(data, a.data):
            out._version = a._version  # a view: a change to either is a change to both
        if out.requires_grad:
            out._backward = lambda g: _accumulate(a, g.reshape(a.data.shape))
        return out

    def transpose(self, *axes: int) -> Tensor:
        """Permute the axes (reverse them by default); the gradient is permuted back."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        a = self
        nd = a.data.ndim
        if not axes:
            perm = tuple(range(nd - 1, -1, -1))
        elif len(axes) == nd and all(-nd <= ax < nd for ax in axes):
            perm = tuple(ax % nd for ax in axes)
        else:
            perm = ()
        if sorted(perm) != list(range(nd)):
            raise ValueError(
                f"transpose: axes {axes} are not a permutation for shape {a.data.shape}"
            )
        out = Tensor._make(a.data.transpose(perm), (a,), "transpose")
        out._version = a._version  # a view
        if out.requires_grad:
            inverse = tuple(perm.index(i) for i in range(nd))
            out._backward = lambda g: _accumulate(a, g.transpose(inverse))
        return out

    @property
    def T(self) -> Tensor:
        """The transpose (all axes reversed), e.g. W.T in z = a W^T + b."""
        if self.data.ndim != 2:
            return self.transpose()
        a = self
        out = Tensor._make(a.data.T, (a,), "transpose")
        out._version = a._version  # a view
        if out.requires_grad:
            out._backward = lambda g: _accumulate(a, g.T)
        return out

    def __getitem__(self, index: Any) -> Tensor:
        """Basic (ints, slices, None, ...) and integer-array indexing.

        Gradient: zeros of the input's shape with g placed at the selected entries; with
        integer arrays an entry picked several times receives the sum (np.add.at).
        """
        index = _clean_index(index)
        a = self
        try:
            data = a.data[index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor of shape {a.data.shape})") from e
        out = Tensor._make(data, (a,), "getitem")
        if np.may_share_memory(data, a.data):
            out._version = a._version  # basic indexing gives a view
        if out.requires_grad:
            fancy = _is_fancy(index)

            def _backward(g: np.ndarray) -> None:
                full = np.zeros_like(a.data)
                if fancy:
                    np.add.at(full, index, g)
                else:
                    full[index] = g
                _accumulate(a, full, fresh=True)

            out._backward = _backward
        return out

    # -- elementary functions -------------------------------------------------------------

    def exp(self) -> Tensor:
        """e^a elementwise; derivative e^a."""
        a = self
        e = np.exp(a.data)
        out = Tensor._make(e, (a,), "exp")
        if out.requires_grad:
            out._save(out)  # reads e = out.data
            out._backward = lambda g: _accumulate(a, g * e, fresh=True)  # (e^a)' = e^a
        return out

    def log(self) -> Tensor:
        """Natural logarithm elementwise; derivative 1/a."""
        a = self
        out = Tensor._make(np.log(a.data), (a,), "log")
        if out.requires_grad:
            out._save(a)
            out._backward = lambda g: _accumulate(a, g / a.data, fresh=True)  # (log a)' = 1/a
        return out

    def tanh(self) -> Tensor:
        """tanh(a) elementwise; derivative 1 - tanh(a)^2."""
        a = self
        t = np.tanh(a.data)
        out = Tensor._make(t, (a,), "tanh")
        if out.requires_grad:
            out._save(out)  # reads t = out.data

            def _backward(g: np.ndarray) -> None:  # tanh' = 1 - tanh^2
                _accumulate(a, g * (1 - t * t), fresh=True)

            out._backward = _backward
        return out

    def sigmoid(self) -> Tensor:
        """The logistic function sigma(a) = 1/(1+e^{-a}), stable for large abs(a); derivative
        sigma(a) (1 - sigma(a))."""
        a = self
        s = _sigmoid(a.data)
        out = Tensor._make(s, (a,), "sigmoid")
        if out.requires_grad:
            out._save(out)  # reads s = out.data

            def _backward(g: np.ndarray) -> None:  # sigma' = sigma (1 - sigma)
                _accumulate(a, g * s * (1 - s), fresh=True)

            out._backward = _backward
        return out

    def relu(self) -> Tensor:
        """max(a, 0) elementwise; derivative 1 where a > 0, else 0 (also at the kink)."""
        a = self
        out = Tensor._make(np.maximum(a.data, 0), (a,), "relu")
        if out.requires_grad:
            out._save(a)

            def _backward(g: np.ndarray) -> None:  # relu'(z) = 1 if z > 0 else 0
                _accumulate(a, np.multiply(g, a.data > 0), fresh=True)

            out._backward = _backward
        return out

    def softplus(self) -> Tensor:
        """log(1 + e^a), computed stably as max(a, 0) + log1p(e^{-abs(a)}); derivative sigma(a)."""
        a = self
        x = a.data
        out = Tensor._make(np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), (a,), "softplus")
        if out.requires_grad:
            out._save(a)
            out._backward = lambda g: _accumulate(a, g * _sigmoid(x), fresh=True)
        return out

    def softmax(self, axis: int = -1) -> Tensor:
        """s_i = e^{a_i - m} / sum_j e^{a_j - m} with m = max_j a_j (stable).

        Backward: dC/da = s * (g - sum(g * s)) along ``axis``.
        """
        a = self
        _check_nonempty(a.data.shape, a._axes(axis, "softmax"), "softmax")
        e = np.exp(a.data - a.data.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        s = e
        out = Tensor._make(s, (a,), "softmax")
        if out.requires_grad:
            out._save(out)  # reads s = out.data

            def _backward(g: np.ndarray) -> None:
                _accumulate(a, s * (g - (g * s).sum(axis=axis, keepdims=True)), fresh=True)

            out._backward = _backward
        return out

    def log_softmax(self, axis: int = -1) -> Tensor:
        """a_i - m - log sum_j e^{a_j - m} (log-sum-exp, stable for any magnitude).

        Backward: dC/da = g - softmax(a) * sum(g) along ``axis``.
        """
        a = self
        _check_nonempty(a.data.shape, a._axes(axis, "log_softmax"), "log_softmax")
        shifted = a.data - a.data.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=axis, keepdims=True)
        out = Tensor._make(shifted - np.log(s), (a,), "log_softmax")
        if out.requires_grad:

            def _backward(g: np.ndarray) -> None:
                _accumulate(a, g - (e / s) * g.sum(axis=axis, keepdims=True), fresh=True)

            out._backward = _backward
        return out

    # -- reverse pass ---------------------------------------------------------------------

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Propagate adjoints from this tensor to every tensor it depends on.

        ``grad`` is the seed dC/d(self); it may be omitted only for a one-element tensor
        (then it is 1). Leaf gradients accumulate across calls; the graph is kept.
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward: this tensor (shape {self.data.shape}, op {self._op or 'leaf'!r}) "
                f"does not require grad; create inputs with Tensor(..., requires_grad=True) "
                f"and do not call backward inside no_grad()"
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward: the output has shape {self.data.shape}; a non-scalar output "
                    f"needs a seed gradient of that shape, e.g. t.backward(np.ones_like(t.data))"
                )
            seed = np.empty_like(self.data)
            seed.fill(1)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
            if seed.shape != self.data.shape:
                raise ValueError(
                    f"backward: seed gradient has shape {seed.shape}, output has shape "
                    f"{self.data.shape}"
                )
            seed = seed.astype(self.data.dtype)  # a copy: the user's array is never modified

        # Iterative depth-first topological sort (no recursion limit). Leaves are collected
        # separately; intermediate gradients are reset, as they are recomputed on every call.
        topo: list[Tensor] = []
        leaves: list[Tensor] = []
        visited = {self}
        stack = [self]
        while stack:
            node = stack[-1]
            for child in node._prev:
                if child.requires_grad and child not in visited:
                    visited.add(child)
                    stack.append(child)
                    break
            else:  # all children are placed: place the node
                stack.pop()
                node._owns_grad = False
                if node._prev:
                    node.grad = None
                    topo.append(node)
                else:
                    leaves.append(node)

        for node in topo:
            if node._saved:
                _check_versions(node)
        _accumulate(self, seed, fresh=True)
        if _state.debug:
            for node in reversed(topo):
                if node.grad is not None:
                    node._backward(node.grad)
                    _check_grads(node)
        else:
            for node in reversed(topo):
                if node.grad is not None:
                    node._backward(node.grad)
        # A leaf's gradient may be a view of another tensor's gradient (no copy was made on
        # the way). That is harmless unless it is read-only (np.broadcast_to) or shared with
        # another leaf's gradient (e.g. both operands of a + b): copy exactly those.
        owners: set[int] = set()  # the arrays that hold the memory of the loose gradients
        for node in leaves:
            g = node.grad
            if g is None or node._owns_grad:
                continue
            owner = id(g if g.base is None else g.base)
            if not g.flags.writeable or owner in owners:
                node.grad = g.copy()
                node._owns_grad = True
            else:
                owners.add(owner)


def _check_nonempty(shape: tuple[int, ...], axes: tuple[int, ...], op: str) -> None:
    """A maximum (and so softmax, which subtracts it) of no entries is undefined."""
    for ax in axes:
        if shape[ax] == 0:
            raise ValueError(
                f"{op}: axis {ax} of a tensor of shape {shape} is empty; the maximum of no "
                f"entries is undefined"
            )
    if not axes and 0 in shape:  # reachable only for a 0-d tensor, whose shape is ()
        raise ValueError(f"{op}: tensor of shape {shape} is empty")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """sigma(x) = 1/(1+e^{-x}) without overflow: uses e^{-|x|} <= 1 on both branches."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _clean_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        raise TypeError(
            "getitem: index with an int array, not a Tensor (Tensor data is floating point)"
        )
    if isinstance(index, tuple):
        return tuple(_clean_index(i) for i in index)
    if isinstance(index, list):  # [] selects nothing (NumPy would make it float)
        return np.asarray(index) if index else np.zeros(0, dtype=np.intp)
    return index


def _is_fancy(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) for i in items)
