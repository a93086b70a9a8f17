"""Array reverse mode on NumPy: :class:`Tensor`, the matrix view of backpropagation. Its
operators apply the primitives of :mod:`bpkit.ops`, recording graph nodes when an input
requires a gradient; :meth:`Tensor.backward` runs the sweep of :mod:`bpkit.engine`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType
from typing import Any, NoReturn

import numpy as np

from . import engine
from .engine import debug, is_grad_enabled, no_grad
from .ops import Operators, Primitive, add, div, matmul, mul, neg, power, sub

__all__ = ["Tensor", "no_grad", "debug", "is_grad_enabled"]

ArrayLike = Any

_OPERATOR_UFUNCS = {
    np.add: add, np.subtract: sub, np.multiply: mul, np.true_divide: div, np.power: power,
    np.matmul: matmul, np.negative: neg,
}
_HINTS = {"maximum": "t.relu() (for max(t, 0))", "negative": "-t"}


NO_PARAMS = MappingProxyType({})  # the params of a node whose primitive takes none


class Tensor(Operators):
    """An array ``data`` in a computation graph, with its adjoint ``grad`` = dC/d(data).

    ``data``: any array-like; a float32/float64 ndarray is used as is (not copied), integers
    and booleans become float64; numbers and boolean masks mixed in take the tensor's dtype.
    ``grad``: None until :meth:`backward` reaches the tensor, then an array of its shape and
    dtype (summed over broadcast axes and over uses). ``label`` names it in drawings. An
    operation's result records ``inputs``, ``op`` (the primitive), ``params`` and the edit
    clock ``recorded_at``."""

    __slots__ = ("_data", "_version", "grad", "requires_grad", "inputs", "op", "params",
                 "recorded_at", "residual", "label")

    def __init__(self, data: ArrayLike, requires_grad: bool = False, label: str = "") -> None:
        if isinstance(data, Tensor):
            version, data = data._shared_version(), data._data  # same memory, same count
        else:
            version = None
        if hasattr(data, "bind"):
            raise TypeError(
                "Tensor: cannot wrap a forward-mode Dual; this operation has no forward-mode "
                "rule (use reverse mode, bpkit.grad)"
            )
        arr = np.asarray(data)
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError(
                f"Tensor(requires_grad=True): gradients need floating data, got dtype "
                f"{arr.dtype} with shape {arr.shape}"
            )
        if arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"Tensor: dtype {arr.dtype} is not supported (need float32/float64); convert "
                f"with np.asarray(x, dtype=np.float32)"
            )
        if arr.dtype.kind not in "fbiu":
            raise TypeError(
                f"Tensor: cannot use data of type {type(data).__name__} and dtype {arr.dtype} "
                f"(need float32/float64)"
            )
        if arr.dtype.kind != "f":
            arr, version = arr.astype(np.float64), None  # integers and booleans
        self._data, self._version, self.grad, self.label = arr, version, None, label
        self.requires_grad = bool(requires_grad)
        self.inputs, self.op, self.params = (), None, NO_PARAMS  # a leaf
        self.recorded_at, self.residual = 0, None

    def bind(self, prim: Primitive, *args: Any, **params: Any) -> Any:
        """Apply the primitive ``prim`` to ``args`` (Tensors, arrays, numbers) and return the
        result, a graph node when grad mode is on and an input requires a gradient."""
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
        out._data, out.grad, out.label, out.op = data, None, "", prim
        out.params = params if params else NO_PARAMS  # one shared {} for most nodes
        base = data.base
        if base is not None and (base is arrays[0] or base is arrays[0].base):
            out._version = xs[0]._shared_version()  # a view: a change to either is to both
        else:
            out._version = None
        modes = engine.modes
        if modes.debug:
            _check_finite(prim, data, arrays)
        if needs_grad and modes.grad:
            out.requires_grad, out.inputs, out.residual = True, tuple(xs), res
            out.recorded_at = engine.edits[0]
        else:
            out.requires_grad, out.inputs, out.residual = False, (), None
        return out

    @property
    def data(self) -> np.ndarray:
        """The array. Assigning to it (also ``t.data -= eta * g``) raises :attr:`version`;
        writing into it (``t.data[...] = w``) does not: use :meth:`assign`."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = value
        engine.edits[0] += 1  # the edit clock; optimisers assign data every step
        v = self._version or self._shared_version()
        v[0] += 1
        v[1] = engine.edits[0]

    def _shared_version(self) -> list[int]:
        """The version cell [count, clock of the last change], made when first needed (a
        change, or a view or detached copy that must share it): most tensors never change."""
        if self._version is None:
            self._version = [0, 0]
        return self._version

    @property
    def changed_at(self) -> int:
        """When ``data`` last changed in place, on the engine's edit clock (0 if never)."""
        return self._version[1] if self._version else 0

    @property
    def version(self) -> int:
        """How often ``data`` changed in place (a count shared with views such as ``x.T``)."""
        return self._version[0] if self._version else 0

    def assign(self, values: ArrayLike) -> None:
        """``data[...] = values``, in place (views stay attached); the version goes up."""
        self._data[...] = values
        self.data = self._data  # counts the change

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
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d Tensor (it has no axis); use t.item()")
        return len(self._data)

    def __iter__(self) -> Iterator[Tensor]:  # the rows t[0], t[1], ...
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d Tensor (it has no axis); use t.item()")
        return (self[i] for i in range(len(self._data)))

    def item(self) -> float:
        """The value of a one-element tensor as a Python number (also ``float(t)``)."""
        if self._data.size != 1:
            raise ValueError(f"item: tensor has shape {self._data.shape}, need exactly one element")
        return self._data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a Tensor of shape {self._data.shape} is ambiguous (it "
                f"needs exactly one element); use (t.data != 0).any() or .all()"
            )
        return bool(self._data)

    def detach(self) -> Tensor:
        """A tensor sharing ``data`` (and its version count), outside the graph."""
        return Tensor(self)

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        dt = "" if self._data.dtype == np.float64 else f", dtype={self._data.dtype}"
        return f"Tensor({body}{dt}{flag})"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)``: the data (outside the graph)."""
        if copy:
            return np.array(self._data, dtype=dtype)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *args: Any, **kwargs: Any) -> Any:
        """``array + t`` and the like apply the operator; other NumPy functions are refused."""
        prim = _OPERATOR_UFUNCS.get(ufunc)
        if method == "__call__" and prim is not None and not kwargs:
            return self.bind(prim, *args)
        _refuse(ufunc.__name__)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        _refuse(func.__name__)

    def backward(self, grad: ArrayLike | None = None, create_graph: bool = False) -> None:
        """Propagate adjoints from this tensor, starting from ``grad`` = dC/d(self) (default 1,
        for one element only). The graph is kept and leaf gradients accumulate; with
        ``create_graph=True`` the gradients are Tensors, differentiable again."""
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
    """A constant operand as a leaf Tensor: Python numbers and boolean masks take the dtype of
    ``like`` (as in NumPy), floating arrays are used as is, integers become float64."""
    if type(x) in (float, int, bool):
        data = np.asarray(x, dtype=like.dtype)
    else:
        data = np.asarray(x)
        if data.dtype.kind == "b":
            data = data.astype(like.dtype)
        elif data.dtype.kind != "f":
            return Tensor(x)  # integers become float64, other data is refused
    c = Tensor.__new__(Tensor)  # without __init__'s checks: this runs for every constant
    c._data, c._version, c.grad, c.requires_grad = data, None, None, False
    c.inputs, c.op, c.params, c.residual, c.label = (), None, NO_PARAMS, None, ""
    c.recorded_at = 0
    return c


def _refuse(name: str) -> NoReturn:
    method = f"t.{name}()" if hasattr(Tensor, name) else "a Tensor method or operator"
    hint = _HINTS.get(name, method)
    raise TypeError(
        f"np.{name} got a bpkit Tensor: NumPy functions do not record the graph; use {hint} "
        f"instead, or np.{name}(t.data) for the value without a gradient"
    )


def _check_finite(prim: Primitive, out: np.ndarray, inputs: list[np.ndarray]) -> None:
    if not np.isfinite(out).all():
        bad = "NaN" if np.isnan(out).any() else "inf"
        src = "" if all(np.isfinite(a).all() for a in inputs) else " (an input was non-finite)"
        raise FloatingPointError(
            f"{prim.name}: forward pass produced {bad} for inputs of shape/dtype "
            f"{engine.describe(*inputs)}{src}"
        )
