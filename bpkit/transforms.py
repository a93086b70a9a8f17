"""Derivatives of a function, as functions or arrays: :func:`grad` (reverse mode; it
composes), :func:`jvp` (forward mode), :func:`hvp` (H v without forming H), :func:`jacobian`,
:func:`hessian` (for small problems) and :func:`checkpoint` (recompute instead of store).
``bpkit.optim.jacobian`` is another function: a model's residual Jacobian, for
Levenberg-Marquardt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import engine
from .forward import Dual, push_tangent
from .ops import Primitive
from .tensor import Tensor

__all__ = ["grad", "jvp", "hvp", "push_tangents", "jacobian", "hessian", "checkpoint"]


def _array(x: Any) -> np.ndarray:
    data = np.asarray(x.data if isinstance(x, (Tensor, Dual)) else x)
    return data if data.dtype.kind == "f" else data.astype(np.float64)


def _direction(x: np.ndarray, v: Any, who: str) -> np.ndarray:
    t = np.asarray(v, dtype=x.dtype)
    if t.shape != x.shape:
        raise ValueError(f"{who}: direction v has shape {t.shape}, x has shape {x.shape}")
    return t


def _tensor(out: Any, who: str, scalar: bool = False) -> Tensor:
    """f's result, which must be one Tensor (with one element if ``scalar``)."""
    if not isinstance(out, Tensor):
        one = "a" if scalar else "one"
        raise TypeError(f"{who}: f must return {one} Tensor, got {type(out).__name__}")
    if scalar and out.size != 1:
        raise ValueError(f"{who}: f must return a scalar Tensor, got shape {out.shape}")
    return out


def grad(f: Callable[..., Any]) -> Callable[..., Any]:
    r"""The function x -> :math:`\partial C/\partial x` of a scalar ``C = f(x, *args)``.

    x (array-like or float; integers become float64) gets the gradient, an array of its
    shape (a float for a Python number); further arguments get none. Given a Tensor that
    requires a gradient, the result is a Tensor in its graph, so ``grad(grad(f))`` works.
    """

    def df(x: Any, *args: Any, **kwargs: Any) -> Any:
        nested = isinstance(x, Tensor) and x.requires_grad and engine.is_grad_enabled()
        if nested:
            xt = x.reshape(x.shape)  # a node of its own, inside x's graph
        else:
            xt = Tensor(_array(x).copy(), requires_grad=True)
        out = _tensor(f(xt, *args, **kwargs), "grad", scalar=True)
        g = None
        if out.requires_grad:
            seed = np.ones_like(out.data)
            (g,) = engine.backward(out, Tensor(seed) if nested else seed, nested, [xt])
        if nested:
            return g if g is not None else Tensor(np.zeros(x.shape, x.dtype))
        g = np.zeros_like(xt.data) if g is None else g
        return float(g) if isinstance(x, (int, float)) and not isinstance(x, bool) else g

    name = getattr(f, "__name__", "f")
    df.__name__ = f"grad_{name}"
    df.__doc__ = f"Gradient of {name} with respect to its first argument."
    return df


def _unwrap(x: Any) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


def jvp(f: Callable[..., Any], x: Any, v: Any) -> tuple[np.ndarray | float, np.ndarray | float]:
    r"""Forward mode: :math:`(f(x),\ J_f(x)\,v)`, the value and the directional derivative.
    ``x`` and ``v`` have the same shape; f takes a Dual, on which operators, Tensor methods
    and ``bpkit.functional`` work."""
    p = _array(x)
    out = f(Dual(p, _direction(p, v, "jvp")))
    if isinstance(out, Dual):
        return _unwrap(out.primal), _unwrap(out.tangent)
    value = out.data if isinstance(out, Tensor) else np.asarray(out)
    return _unwrap(value), _unwrap(np.zeros_like(value))


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    r""":math:`Hv`, :math:`H = \partial^2 C / \partial x^2`, for a scalar ``C = f(x)``.

    Forward over reverse (Pearlmutter 1994): the backward pass is recorded, then
    :func:`bpkit.transforms.push_tangents` carries dx = v through it; the gradient's
    tangent is H v. ``x`` may be a list of arrays (f then takes a list of Tensors; ``v``
    and the result are lists).
    """
    many = isinstance(x, (list, tuple))
    x0 = [_array(a) for a in (x if many else [x])]
    vs = list(v) if many else [v]
    if len(vs) != len(x0):
        raise ValueError(f"hvp: {len(vs)} directions v for {len(x0)} arrays x")
    dx = [_direction(a, d, "hvp") for a, d in zip(x0, vs, strict=True)]
    xt = [Tensor(a.copy(), requires_grad=True) for a in x0]
    old, engine.modes.grad = engine.modes.grad, True  # the backward pass must be recorded
    try:
        out = _tensor(f(xt if many else xt[0]), "hvp", scalar=True)
        gs = [None] * len(xt)
        if out.requires_grad:
            gs = engine.backward(out, Tensor(np.ones_like(out.data)), True, xt)
    finally:
        engine.modes.grad = old
    ts = push_tangents(gs, dict(zip(xt, dx, strict=True)))
    hv = [np.zeros_like(a) if t is None else np.array(t) for a, t in zip(x0, ts, strict=True)]
    return hv if many else hv[0]


def push_tangents(outputs: list[Any], tangent: dict[Any, Any]) -> list[Any]:
    """Forward mode on a recorded graph: d(node) = sum_i jvp_i(d input_i) in topological
    order, from ``tangent`` for some leaves (filled in as it goes); returns the outputs'
    tangents (None where none reaches). On a backward pass: Pearlmutter's R-pass."""
    for y in outputs:
        for node in [] if y is None else engine.topological_order(y):
            if node.inputs and node not in tangent:
                ts = [tangent.get(k) for k in node.inputs]
                if any(t is not None for t in ts):
                    primals = [k.data for k in node.inputs]
                    tangent[node] = push_tangent(node.op, node.data, primals, ts, node.params)
    return [None if y is None else tangent.get(y) for y in outputs]


def jacobian(f: Callable[..., Any], x: Any) -> np.ndarray:
    """J[i, j] = d f_i / d x_j at x, of shape f(x).shape + x.shape: one reverse sweep per
    output entry."""
    xt = Tensor(_array(x).copy(), requires_grad=True)
    out = _tensor(f(xt), "jacobian")
    J = np.zeros((out.size, xt.size), dtype=xt.dtype)
    if out.requires_grad:
        for i in range(out.size):
            seed = np.zeros(out.size, dtype=out.dtype)  # one row of the identity, not all
            seed[i] = 1
            (g,) = engine.backward(out, seed.reshape(out.shape), False, [xt])
            if g is not None:
                J[i] = np.asarray(g).reshape(-1)
    return J.reshape(out.shape + xt.shape)


def hessian(f: Callable[..., Any], x: Any) -> np.ndarray:
    """H[i, j] = d^2 C / dx_i dx_j of a scalar C = f(x), of shape x.shape * 2: one
    :func:`hvp` per input entry."""
    x0 = _array(x)
    H = np.zeros((x0.size, x0.size), dtype=x0.dtype)
    for j, e in enumerate(np.eye(x0.size, dtype=x0.dtype)):
        H[:, j] = hvp(f, x0, e.reshape(x0.shape)).reshape(-1)
    return H.reshape(x0.shape + x0.shape)


def checkpoint(f: Callable[..., Any], *inputs: Any,
               params: list[Tensor] | None = None) -> Any:
    """``y = f(*inputs)`` as one node that keeps its inputs and y, not f's graph: the
    backward pass runs f again (gradient checkpointing, Chen et al. 2016), giving the same
    gradients as ``f(*inputs)``. f takes Tensors and returns one Tensor.

    ``params``: the leaves f reads besides its inputs (a layer's W, b); if None they are
    found by recording f once, else a leaf missing from them is refused. Under ``no_grad``,
    with Dual inputs or when nothing requires a gradient, this is ``f(*inputs)``. Inputs
    changed in place before the backward pass are refused; calls may nest (each level runs
    f once more); ``backward(create_graph=True)`` works.
    """
    if any(isinstance(x, Dual) for x in inputs):
        return f(*inputs)  # forward mode stores nothing: nothing to save
    xs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    if not xs:
        raise TypeError("checkpoint: give f's inputs after f, as checkpoint(f, x)")
    if not engine.is_grad_enabled():
        return f(*xs)
    # chapter 15 prints this function's peak memory (tracemalloc): mind its allocations
    stand = [Tensor(x, requires_grad=x.requires_grad) for x in xs]  # same data, version
    if params is None:
        y = _tensor(f(*stand), "checkpoint")
        own = {id(t) for t in stand}
        leaves = tuple(n for n in engine.topological_order(y)
                       if not n.inputs and n.requires_grad and id(n) not in own)
    else:
        leaves = tuple(params)
        for p in leaves:
            if not (isinstance(p, Tensor) and p.requires_grad):
                what = "a Tensor without requires_grad" if isinstance(p, Tensor) else (
                    type(p).__name__)
                raise TypeError("checkpoint: params must be Tensors that require a "
                                f"gradient, got {what}")
        with engine.no_grad():
            y = _tensor(f(*stand), "checkpoint")
    every = [*xs, *leaves]
    need = [i for i, t in enumerate(every) if t.requires_grad]
    if not need:
        return y  # nothing to differentiate: a constant
    y_data, n, flags = y.data, len(xs), [x.requires_grad for x in xs]
    del y, stand  # f's graph, if one was recorded, is dropped here
    state: dict[str, Any] = {}

    def recompute(g: Any, args: tuple) -> list[Any]:
        """dC/d(inputs and params) from g = dC/dy, recording f once more."""
        old, engine.modes.grad = engine.modes.grad, True
        try:
            if isinstance(g, Tensor):  # create_graph: args are the input Tensors
                y = _tensor(f(*args[:n]), "checkpoint")
                return engine.backward(y, g, True, [*args[:n], *leaves])
            ins = [Tensor(a, requires_grad=r) for a, r in zip(args[:n], flags, strict=True)]
            y = _tensor(f(*ins), "checkpoint")
            known = {id(t) for t in (*ins, *leaves)}
            for node in engine.topological_order(y):
                if not node.inputs and node.requires_grad and id(node) not in known:
                    label = f", label {node.label!r}" if node.label else ""
                    raise RuntimeError(
                        f"checkpoint: f reads a Tensor that requires a gradient (shape "
                        f"{node.shape}{label}) that is neither an input nor in params; "
                        "add it to params, or leave params=None")
            return engine.backward(y, g, False, [*ins, *leaves])
        finally:
            engine.modes.grad = old

    def vjp(i: int) -> Callable[..., Any]:
        def vjp_i(g: Any, out: Any, *args: Any) -> Any:
            if state.get("g") is not g:  # the first input that this sweep asks for
                state["g"], state["grads"] = g, recompute(g, args)
            gx = state["grads"][i]
            if i == need[-1]:
                state.clear()  # hold nothing between backward passes
            if gx is None:  # C does not depend on this input
                zero = np.zeros(every[i].shape, every[i].dtype)
                return Tensor(zero) if isinstance(g, Tensor) else zero
            return gx
        return vjp_i

    def jvp(i: int) -> Callable[..., Any]:
        def jvp_i(dx: Any, out: Any, *primals: Any) -> Any:
            if i >= n:
                raise NotImplementedError("checkpoint: no forward mode through a parameter "
                                          "f closes over; pass it to f as an input instead")
            duals = [Dual(p, dx if j == i else None) for j, p in enumerate(primals[:n])]
            return f(*duals).tangent
        return jvp_i

    prim = Primitive("checkpoint", lambda *arrays: y_data,
                     tuple(vjp(i) for i in range(len(every))),
                     tuple(jvp(i) for i in range(len(every))))
    return xs[0].bind(prim, *every)
