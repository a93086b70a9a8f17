"""Explorables: figures the reader drives, in the built book and in Jupyter.

:func:`backprop_explorer` steps through a Value graph's forward and backward pass, in any
order; :func:`descent_explorer` runs gradient descent on a quadratic. Each returns an
:class:`Explorable`: deterministic, self-contained HTML holding its data as JSON and its
script, ``explorables/KIND.js`` with ``explorables/helpers.js`` put in at the line HELPERS.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import numpy as np

from .engine import graph_layers, topological_order

__all__ = ["Explorable", "backprop_explorer", "backward_steps", "descent_explorer"]

DIGITS = 4  # significant digits of every number shown

# Layout of a graph, in SVG pixels (drawn at most 1:1 in the text column): one row per
# layer, inputs at the top; MARGIN leaves room for edges that bow around boxes.
BOX_W, BOX_H, COL_W, ROW_H, MARGIN, TOP = 120, 60, 150, 104, 90, 14

HELPERS = "  /* helpers.js: h() makes an HTML element, s() an SVG one */\n"


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
        folder = files("bpkit").joinpath("explorables")
        script = folder.joinpath(f"{self.kind}.js").read_text("utf-8")
        script = script.replace(HELPERS, folder.joinpath("helpers.js").read_text("utf-8"))
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


def _formula(op: str, names: Sequence[str]) -> str:
    if op in ("+", "-", "*", "/") and len(names) == 2:
        return f" {'×' if op == '*' else op} ".join(names)
    if op.startswith("**") and len(names) == 1:
        return f"{names[0]}^{op[2:]}"
    return f"{op}({', '.join(names)})"


def backward_steps(root: Any, order: Sequence[Any] | None = None) -> list[dict]:
    """The reverse sweep from ``root`` (adjoint 1) over reversed ``order`` (by default
    topological), one step ``{"node": n, "adjoint": a, "pushes": [(x, partial * a, total),
    ...]}`` per node with inputs; in a topological order the totals equal ``root.backward()``'s
    bit for bit, in another they can be wrong."""
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
    layers = graph_layers(forward)
    index = {id(n): i for i, n in enumerate(forward)}
    names = [getattr(n, "label", "") or f"n{i}" for i, n in enumerate(forward)]
    if len(set(names)) < len(names):
        raise ValueError(f"backprop_explorer: node labels must be unique, got {names}")
    w_px = 2 * MARGIN + max(len(nodes) for nodes in layers) * COL_W
    xy: dict[int, tuple[int, int]] = {}
    for k, nodes in enumerate(layers):  # inputs at the top, the output at the bottom
        for i, n in enumerate(nodes):
            x = w_px // 2 + round((i - (len(nodes) - 1) / 2) * COL_W)
            xy[id(n)] = (x, TOP + BOX_H // 2 + k * ROW_H)
    nodes, edges = [], []
    first_edge = []  # edges[first_edge[i] + j] is node i's edge from its input j
    for i, n in enumerate(forward):
        op = str(n.op or "")
        ins = [names[index[id(x)]] for x in n.inputs]
        nodes.append({
            "name": names[i], "op": op, "value": fmt(n.data),
            "x": xy[id(n)][0], "y": xy[id(n)][1],
            "formula": _formula(op, ins) if n.inputs else "",
            "numbers": _formula(op, [fmt(x.data) for x in n.inputs]) if n.inputs else "",
        })
        first_edge.append(len(edges))
        for j, (x, partial) in enumerate(zip(n.inputs, n.partials, strict=True)):
            rep = sum(y is x for y in n.inputs[:j])  # the rep-th use of x by n
            edges.append({"from": index[id(x)], "to": i, "partial": fmt(partial), "rep": rep})

    steps = backward_steps(root, order)
    pushed_at = {id(s["node"]): k for k, s in enumerate(steps)}
    arrivals: dict[int, list[int]] = {}
    for k, s in enumerate(steps):
        for x, _, _ in s["pushes"]:
            arrivals.setdefault(id(x), []).append(k)
    backward = []
    for k, s in enumerate(steps):
        i = index[id(s["node"])]
        late_senders = sorted({names[index[id(steps[m]["node"])]]
                               for m in arrivals.get(id(s["node"]), []) if m > k})
        pushes = []
        for j, (x, term, total) in enumerate(s["pushes"]):
            done = pushed_at.get(id(x))
            edge = first_edge[i] + j
            pushes.append({
                "to": index[id(x)], "edge": edge, "partial": edges[edge]["partial"],
                "term": fmt(term), "total": fmt(total), "late": done is not None and done < k,
            })
        backward.append({"node": i, "adjoint": fmt(s["adjoint"]), "incomplete": late_senders,
                         "pushes": pushes})

    def totals(steps: list[dict]) -> dict[str, str]:
        """Each node's adjoint at the end of a sweep (the root's is 1)."""
        out = {names[index[id(x)]]: fmt(total) for s in steps for x, _, total in s["pushes"]}
        return {**out, names[-1]: fmt(1.0)}

    return {
        "name": name, "title": title, "note": note, "nodes": nodes, "edges": edges,
        "forward": [i for i, n in enumerate(forward) if n.inputs],
        "backward": backward, "final": totals(steps), "right": totals(backward_steps(root)),
        "leaves": [names[i] for i, n in enumerate(forward) if not n.inputs],
        "width": w_px, "height": 2 * TOP + BOX_H + (len(layers) - 1) * ROW_H,
        "box": [BOX_W, BOX_H], "row": ROW_H,
    }


def backprop_explorer(
    examples: Sequence[tuple[str, Any, Sequence[Any] | None, str]],
    element_id: str = "bpkit-backprop",
    caption: str = "",
) -> Explorable:
    """Backprop, step by step: the forward pass node by node, then the backward pass.

    ``examples`` holds ``(title, root, order, note)`` per example: ``root`` a Value whose
    graph's nodes have unique labels, ``order`` the sweep's order as for
    :func:`backward_steps` (None: topological) and ``note`` a sentence shown with it.
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


# -- gradient descent on a quadratic ------------------------------------------------------


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

    ``hessian`` is H (symmetric positive-definite 2 x 2), ``minimiser`` w*, ``minimum`` E*;
    the figure draws contours at ``levels`` in a square ``box``, the path of ``steps`` steps
    from a draggable ``start`` and an eta slider up to 1.3 ``data["eta_max"]`` (2/lambda_max).
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

    def r(x: float) -> float:  # 10 significant digits: the same HTML on every machine
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
