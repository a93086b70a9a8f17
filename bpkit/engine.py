"""The engine of reverse mode: the graph protocol, the topological order and the sweep.

A graph node has ``inputs`` (the nodes it was computed from; empty for a leaf), ``op`` (its
operation), ``data`` and ``grad`` (its adjoint dC/d(data)). A :class:`bpkit.Value` also has
``partials``, the local derivatives d(node)/d(input), one per input; a :class:`bpkit.Tensor`
has the primitive ``op`` (see :mod:`bpkit.ops`), its keyword ``params``, its input arrays
``args``, the primitive's ``residual`` (or None) and ``recorded_at``, the value of the edit
clock :data:`edits` (the count of in-place changes of tensors) when it was recorded.

:func:`topological_order` lists the nodes so that each comes after its inputs;
:func:`backward` runs the reverse sweep: starting from the output's adjoint, each node in
reverse order passes its adjoint to its inputs (the chain rule), and a node used several
times receives the sum. This module also holds the per-thread modes :func:`no_grad` and
:func:`debug`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .ops import unbroadcast

__all__ = ["topological_order", "backward", "no_grad", "debug", "is_grad_enabled"]


class _Modes(threading.local):
    """Grad mode and debug mode, per thread (each thread starts with grad on, debug off)."""

    grad = True
    debug = False


modes = _Modes()
edits = [0]  # the edit clock: in-place changes of tensor data so far, in all threads


@contextmanager
def no_grad() -> Iterator[None]:
    """Within the block, operations build no graph (for evaluation and parameter updates).

    The mode is per thread: another thread's ``no_grad()`` does not affect this one."""
    old, modes.grad = modes.grad, False
    try:
        yield
    finally:
        modes.grad = old


@contextmanager
def debug() -> Iterator[None]:
    """Within the block, raise FloatingPointError at the first operation whose result
    (forward) or input gradient (backward) contains NaN or inf. Per thread, like no_grad."""
    old, modes.debug = modes.debug, True
    try:
        yield
    finally:
        modes.debug = old


def is_grad_enabled() -> bool:
    """False inside ``no_grad()`` (in this thread)."""
    return modes.grad


def topological_order(root: Any) -> list[Any]:
    """All nodes that ``root`` depends on, each after its inputs, ``root`` last (iterative
    depth-first search: no recursion limit)."""
    order: list[Any] = []
    seen = {root}
    stack = [(root, reversed(root.inputs))]
    while stack:
        node, rest = stack[-1]
        for k in rest:  # the next input not yet seen (the last input first) goes first
            if k not in seen:
                seen.add(k)
                stack.append((k, reversed(k.inputs)))
                break
        else:  # all inputs are placed: place the node
            stack.pop()
            order.append(node)
    return order


def describe(*arrays: np.ndarray) -> str:
    return ", ".join(f"{a.shape} {a.dtype}" for a in arrays)


def _check_versions(node: Any) -> None:
    """Raise if data that node's rules read was changed in place since it was recorded (a
    change after ``node.recorded_at`` on the edit clock)."""
    xs, reads, then = node.inputs, node.op.reads, node.recorded_at
    for i, x in enumerate(xs):
        if not x.requires_grad:
            continue
        for j in range(len(xs) + 1) if reads is None else reads[i]:
            t = node if j == -1 or j == len(xs) else xs[j]
            if t.changed_at > then:
                what = "the output" if t is node else f"input {xs.index(t)}"
                op = node.op.name
                raise RuntimeError(
                    f"backward: {what} of {op} (shape/dtype {describe(t.data)}"
                    f"{', label ' + repr(t.label) if t.label else ''}) was modified in place "
                    f"since {op} recorded it (it is at version {t.version} now), so the graph "
                    f"no longer matches the data; recompute the forward pass after changing "
                    f"it (e.g. after opt.step())"
                )


def _check_finite(node: Any, x: Any, gx: Any, g: Any) -> None:
    """Under ``debug()``: raise if a rule made NaN or inf in an input's gradient."""
    gx = np.asarray(gx.data if hasattr(gx, "bind") else gx)
    if not np.isfinite(gx).all():
        bad = "NaN" if np.isnan(gx).any() else "inf"
        g = np.asarray(g.data if hasattr(g, "bind") else g)
        raise FloatingPointError(
            f"{node.op.name}: backward pass produced {bad} in the gradient of input "
            f"{node.inputs.index(x)} "
            f"(shape/dtype {describe(x.data)}); output gradient was "
            f"{'finite' if np.isfinite(g).all() else 'already non-finite'}"
        )


def _add(adjoint: dict, owned: set, x: Any, gx: Any, g: Any, create_graph: bool) -> None:
    """adjoint[x] += gx for a gradient that is not an array of x's dtype (a Tensor, with
    ``create_graph``; a NumPy scalar; another dtype): summed back to x's shape and cast."""
    if not create_graph:
        gx = np.asarray(gx, dtype=x.dtype)
    if tuple(gx.shape) != x.shape:
        gx = unbroadcast(gx, x.shape)
    prev = adjoint.get(x)
    total = gx if prev is None else prev + gx
    adjoint[x] = total if create_graph else np.asarray(total)
    owned.discard(x)  # the engine does not add into it in place


def backward(
    root: Any, seed: Any, create_graph: bool = False, inputs: list[Any] | None = None
) -> list[Any] | None:
    """The reverse sweep from ``root`` with adjoint ``seed``: dC/d(node) for every node.

    For Values (a float seed) each edge adds ``partial * adjoint`` to its input's grad. For
    Tensors each input that requires a gradient gets its primitive's VJP, summed back to its
    shape and added to what it has; the engine adds in place only into an array a rule has
    just made. With ``create_graph`` the rules run on Tensors, so the adjoints are Tensors
    with a graph of their own (differentiable again).

    Without ``inputs`` the adjoints are stored: ``grad`` of every intermediate node is this
    sweep's adjoint and leaves add theirs to what they hold. With ``inputs`` nothing is
    stored and their adjoints are returned (None where C does not depend on one).
    """
    order = topological_order(root)
    if isinstance(seed, float):  # scalar engine: each edge carries its local partial
        for node in order:
            if node.inputs:
                node.grad = 0.0
        root.grad += seed
        for node in reversed(order):
            g = node.grad
            for x, partial in zip(node.inputs, node.partials):  # noqa: B905 (hot loop)
                x.grad += partial * g
        return None

    adjoint: dict[Any, Any] = {}
    owned: set[Any] = set()  # the nodes whose adjoint is an array a rule just made
    leaves = []
    now = edits[0]
    for node in order:
        if node.inputs:
            if node.recorded_at != now and node.op.reads_data:
                _check_versions(node)  # before any rule runs, nothing is stored on error
        elif node.requires_grad:
            leaves.append(node)
            if inputs is None and node.grad is not None:
                adjoint[node] = node.grad  # a leaf adds to what it holds
    check, store = modes.debug, inputs is None
    _add(adjoint, owned, root, seed, None, create_graph)  # with create_graph, a Tensor seed
    for node in reversed(order):
        xs = node.inputs
        if not xs:
            continue
        g = adjoint.get(node)
        if store:
            node.grad = g  # an intermediate node's adjoint is complete when it is reached
        if g is None:
            continue
        params = node.params
        if create_graph:
            out, args = node, xs
        else:
            out, args = node.data, node.args
            if node.residual is not None:
                params = {**params, "res": node.residual}
        for x, a, vjp in zip(xs, args, node.op.vjps):  # noqa: B905 (a bias may be absent)
            if not x.requires_grad:
                continue
            gx = vjp(g, out, *args, **params)
            if check:
                _check_finite(node, x, gx, g)
            if type(gx) is not np.ndarray or gx.dtype is not a.dtype:
                _add(adjoint, owned, x, gx, g, create_graph)  # Tensors, scalars, casts
                continue
            if gx.shape != a.shape:
                gx = np.asarray(unbroadcast(gx, a.shape))
            prev = adjoint.get(x)
            if prev is None:
                adjoint[x] = gx
                if gx is not g and gx.base is None:
                    owned.add(x)
            elif x in owned:
                prev += gx
            else:
                total = prev + gx  # NumPy gives a scalar, not an array, for 0-d operands
                adjoint[x] = total if type(total) is np.ndarray else np.asarray(total)
                owned.add(x)

    if not store:
        return [adjoint.get(x) for x in inputs]
    loose: set[int] = set()  # the memory of the leaves' gradients that no rule made
    for node in leaves:
        g = adjoint.get(node)
        if g is None:
            continue
        if not create_graph and node not in owned and g is not node.grad:
            # a view of another node's gradient: copy it if it is read-only or shared with
            # another leaf's gradient (both operands of a + b), else keep it
            base = id(g if g.base is None else g.base)
            if not g.flags.writeable or base in loose:
                g = g.copy()
            loose.add(base)
        node.grad = g
    return None


def graph_layers(order: list[Any]) -> list[list[Any]]:
    """The nodes of a topological ``order`` in layers (0 for a leaf, else 1 + the largest
    layer of its inputs) for drawing: each layer sorted by the mean position of its nodes'
    inputs (leaves first), then of their users (output first); ties keep the order."""
    layer: dict[int, int] = {}
    users: dict[int, list[Any]] = {id(n): [] for n in order}
    for n in order:
        layer[id(n)] = 1 + max((layer[id(x)] for x in n.inputs), default=-1)
        for x in n.inputs:
            users[id(x)].append(n)
    layers: list[list[Any]] = [[] for _ in range(1 + max(layer.values()))]
    for n in order:
        layers[layer[id(n)]].append(n)
    pos: dict[int, float] = {}  # a node's place in its layer, centred on 0

    def arrange(nodes: list[Any], neighbours: Any) -> None:
        rank = {id(n): i for i, n in enumerate(nodes)}

        def key(n: Any) -> tuple[float, int]:
            ys = [pos[id(m)] for m in neighbours(n) if id(m) in pos]
            return (sum(ys) / len(ys) if ys else float(rank[id(n)]), rank[id(n)])

        nodes.sort(key=key)
        for i, n in enumerate(nodes):
            pos[id(n)] = i - (len(nodes) - 1) / 2

    for nodes in layers:
        arrange(nodes, lambda n: n.inputs)
    for nodes in reversed(layers[:-1]):
        arrange(nodes, lambda n: users[id(n)])
    return layers
