"""Functions of functions: derivatives of a function, as functions or arrays.

- :func:`grad`: dC/dx of a scalar C = f(x) by reverse mode; it composes, so
  ``grad(grad(f))`` is the second derivative of a scalar function of a scalar;
- :func:`jvp`: (f(x), J v) by forward mode (dual numbers);
- :func:`hvp`: the Hessian-vector product H v of a scalar f, forward-over-reverse
  (Pearlmutter's trick): the tangents of the recorded backward pass, at the cost of a few
  gradients and without forming H;
- :func:`jacobian` and :func:`hessian`: the full matrices, one reverse pass per output and
  one hvp per input: for small problems;
- :func:`checkpoint`: y = f(x) whose graph is not kept but recomputed in the backward
  pass (gradient checkpointing: memory for time).

``bpkit.optim.jacobian(residual_fn, params)`` is a different function, for
Levenberg-Marquardt: the residuals' Jacobian with respect to a model's parameter Tensors,
flattened; :func:`jacobian` here differentiates a function of one array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import engine
from .forward import Dual, push_tangent
from .ops import Primitive
from .tensor import Tensor

__all__ = ["grad", "jvp", "hvp", "push_tangents", "jacobian", "hessian", "checkpoint"]


def _array(x: Any, who: str) -> np.ndarray:
    data = np.asarray(x.data if isinstance(x, (Tensor, Dual)) else x)
    return data if data.dtype.kind == "f" else data.astype(np.float64)


def _scalar_output(out: Any, who: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(
            f"{who}: f must return a Tensor computed from its first argument, got "
            f"{type(out).__name__}"
        )
    if out.size != 1:
        raise ValueError(
            f"{who}: f must return a scalar (one-element) Tensor, got shape {out.shape}"
        )
    return out


def _gradient(f: Callable[..., Any], x: Any, args: tuple, kwargs: dict,
              create_graph: bool, who: str) -> tuple[Tensor, Any]:
    """(the input node, dC/dx) for C = f(x, *args); a Tensor x that requires a gradient is
    differentiated through (grad of grad), anything else becomes a new leaf."""
    if isinstance(x, Tensor) and x.requires_grad and engine.is_grad_enabled():
        xt, create_graph = x.reshape(x.shape), True  # a node of its own, inside x's graph
    else:
        xt = Tensor(_array(x, who).copy(), requires_grad=True)
    out = _scalar_output(f(xt, *args, **kwargs), who)
    if not out.requires_grad:
        return xt, None
    seed = np.ones_like(out.data)
    (g,) = engine.backward(out, Tensor(seed) if create_graph else seed, create_graph, [xt])
    return xt, g


def grad(f: Callable[..., Any]) -> Callable[..., Any]:
    r"""Return a function computing :math:`\partial C/\partial x` for a scalar-valued
    ``C = f(x, *args)``.

    The returned function wraps x (an array-like or float; integers become float64) in a
    Tensor that requires a gradient, runs f, runs the backward sweep and returns x's
    gradient: an ndarray of x's shape, or a float if x was a Python number. Further
    arguments are passed through unchanged and get no gradient. Given a Tensor that
    requires a gradient (as inside another ``grad``), it returns a Tensor recorded in that
    graph, so ``grad(grad(f))`` gives second derivatives.
    """

    def df(x: Any, *args: Any, **kwargs: Any) -> Any:
        xt, g = _gradient(f, x, args, kwargs, False, "grad")
        if isinstance(x, Tensor) and x.requires_grad and engine.is_grad_enabled():
            return g if g is not None else Tensor(np.zeros(x.shape, x.dtype))
        g = np.zeros_like(xt.data) if g is None else g
        return float(g) if isinstance(x, (int, float)) and not isinstance(x, bool) else g

    df.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    df.__doc__ = f"Gradient of {getattr(f, '__name__', 'f')} with respect to its first argument."
    return df


def _unwrap(x: Any) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


def jvp(f: Callable[..., Any], x: Any, v: Any) -> tuple[np.ndarray | float, np.ndarray | float]:
    r"""Forward mode: return :math:`(f(x),\ J_f(x)\,v)`, the value and the directional
    derivative.

    ``x`` and ``v`` are array-likes of the same shape (Python floats give float results).
    ``f`` takes the dual number and may use operators, Tensor-style methods and
    ``bpkit.functional``.
    """
    p = _array(x, "jvp")
    t = np.asarray(v, dtype=p.dtype)
    if t.shape != p.shape:
        raise ValueError(f"jvp: direction v has shape {t.shape}, x has shape {p.shape}")
    out = f(Dual(p, t))
    if isinstance(out, Dual):
        return _unwrap(out.primal), _unwrap(out.tangent)
    value = out.data if isinstance(out, Tensor) else np.asarray(out)
    return _unwrap(value), _unwrap(np.zeros_like(value))


def hvp(f: Callable[..., Any], x: Any, v: Any) -> Any:
    r"""The Hessian-vector product :math:`Hv` of a scalar ``C = f(x)``,
    :math:`H = \partial^2 C / \partial x^2`.

    Forward over reverse (Pearlmutter 1994): the backward pass is recorded
    (``create_graph``), then the tangents of its nodes are carried forward from dx = v with
    each primitive's JVP; the tangent of the gradient is H v. ``x`` may be a list of arrays
    (a model's parameters, no flat vector to slice): f then takes a list of Tensors, and
    ``v`` and the result are lists of arrays of the same shapes.
    """
    many = isinstance(x, (list, tuple))
    x0 = [_array(a, "hvp") for a in (x if many else [x])]
    dx = [np.asarray(d, dtype=a.dtype) for a, d in zip(x0, v if many else [v])]  # noqa: B905
    if len(dx) != len(x0) or any(d.shape != a.shape for a, d in zip(x0, dx)):  # noqa: B905
        shapes = [d.shape for d in dx] if many else dx[0].shape
        raise ValueError(f"hvp: direction v has shape {shapes}, x has shape "
                         f"{[a.shape for a in x0] if many else x0[0].shape}")
    xt = [Tensor(a.copy(), requires_grad=True) for a in x0]
    old, engine.modes.grad = engine.modes.grad, True  # the backward pass must be recorded
    try:
        out = _scalar_output(f(xt if many else xt[0]), "hvp")
        gs = [None] * len(xt)
        if out.requires_grad:
            gs = engine.backward(out, Tensor(np.ones_like(out.data)), True, xt)
    finally:
        engine.modes.grad = old
    ts = push_tangents(gs, dict(zip(xt, dx)))  # noqa: B905
    hv = [np.zeros_like(a) if t is None else np.array(t) for a, t in zip(x0, ts)]  # noqa: B905
    return hv if many else hv[0]


def push_tangents(outputs: list[Any], tangent: dict[Any, Any]) -> list[Any]:
    """Forward mode on a recorded graph: the tangents of ``outputs`` (None where no input
    with a tangent reaches one), given ``tangent`` for some of the graph's leaves. Each node
    gets d(out) = sum_i jvp_i(dx_i) (its primitive's JVPs) in topological order; ``tangent``
    is filled in as it goes. Applied to a recorded backward pass, this is the R-pass of
    Pearlmutter (1994) that :func:`bpkit.hvp` uses."""
    for y in outputs:
        for node in [] if y is None else engine.topological_order(y):
            if node.inputs and node not in tangent:
                ts = [tangent.get(k) for k in node.inputs]
                if any(t is not None for t in ts):
                    primals = [k.data for k in node.inputs]
                    tangent[node] = push_tangent(node.op, node.data, primals, ts, node.params)
    return [None if y is None else tangent.get(y) for y in outputs]


def jacobian(f: Callable[..., Any], x: Any) -> np.ndarray:
    """The Jacobian J[i, j] = d f_i / d x_j of f at x, shape f(x).shape + x.shape: one
    reverse sweep of the recorded graph per output entry (for small problems)."""
    xt = Tensor(_array(x, "jacobian").copy(), requires_grad=True)
    out = f(xt)
    if not isinstance(out, Tensor):
        raise TypeError(f"jacobian: f must return a Tensor, got {type(out).__name__}")
    J = np.zeros((out.size, xt.size), dtype=xt.dtype)
    if out.requires_grad:
        for i in range(out.size):
            seed = np.zeros(out.size, dtype=out.dtype)
            seed[i] = 1
            (g,) = engine.backward(out, seed.reshape(out.shape), False, [xt])
            if g is not None:
                J[i] = np.asarray(g).reshape(-1)
    return J.reshape(out.shape + xt.shape)


def hessian(f: Callable[..., Any], x: Any) -> np.ndarray:
    """The Hessian H[i, j] = d^2 C / dx_i dx_j of a scalar C = f(x), shape x.shape * 2: one
    :func:`hvp` per input entry (for small problems)."""
    x0 = _array(x, "hessian")
    H = np.zeros((x0.size, x0.size), dtype=x0.dtype)
    for j in range(x0.size):
        e = np.zeros(x0.size, dtype=x0.dtype)
        e[j] = 1
        H[:, j] = hvp(f, x0, e.reshape(x0.shape)).reshape(-1)
    return H.reshape(x0.shape + x0.shape)


def _one_tensor(y: Any) -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(
            f"checkpoint: f must return one Tensor, got {type(y).__name__}; to keep several "
            f"results, return them stacked in one Tensor or checkpoint each separately"
        )
    return y


def checkpoint(f: Callable[..., Any], *inputs: Any,
               params: list[Tensor] | None = None) -> Any:
    """``y = f(*inputs)`` without keeping f's graph: f runs again in the backward pass.

    Gradient checkpointing (Chen et al. 2016; Griewank 1992): the result is one graph node
    whose inputs are ``inputs`` and the leaves that f reads besides them (``params``, such
    as a layer's W and b). It keeps its inputs and y, not the z and a inside f. When the
    backward sweep reaches it with dC/dy, it runs f again on the same data with the graph
    recorded and sweeps that graph, giving dC/d(inputs) and dC/dW: operation for
    operation the gradients of ``f(*inputs)`` itself.

    ``f`` takes Tensors and returns one Tensor. ``params`` lists the leaves (Tensors that
    require a gradient) that f reads without receiving them as arguments. If None they
    are found by recording f's graph once, which is dropped as soon as f returns (only y
    is kept); if given, f runs under ``no_grad``, and the recomputation refuses a leaf
    that is missing from them. Inside ``no_grad()``, in forward mode (Dual inputs), or
    when nothing requires a gradient, the result is just ``f(*inputs)``. Calls may nest
    (f may call ``checkpoint``); each level then runs its f once more. The node records
    the versions of its inputs and parameters, so a backward pass after one of them was
    changed in place is refused (f would compute something else). With
    ``backward(create_graph=True)`` f is recomputed on the input Tensors themselves, so
    the gradients can be differentiated again.
    """
    if any(isinstance(x, Dual) for x in inputs):
        return f(*inputs)  # forward mode stores nothing: nothing to save
    xs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    if not xs:
        raise TypeError("checkpoint: give f's inputs after f, as checkpoint(f, x)")
    if not engine.is_grad_enabled():
        return f(*xs)
    stand = [Tensor(x, requires_grad=x.requires_grad) for x in xs]  # same data, version
    if params is None:
        y = _one_tensor(f(*stand))
        own = {id(t) for t in stand}
        leaves = tuple(n for n in engine.topological_order(y)
                       if not n.inputs and n.requires_grad and id(n) not in own)
    else:
        leaves = tuple(params)
        for p in leaves:
            if not (isinstance(p, Tensor) and p.requires_grad):
                what = "a Tensor without requires_grad" if isinstance(p, Tensor) else (
                    type(p).__name__)
                raise TypeError(
                    f"checkpoint: params must be Tensors that require a gradient, got {what}"
                )
        with engine.no_grad():
            y = _one_tensor(f(*stand))
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
                y = _one_tensor(f(*args[:n]))
                return engine.backward(y, g, True, [*args[:n], *leaves])
            ins = [Tensor(a, requires_grad=r) for a, r in zip(args[:n], flags, strict=True)]
            y = _one_tensor(f(*ins))
            known = {id(t) for t in (*ins, *leaves)}
            for node in engine.topological_order(y):
                if not node.inputs and node.requires_grad and id(node) not in known:
                    label = f", label {node.label!r}" if node.label else ""
                    raise RuntimeError(
                        f"checkpoint: f reads a Tensor that requires a gradient (shape "
                        f"{node.shape}{label}) that is neither an input nor in params; "
                        f"add it to params, or leave params=None to have it found"
                    )
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
                raise NotImplementedError(
                    "checkpoint: forward mode through a parameter that f closes over is "
                    "not available; pass it to f as an input instead"
                )
            duals = [Dual(p, dx if j == i else None) for j, p in enumerate(primals[:n])]
            return f(*duals).tangent
        return jvp_i

    prim = Primitive("checkpoint", lambda *arrays: y_data,
                     tuple(vjp(i) for i in range(len(every))),
                     tuple(jvp(i) for i in range(len(every))))
    return xs[0].bind(prim, *every)
