"""Array reverse mode on NumPy: the matrix view of backpropagation.

A :class:`bpkit.Tensor` wraps a floating NumPy array ``data`` (float32 or float64). Its
operators and methods (``a @ W.T + b``, ``z.relu()``, ``x.sum(axis=0)``) apply the
primitives of :mod:`bpkit.ops`; when an input requires a gradient, the result records them
as a graph node: ``inputs``, the primitive ``op`` and its keyword ``params``.
:meth:`Tensor.backward` runs the sweep of :mod:`bpkit.engine`, which calls each primitive's
vector-Jacobian products.

Conventions:

- Broadcasting: a gradient is summed back over broadcast axes to the input's shape
  ("unbroadcast"), so ``x.grad.shape == x.shape`` and ``x.grad.dtype == x.dtype`` always.
- Fan-out: a tensor used twice receives both contributions; they are added.
- ``backward`` keeps the graph: it can run again, and leaf gradients accumulate (like
  PyTorch with ``retain_graph=True``); gradients of intermediate tensors are recomputed
  from scratch on every call. ``backward(create_graph=True)`` records the backward pass
  too: the gradients are then Tensors that can be differentiated again.
- ``max`` sends the gradient to the maximal entries; ties share it equally.
- Python numbers and boolean masks mixed with a float32 tensor stay float32; float32 with
  float64 tensors follows NumPy promotion (float64).
- ``with no_grad():`` builds no graph; ``with debug():`` raises FloatingPointError where a
  forward (or backward) pass first produces NaN or inf. Both are per thread.
- In-place changes: assigning to ``t.data`` (also ``t.data -= eta * g``) or calling
  ``t.assign(w)`` raises ``t.version``; a node whose rules read data records the versions
  of its inputs and output, and ``backward`` raises a RuntimeError naming the operation and
  the tensor if one that a rule reads has changed since, instead of mixing new data into the
  old graph.
- NumPy: ``np.asarray(t)`` is ``t.data``; ``float(t)`` works for one element; a NumPy
  function of a Tensor (``np.exp(t)``) is refused with the name of the Tensor method to use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import engine
from .engine import debug, is_grad_enabled, no_grad
from .ops import Operators, Primitive, add, div, matmul, mul, neg, power, sub

__all__ = ["Tensor", "no_grad", "debug", "is_grad_enabled"]

ArrayLike = Any

_OPERATOR_UFUNCS = {
    np.add: add, np.subtract: sub, np.multiply: mul, np.true_divide: div, np.power: power,
    np.matmul: matmul,
}
_HINTS = {"maximum": "t.relu() (for max(t, 0))", "negative": "-t", "absolute": None}


def _as_data(x: ArrayLike, like: np.ndarray | None = None) -> np.ndarray:
    """A constant operand as an array; Python numbers and boolean arrays (masks) take the dtype
    of ``like`` (as in NumPy); integer data become float64."""
    if type(x) in (float, int, bool) and like is not None:
        return np.asarray(x, dtype=like.dtype)
    arr = np.asarray(x)
    if arr.dtype.kind == "b" and like is not None:
        return arr.astype(like.dtype)
    if arr.dtype.kind != "f":
        if arr.dtype.kind not in "biu":
            raise TypeError(
                f"Tensor: cannot use data of type {type(x).__name__} and dtype {arr.dtype} "
                f"(need float32/float64)"
            )
        arr = arr.astype(np.float64)
    return arr


class Tensor(Operators):
    """An array in a computation graph, with its adjoint ``grad`` = dC/d(data).

    ``data`` is any array-like; a floating ndarray is used as is, not copied. Floating data
    keeps its dtype (float32 or float64; other float types are refused); integer and boolean
    data become float64, except that a tensor created with ``requires_grad=True`` must be
    given floating data (a TypeError names the dtype).
    ``grad`` is None until :meth:`backward` reaches the tensor, then an ndarray of the
    tensor's shape and dtype. ``label`` is an optional name for drawings. A result of an
    operation records ``inputs``, ``op`` (the primitive), ``params``, the input arrays ``args``
    and the edit clock ``recorded_at``.
    """

    __slots__ = ("_data", "_version", "grad", "requires_grad", "inputs", "op", "params",
                 "args", "recorded_at", "residual", "label")

    def __init__(self, data: ArrayLike, requires_grad: bool = False, label: str = "") -> None:
        if isinstance(data, Tensor):
            version, data = data._version, data._data  # same memory, same version counter
        else:
            version = [0, 0]
        if hasattr(data, "bind"):
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
            arr, version = _as_data(data), [0, 0]
        self._data: np.ndarray = arr
        self._version = version
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self.inputs: tuple[Tensor, ...] = ()
        self.op: Primitive | None = None
        self.params: dict[str, Any] = {}
        self.args: list[np.ndarray] | None = None
        self.recorded_at = 0
        self.residual: Any = None
        self.label = label

    # -- one operation: apply a primitive, record the node ---------------------------------

    def bind(self, prim: Primitive, *args: Any, **params: Any) -> Any:
        """Apply the primitive ``prim`` to the arguments (Tensors, arrays, numbers; numbers
        take this tensor's dtype) and return the result as a Tensor, recorded as a graph
        node when grad mode is on and an input requires a gradient."""
        xs, arrays, needs_grad = [], [], False
        for a in args:
            if type(a) is not Tensor and not isinstance(a, Tensor):
                if hasattr(a, "bind") and not isinstance(a, np.ndarray):
                    return a.bind(prim, *args, **params)  # forward mode carries the operation
                a = _constant(a, self._data)
            elif a.requires_grad:
                needs_grad = True
            xs.append(a)
            arrays.append(a._data)
        try:
            data = prim.fwd(*arrays, **params)
        except ValueError as e:
            prim.explain_broadcast(e, arrays)
            raise
        res = None
        if prim.residual:
            data, res = data
        if type(data) is not np.ndarray:
            data = np.asarray(data)
        out = Tensor.__new__(Tensor)
        out._data, out.grad, out.label, out.op, out.params = data, None, "", prim, params
        base = data.base
        if base is not None and (base is arrays[0] or base is arrays[0].base):
            out._version = xs[0]._version  # a view: a change to either is a change to both
        else:
            out._version = [0, 0]
        modes = engine.modes
        if modes.debug:
            _check_finite(prim, data, arrays)
        if needs_grad and modes.grad:
            out.requires_grad, out.inputs, out.args, out.residual = True, tuple(xs), arrays, res
            out.recorded_at = engine.edits[0]
        else:
            out.requires_grad, out.inputs, out.args, out.residual = False, (), None, None
        return out

    # -- the array ------------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """The array. Assigning to it, also in place (``t.data += d``, ``t.data -= eta * g``),
        counts as a change of the tensor: its :attr:`version` goes up. Writing into the
        array directly (``t.data[...] = w``) bypasses the count; use :meth:`assign`."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        engine.edits[0] += 1  # as _changed(), inline: optimisers assign data every step
        v = self._version
        v[0] += 1
        v[1] = engine.edits[0]

    @property
    def changed_at(self) -> int:
        """When ``data`` last changed in place, on the engine's edit clock (0 if never)."""
        return self._version[1]

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
        self._changed()

    def _changed(self) -> None:
        """Count an in-place change: the version goes up, stamped with the engine's edit
        clock (``backward`` compares it with the ``recorded_at`` of the nodes that read it)."""
        engine.edits[0] += 1
        v = self._version
        v[0] += 1
        v[1] = engine.edits[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        """The length of the first axis, as for NumPy arrays."""
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d Tensor (it has no axis); use t.item()")
        return len(self._data)

    def __iter__(self) -> Iterator[Tensor]:
        """The entries along the first axis, as Tensors ``t[0], t[1], ...``."""
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d Tensor (it has no axis); use t.item()")
        return (self[i] for i in range(len(self._data)))

    def __bool__(self) -> bool:
        """The truth of a one-element tensor, as for NumPy arrays; ambiguous otherwise."""
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a Tensor of shape {self._data.shape} is ambiguous (it "
                f"needs exactly one element); use (t.data != 0).any() or .all()"
            )
        return bool(self._data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self._data.size != 1:
            raise ValueError(f"item: tensor has shape {self._data.shape}, need exactly one element")
        return self._data.item()

    def __float__(self) -> float:
        """float(t) for a one-element tensor."""
        return float(self.item())

    def detach(self) -> Tensor:
        """A tensor sharing ``data`` (and its version count), outside the graph."""
        return Tensor(self)

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        dt = "" if self._data.dtype == np.float64 else f", dtype={self._data.dtype}"
        return f"Tensor({body}{dt}{flag})"

    # -- NumPy interop --------------------------------------------------------------------

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)``: the data (outside the graph)."""
        if copy:
            return np.array(self._data, dtype=dtype)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *args: Any, **kwargs: Any) -> Any:
        """``array + t`` and the like apply the operator; other NumPy ufuncs are refused
        with the name of the Tensor method to use."""
        prim = _OPERATOR_UFUNCS.get(ufunc)
        if method == "__call__" and prim is not None and not kwargs:
            return self.bind(prim, *args)
        if method == "__call__" and ufunc is np.negative and not kwargs:
            return self.bind(neg, *args)
        name = ufunc.__name__
        hint = _HINTS.get(name) or f"t.{name}()"
        if not hasattr(Tensor, name) and name not in _HINTS:
            hint = "a Tensor method or operator"
        raise TypeError(
            f"np.{name} got a bpkit Tensor: NumPy functions do not record the graph; use "
            f"{hint} instead, or np.{name}(t.data) for the value without a gradient"
        )

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        hint = f"t.{name}()" if hasattr(Tensor, name) else "a Tensor method or operator"
        raise TypeError(
            f"np.{name} got a bpkit Tensor: NumPy functions do not record the graph; use "
            f"{hint} instead, or np.{name}(t.data) for the value without a gradient"
        )

    # -- reverse pass ---------------------------------------------------------------------

    def backward(self, grad: ArrayLike | None = None, create_graph: bool = False) -> None:
        """Propagate adjoints from this tensor to every tensor it depends on.

        ``grad`` is the starting adjoint dC/d(self); it may be omitted only for a one-element
        tensor (then it is 1). Leaf gradients accumulate across calls; the graph is kept.
        With ``create_graph=True`` the backward pass is recorded too and the gradients are
        Tensors, which can be differentiated again (second derivatives).
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward: this tensor (shape {self._data.shape}, op {self.op or 'leaf'!r}) "
                f"does not require grad; create inputs with Tensor(..., requires_grad=True) "
                f"and do not call backward inside no_grad()"
            )
        if grad is None:
            if self._data.size != 1:
                raise ValueError(
                    f"backward: the output has shape {self._data.shape}; a non-scalar output "
                    f"needs a seed gradient of that shape, e.g. t.backward(np.ones_like(t.data))"
                )
            seed = np.empty_like(self._data)
            seed.fill(1)
        else:
            seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
            if seed.shape != self._data.shape:
                raise ValueError(
                    f"backward: seed gradient has shape {seed.shape}, output has shape "
                    f"{self._data.shape}"
                )
            seed = seed.astype(self._data.dtype)  # a copy: the user's array is never modified
        engine.backward(self, Tensor(seed) if create_graph else seed, create_graph)


def _constant(x: ArrayLike, like: np.ndarray) -> Tensor:
    """A constant operand (array or number) as a leaf Tensor that needs no gradient."""
    c = Tensor.__new__(Tensor)
    c._data, c._version, c.grad, c.requires_grad = _as_data(x, like), [0, 0], None, False
    c.inputs, c.op, c.params, c.args, c.residual, c.label = (), None, {}, None, None, ""
    c.recorded_at = 0
    return c


def _check_finite(prim: Primitive, out: np.ndarray, inputs: list[np.ndarray]) -> None:
    """Under ``debug()``: raise if a forward result contains NaN or inf."""
    if not np.isfinite(out).all():
        bad = "NaN" if np.isnan(out).any() else "inf"
        src = "" if all(np.isfinite(a).all() for a in inputs) else " (an input was non-finite)"
        raise FloatingPointError(
            f"{prim.name}: forward pass produced {bad} for inputs of shape/dtype "
            f"{engine.describe(*inputs)}{src}"
        )
