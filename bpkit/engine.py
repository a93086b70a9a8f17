"""Reverse mode's engine: the graph protocol, the topological order and the backward sweep.

A node has ``inputs`` (empty for a leaf), ``op``, ``data`` and its adjoint ``grad`` =
dC/d(data); a :class:`bpkit.Value` adds ``partials`` (d node/d input), a
:class:`bpkit.Tensor` ``params``, a ``residual`` and
``recorded_at`` (the edit clock :data:`edits`, counting in-place changes, when recorded).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .ops import unbroadcast

__all__ = ["topological_order", "backward", "no_grad", "debug", "is_grad_enabled"]


class _Modes(threading.local):  # per thread: each starts with grad on, debug off
    grad = True
    debug = False


modes = _Modes()
edits = [0]  # the edit clock: in-place changes of tensor data so far, in all threads


@contextmanager
def no_grad() -> Iterator[None]:
    """Within the block, operations build no graph (in this thread)."""
    old, modes.grad = modes.grad, False
    try:
        yield
    finally:
        modes.grad = old


@contextmanager
def debug() -> Iterator[None]:
    """Within the block, raise FloatingPointError at the first operation whose result
    (forward) or input gradient (backward) contains NaN or inf; per thread."""
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
    """Raise if data read by a rule of ``node`` (``op.reads``) changed after ``recorded_at``."""
    xs, reads, then = node.inputs, node.op.reads, node.recorded_at
    for i, x in enumerate(xs):
        if not x.requires_grad:
            continue
        for j in range(len(xs) + 1) if reads is None else reads[i]:
            t = node if j == -1 or j == len(xs) else xs[j]
            if t.changed_at > then:
                what = "the output" if t is node else f"input {xs.index(t)}"
                op, label = node.op.name, f", label {t.label!r}" if t.label else ""
                raise RuntimeError(
                    f"backward: {what} of {op} (shape/dtype {describe(t.data)}{label}) was "
                    f"modified in place since {op} recorded it (it is at version {t.version} "
                    f"now); recompute the forward pass after changing it (e.g. opt.step())"
                )


def _check_finite(node: Any, x: Any, gx: Any, g: Any) -> None:
    gx = np.asarray(gx)  # also a Tensor's data
    if not np.isfinite(gx).all():
        bad = "NaN" if np.isnan(gx).any() else "inf"
        g = np.asarray(g)
        raise FloatingPointError(
            f"{node.op.name}: backward pass produced {bad} in the gradient of input "
            f"{node.inputs.index(x)} (shape/dtype {describe(x.data)}); output gradient was "
            f"{'finite' if np.isfinite(g).all() else 'already non-finite'}"
        )


def _add(adjoint: dict, owned: set, x: Any, gx: Any, create_graph: bool) -> None:
    """adjoint[x] += gx for a Tensor, a NumPy scalar or another dtype, cast and unbroadcast."""
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
    """The reverse sweep from ``root`` with adjoint ``seed``: each node, in reverse
    topological order, passes its adjoint to its inputs (the chain rule); uses add up. A
    Value's edge adds ``partial * adjoint`` (a float ``seed``); a Tensor input gets its
    primitive's VJP, summed back to its shape; ``create_graph`` runs the rules on Tensors.
    Without ``inputs``, each intermediate node's ``grad`` is set to its adjoint and leaves
    add theirs; with ``inputs``, their adjoints are returned (None if C does not depend on
    one) and nothing is stored."""
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
    _add(adjoint, owned, root, seed, create_graph)  # with create_graph, a Tensor seed
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
            out, args = node.data, [x.data for x in xs]
            if node.residual is not None:
                params = {**params, "res": node.residual}
        for x, a, vjp in zip(xs, args, node.op.vjps):  # noqa: B905 (a bias may be absent)
            if not x.requires_grad:
                continue
            gx = vjp(g, out, *args, **params)
            if check:
                _check_finite(node, x, gx, g)
            if type(gx) is not np.ndarray or gx.dtype is not a.dtype:
                _add(adjoint, owned, x, gx, create_graph)  # Tensors, scalars, casts
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
            # a view of another gradient: copy it if read-only or shared by two leaves (a + b)
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

        def mean(n: Any) -> float:  # of its placed neighbours, else its rank (a stable sort)
            ys = [pos[id(m)] for m in neighbours(n) if id(m) in pos]
            return sum(ys) / len(ys) if ys else float(rank[id(n)])

        nodes.sort(key=mean)
        for i, n in enumerate(nodes):
            pos[id(n)] = i - (len(nodes) - 1) / 2

    for nodes in layers:
        arrange(nodes, lambda n: n.inputs)
    for nodes in reversed(layers[:-1]):
        arrange(nodes, lambda n: users[id(n)])
    return layers
