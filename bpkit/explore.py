"""Explorables: figures the reader drives, in the built book and in Jupyter.

Each function returns an :class:`Explorable`, an object that Jupyter and the book show as
HTML: a figure, its controls, its data as JSON and its script, all inline (the script is
read from ``bpkit/explorables/*.js``, plain JavaScript vendored with the package; nothing is
fetched from anywhere). The HTML is a deterministic function of the arguments: fixed
element ids, numbers rounded to a few significant digits.

- :func:`backprop_explorer` steps through the forward and the backward pass of a
  :class:`bpkit.Value` graph, node by node, in a topological order or in any other order
  (a wrong one shows how the gradient goes wrong). Every value is bpkit's ``data``, every
  local derivative bpkit's ``partials``; the adjoints are those partials combined by the
  sweep rule of :func:`bpkit.engine.backward`, edge by edge, in the order given.
- :func:`descent_explorer` draws gradient descent on a quadratic error surface: the reader
  drags the start and sets the learning rate; past ``2 / lambda_max`` the path diverges.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import numpy as np

from .engine import topological_order

__all__ = ["Explorable", "backprop_explorer", "backward_steps", "descent_explorer"]

DIGITS = 4  # significant digits of every number shown

# Layout of a graph, in SVG pixels (drawn at most 1:1 in the text column): one row per
# layer, inputs at the top; MARGIN leaves room for edges that bow around boxes.
BOX_W, BOX_H, COL_W, ROW_H, MARGIN, TOP = 120, 60, 150, 104, 90, 14


def fmt(x: float, digits: int = DIGITS) -> str:
    """``x`` to ``digits`` significant digits, as every explorable shows numbers (no -0)."""
    s = f"{x:.{digits}g}"
    return "0" if s in ("-0", "-0.0") else s


class Explorable:
    """An interactive figure: ``data`` (the JSON the script reads) and its HTML."""

    def __init__(self, kind: str, element_id: str, data: dict, caption: str, label: str,
                 title: str = "An interactive figure"):
        if not element_id.replace("-", "").isalnum():
            raise ValueError(f"element_id must be letters, digits and '-', got {element_id!r}")
        self.kind, self.element_id, self.data = kind, element_id, data
        self.caption, self.label, self.title = caption, label, title

    def __repr__(self) -> str:
        return f"Explorable({self.kind!r}, element_id={self.element_id!r})"

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        """What a format without scripts shows instead (the PDF edition)."""
        return (f"**{self.title}** is an interactive figure: use it in the HTML edition of "
                f"the book or in Jupyter.")

    def html(self) -> str:
        """The figure: a container, its caption, the data as JSON and the script inline."""
        script = files("bpkit").joinpath("explorables", f"{self.kind}.js").read_text("utf-8")
        payload = json.dumps(self.data, separators=(",", ":"), ensure_ascii=True)
        payload = payload.replace("<", "\\u003c").replace(">", "\\u003e")
        eid = self.element_id
        return (
            f'<figure class="bpkit-explorable tex2jax_ignore mathjax_ignore" id="{eid}" '
            f'role="group" aria-label="{html.escape(self.label)}" '
            f'style="background:#fff;color:#1a1a1a;margin:1em 0;max-width:100%">\n'
            f'<div class="bpx-root" id="{eid}-root"></div>\n'
            f'<figcaption style="font-size:0.9em;margin-top:0.5em">{self.caption}'
            f"</figcaption>\n"
            f'<script type="application/json" id="{eid}-data">{payload}</script>\n'
            f"<script>\n{script.strip()}\n"
            f'bpkitExplore.{self.kind}("{eid}");\n</script>\n</figure>'
        )


# -- backprop, step by step ----------------------------------------------------------------


def _layers(order: list[Any]) -> list[list[Any]]:
    """Nodes by layer (0 for a leaf, else 1 + the largest layer of its inputs), each layer
    ordered to reduce crossings: by the mean position of the inputs (left to right), then of
    the consumers (right to left), ties keeping the previous order."""
    layer: dict[int, int] = {}
    for node in order:
        layer[id(node)] = 1 + max((layer[id(x)] for x in node.inputs), default=-1)
    layers: list[list[Any]] = [[] for _ in range(1 + max(layer.values()))]
    for node in order:
        layers[layer[id(node)]].append(node)
    users: dict[int, list[Any]] = {id(n): [] for n in order}
    for n in order:
        for x in n.inputs:
            users[id(x)].append(n)
    pos: dict[int, float] = {}

    def arrange(nodes: list[Any], neighbours: Any) -> None:
        rank = {id(n): i for i, n in enumerate(nodes)}

        def key(n: Any) -> tuple[float, int]:
            ys = [pos[id(m)] for m in neighbours(n) if id(m) in pos]
            return (sum(ys) / len(ys) if ys else float(rank[id(n)]), rank[id(n)])

        nodes.sort(key=key)
        for i, n in enumerate(nodes):
            pos[id(n)] = i - (len(nodes) - 1) / 2

    for k, nodes in enumerate(layers):
        arrange(nodes, (lambda n: n.inputs) if k else (lambda n: ()))
    for nodes in reversed(layers[:-1]):
        arrange(nodes, lambda n: users[id(n)])
    return layers


def _formula(op: str, names: Sequence[str]) -> str:
    if op in ("+", "-", "*", "/") and len(names) == 2:
        return f" {'×' if op == '*' else op} ".join(names)
    if op.startswith("**") and len(names) == 1:
        return f"{names[0]}^{op[2:]}"
    return f"{op}({', '.join(names)})"


def backward_steps(root: Any, order: Sequence[Any] | None = None) -> list[dict]:
    """The reverse sweep from ``root`` (starting adjoint 1), one step per node with inputs,
    in the reverse of ``order`` (by default :func:`bpkit.engine.topological_order`).

    Each step is ``{"node": n, "adjoint": a, "pushes": [(x, term, total), ...]}``: node n
    passes on its adjoint a as it stands at that moment; each input x receives
    ``term = partial * a`` and then holds ``total``. In a topological order the totals at
    the end are the adjoints that ``root.backward()`` computes (bit for bit: the same
    products and sums in the same order); in another order they can be wrong.
    """
    order = topological_order(root) if order is None else list(order)
    adjoint = {id(n): 0.0 for n in order}
    adjoint[id(root)] += 1.0
    steps = []
    for node in reversed(order):
        if not node.inputs:
            continue
        a = adjoint[id(node)]
        pushes = []
        for x, partial in zip(node.inputs, node.partials, strict=True):
            term = partial * a
            adjoint[id(x)] += term
            pushes.append((x, term, adjoint[id(x)]))
        steps.append({"node": node, "adjoint": a, "pushes": pushes})
    return steps


def _example(root: Any, order: Sequence[Any] | None, name: str, title: str,
             note: str) -> dict:
    """One example's JSON: nodes with layout, edges, the forward and the backward steps."""
    forward = topological_order(root)
    layers = _layers(forward)
    index = {id(n): i for i, n in enumerate(forward)}
    names = []
    for i, n in enumerate(forward):
        label = getattr(n, "label", "") or ""
        names.append(label or f"n{i}")
    if len(set(names)) < len(names):
        raise ValueError(f"backprop_explorer: node labels must be unique, got {names}")
    width = max(len(nodes) for nodes in layers)
    w_px = 2 * MARGIN + width * COL_W
    xy: dict[int, tuple[int, int]] = {}
    for k, nodes in enumerate(layers):  # inputs at the top, the output at the bottom
        for i, n in enumerate(nodes):
            x = w_px // 2 + round((i - (len(nodes) - 1) / 2) * COL_W)
            xy[id(n)] = (x, TOP + BOX_H // 2 + k * ROW_H)
    nodes = []
    edges = []
    for i, n in enumerate(forward):
        ins = [names[index[id(x)]] for x in n.inputs]
        op = str(n.op or "")
        nodes.append({
            "name": names[i], "op": op, "value": fmt(n.data),
            "x": xy[id(n)][0], "y": xy[id(n)][1],
            "formula": _formula(op, ins) if n.inputs else "",
            "numbers": _formula(op, [fmt(x.data) for x in n.inputs]) if n.inputs else "",
        })
        seen: dict[int, int] = {}
        for x, partial in zip(n.inputs, n.partials, strict=True):
            rep = seen.get(id(x), 0)
            seen[id(x)] = rep + 1
            edges.append({"from": index[id(x)], "to": i, "partial": fmt(partial), "rep": rep})
    steps = backward_steps(root, order)
    pushed_at = {id(s["node"]): k for k, s in enumerate(steps)}
    arrivals: dict[int, list[int]] = {}
    for k, s in enumerate(steps):
        for x, _, _ in s["pushes"]:
            arrivals.setdefault(id(x), []).append(k)
    backward = []
    edge_of: dict[tuple[int, int, int], int] = {}
    for j, edge in enumerate(edges):
        edge_of[(edge["from"], edge["to"], edge["rep"])] = j
    for k, s in enumerate(steps):
        node = s["node"]
        late_senders = sorted({names[index[id(steps[m]["node"])]]
                               for m in arrivals.get(id(node), []) if m > k})
        pushes = []
        seen = {}
        for (x, term, total), partial in zip(s["pushes"], node.partials, strict=True):
            rep = seen.get(id(x), 0)
            seen[id(x)] = rep + 1
            done = pushed_at.get(id(x))
            pushes.append({
                "to": index[id(x)], "edge": edge_of[(index[id(x)], index[id(node)], rep)],
                "partial": fmt(partial), "term": fmt(term), "total": fmt(total),
                "late": done is not None and done < k,
            })
        backward.append({"node": index[id(node)], "adjoint": fmt(s["adjoint"]),
                         "incomplete": late_senders, "pushes": pushes})
    final = {}
    for s in steps:
        for x, _, total in s["pushes"]:
            final[names[index[id(x)]]] = fmt(total)
    final[names[index[id(root)]]] = fmt(1.0)
    right = {}
    for s in backward_steps(root):
        for x, _, total in s["pushes"]:
            right[names[index[id(x)]]] = fmt(total)
    right[names[index[id(root)]]] = fmt(1.0)
    leaves = [names[i] for i, n in enumerate(forward) if not n.inputs]
    return {
        "name": name, "title": title, "note": note, "nodes": nodes, "edges": edges,
        "forward": [i for i, n in enumerate(forward) if n.inputs],
        "backward": backward, "final": final, "right": right, "leaves": leaves,
        "width": w_px, "height": 2 * TOP + BOX_H + (len(layers) - 1) * ROW_H,
        "box": [BOX_W, BOX_H], "row": ROW_H,
    }


def backprop_explorer(
    examples: Sequence[tuple[str, Any, Sequence[Any] | None, str]],
    element_id: str = "bpkit-backprop",
    caption: str = "",
) -> Explorable:
    """Backprop, step by step: the forward pass node by node, then the backward pass.

    ``examples`` holds ``(title, root, order, note)`` for each selectable example: ``root``
    is the output :class:`bpkit.Value` of a graph with uniquely labelled nodes, ``order``
    the order the sweep consumes from its end (None for
    :func:`bpkit.engine.topological_order`; a list of the graph's nodes for another order)
    and ``note`` one sentence shown with it. Values are the nodes' ``data``; adjoints are
    computed from their ``partials`` by :func:`backward_steps`, and every number is shown to
    four significant digits.
    """
    data = {"examples": [
        _example(root, order, f"example-{k}", title, note)
        for k, (title, root, order, note) in enumerate(examples)
    ]}
    label = ("Backprop step by step: a computation graph whose nodes show their values "
             "and adjoints as the forward and backward passes reach them, with buttons to "
             "step through both passes")
    return Explorable("backprop", element_id, data, caption, label,
                      title="Backprop, step by step")


# -- gradient descent on a quadratic -----------------------------------------------------------


def descent_explorer(
    hessian: Any,
    minimiser: Sequence[float],
    minimum: float = 0.0,
    start: Sequence[float] = (-1.5, -0.5),
    eta: float = 0.3,
    steps: int = 30,
    box: Sequence[float] = (-2.5, 2.5, -2.5, 2.5),
    levels: Sequence[float] = (0.05, 0.25, 0.5, 1, 2, 4, 8),
    element_id: str = "bpkit-descent",
    caption: str = "",
) -> Explorable:
    """Gradient descent ``w <- w - eta H (w - w*)`` on the quadratic error
    ``E(w) = E* + (w - w*)^T H (w - w*) / 2``.

    ``hessian`` is the symmetric positive-definite 2 x 2 matrix ``H``, ``minimiser`` is
    ``w*`` and ``minimum`` is ``E*``. The figure draws the contours at ``levels`` (ellipses
    from H's eigenvalues and eigenvectors, computed here by ``numpy.linalg.eigh``), the path
    of ``steps`` steps from ``start``, a draggable start and a learning-rate slider from
    0.01 to ``1.3 eta_max``, where ``eta_max = 2 / lambda_max`` is exported
    (``data["eta_max"]``). The box must be square. Numbers are rounded to 10 significant
    digits, so the HTML is the same on every machine.
    """
    H = np.asarray(hessian, dtype=float)
    if H.shape != (2, 2) or not np.allclose(H, H.T, rtol=0, atol=1e-12):
        raise ValueError(f"descent_explorer: hessian must be a symmetric 2 x 2 matrix, got {H}")
    lam, vec = np.linalg.eigh(H)
    if lam[0] <= 0:
        raise ValueError(f"descent_explorer: hessian must be positive definite, eigenvalues {lam}")
    vec = vec * np.where(vec[0] < 0, -1.0, 1.0)  # a fixed sign: first component >= 0
    if not np.isclose(box[1] - box[0], box[3] - box[2]):
        raise ValueError(f"descent_explorer: the box must be square (equal axes), got {box}")

    def r(x: float) -> float:
        return float(f"{float(x):.10g}")

    eta_max = 2.0 / lam[1]
    data = {
        "H": [[r(v) for v in row] for row in H], "wstar": [r(v) for v in minimiser],
        "Estar": r(minimum), "lam": [r(v) for v in lam],
        "vec": [[r(vec[0, i]), r(vec[1, i])] for i in range(2)],
        "eta_max": r(eta_max), "eta": r(eta), "start": [r(v) for v in start],
        "steps": int(steps), "box": [r(v) for v in box], "levels": [r(v) for v in levels],
        "eta_range": [0.01, round(1.3 * eta_max, 2), 0.005],
    }
    label = ("Gradient descent on the error surface: contour lines of the error with the "
             "path of gradient descent from a start the reader can drag, and a slider for "
             "the learning rate")
    return Explorable("descent", element_id, data, caption, label,
                      title="Gradient descent on the error surface")
