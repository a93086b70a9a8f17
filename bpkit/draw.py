"""Drawing computation graphs with matplotlib (no Graphviz needed).

:func:`draw_graph` draws the graph ending at a Value or Tensor in the layers of
``bpkit.engine.graph_layers``, inputs on the left: each box shows a node's label, op,
value (or shape) and ``grad``; each arrow is one use of a child by a parent. ``import
bpkit`` does not import this module (matplotlib is an optional dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
except ImportError as e:  # matplotlib is an optional dependency
    raise ImportError(
        "bpkit.draw needs matplotlib: pip install 'bpkit[plot]' (or pip install matplotlib)"
    ) from e

from .engine import graph_layers, topological_order

__all__ = ["draw_graph"]

FORWARD_COLOR = "0.25"
ADJOINT_COLOR = "tab:red"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _describe_array(a: np.ndarray | None) -> str:
    if a is None:
        return "None"
    if a.size == 1:
        return _fmt(float(a.reshape(-1)[0]))
    if a.size <= 3:
        return "[" + ", ".join(_fmt(float(v)) for v in a.reshape(-1)) + "]"
    return f"shape {a.shape}"


def _node_text(node: Any, show_grad: bool) -> str:
    label = getattr(node, "label", "") or ""
    op = str(node.op or "")
    head = f"{label} ({op})" if label and op else (label or (f"({op})" if op else "·"))
    if isinstance(node.data, np.ndarray):  # Tensor
        lines = [head, f"{_describe_array(node.data)} {node.data.dtype}"]
        if show_grad:
            lines.append(f"grad {_describe_array(node.grad)}")
    else:  # Value
        lines = [head, f"data {_fmt(node.data)}"]
        if show_grad:
            lines.append(f"grad {_fmt(node.grad)}")
    return "\n".join(lines)


def _arc_point(ax: Axes, p0: tuple, p1: tuple, rad: float, t: float) -> tuple[float, float]:
    """The point at t on matplotlib's ``arc3,rad`` curve from p0 to p1 (a quadratic Bezier in
    display coordinates), in data coordinates."""
    to_disp = ax.transData
    (x0, y0), (x1, y1) = to_disp.transform(p0), to_disp.transform(p1)
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    x = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t**2 * x1
    y = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t**2 * y1
    return tuple(to_disp.inverted().transform((x, y)))


def _side(ax: Axes, p0: tuple, p1: tuple, rad: float) -> np.ndarray:
    """Unit normal (display coordinates) of the chord p0 -> p1 on the side the ``arc3,rad``
    curve bulges to; below a rightward straight edge."""
    d = ax.transData.transform(p1) - ax.transData.transform(p0)
    d = d / max(float(np.hypot(*d)), 1e-9)
    right = np.array([d[1], -d[0]])  # arc3 moves its control point by +rad along this normal
    return right if rad >= 0 else -right


def _shift(ax: Axes, p: tuple, offset: np.ndarray) -> tuple[float, float]:
    """The data point ``offset`` pixels away from data point p."""
    disp = ax.transData.transform(p) + offset
    return tuple(ax.transData.inverted().transform(disp))


def _arrow(ax: Axes, start: tuple, end: tuple, box_start: Any, box_end: Any, rad: float,
           color: str, linestyle: str, gid: str) -> None:
    """An arc arrow from ``start`` to ``end``, clipped at the two nodes' boxes."""
    arrowprops = dict(
        arrowstyle="-|>", color=color, lw=0.9, linestyle=linestyle, shrinkA=2, shrinkB=2,
        patchA=box_start.get_bbox_patch(), patchB=box_end.get_bbox_patch(),
        connectionstyle=f"arc3,rad={rad}",
    )
    ax.annotate("", xy=end, xytext=start, arrowprops=arrowprops, zorder=3).set_gid(gid)


def _overlaps(a: Any, others: list[Any], pad: float) -> bool:
    return any(
        a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad
        for b in others
    )


def draw_graph(
    root: Any,
    ax: Axes | None = None,
    show_grad: bool = True,
    show_adjoint: bool = False,
    show_local: bool = False,
    figsize: tuple[float, float] | None = None,
    fontsize: float = 8.0,
    max_nodes: int = 200,
) -> Axes:
    """Draw the computation graph ending at ``root`` (a Value or Tensor); return the Axes.

    ``show_grad`` prints each node's ``grad`` (run ``root.backward()`` first);
    ``show_adjoint`` adds the reverse pass, a red dashed arrow beside each edge, labelled for
    Values with the contribution d(parent)/d(child) x parent.grad; ``show_local`` labels a
    Value graph's edges with d(parent)/d(child). Without ``ax``, a figure of ``figsize`` (by
    default from the graph's size) is made: labels are placed in display units, so size it
    here, not later. Artist gids: "bpkit-node", "bpkit-edge", "bpkit-adjoint" and
    "bpkit-adjoint-label".
    """
    if not hasattr(root, "inputs") or not hasattr(root, "data"):
        raise TypeError(f"draw_graph: expected a bpkit Value or Tensor, got {type(root).__name__}")
    order = topological_order(root)
    if len(order) > max_nodes:
        raise ValueError(
            f"draw_graph: the graph has more than max_nodes={max_nodes} nodes; draw a smaller "
            f"expression or raise max_nodes"
        )
    layers = graph_layers(order)
    dx, dy = 2.2, 1.25
    xy: dict[int, tuple[float, float]] = {}
    layer: dict[int, int] = {}
    for k, nodes in enumerate(layers):
        for i, n in enumerate(nodes):
            xy[id(n)] = (k * dx, ((len(nodes) - 1) / 2 - i) * dy)
            layer[id(n)] = k
    height = max(len(nodes) for nodes in layers)
    if ax is None:
        if figsize is None:
            width = 1.65 * len(layers) + 0.4  # a box plus room for an adjoint label
            figsize = (max(3.0, min(10.0, width)), max(1.6, 1.05 * height + 0.9))
        fig, ax = plt.subplots(figsize=figsize)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)

    ax.set_xlim(-0.9 * dx / 2 - 0.3, (len(layers) - 1) * dx + 0.9 * dx / 2 + 0.3)
    ax.set_ylim(-(height - 1) / 2 * dy - 0.75, (height - 1) / 2 * dy + 0.75)
    ax.set_axis_off()
    boxes: dict[int, Any] = {}
    for node in order:
        is_root = node is root
        bbox = dict(
            boxstyle="round,pad=0.35",
            facecolor="#fff3d6" if is_root else ("#e8f0fb" if node.inputs else "white"),
            edgecolor="0.3",
            linewidth=1.2 if is_root else 0.8,
        )
        # zorder below the arrows: each draw places the boxes before the arrows clip to them
        text = ax.text(*xy[id(node)], _node_text(node, show_grad), ha="center", va="center",
                       fontsize=fontsize, family="monospace", zorder=2, bbox=bbox)
        text.set_gid("bpkit-node")
        boxes[id(node)] = text

    renderer = ax.figure.canvas.get_renderer()
    node_extents = []
    for text in boxes.values():
        text.update_bbox_position_size(renderer)
        node_extents.append(text.get_bbox_patch().get_window_extent(renderer))
    px = ax.figure.dpi / 72  # pixels per point
    labels: list[Any] = []

    def place_label(text: Any, curve: tuple, rad: float, normal: np.ndarray) -> None:
        """Put ``text`` beside the curve on the ``normal`` side, at the first of a list of
        points along it where it clears every box and label, else where it clears the node
        boxes and overlaps the fewest labels."""
        size = text.get_window_extent(renderer)
        away = 3 * px + abs(normal[0]) * size.width / 2 + abs(normal[1]) * size.height / 2
        best = None
        for k, t in enumerate((0.5, 0.4, 0.6, 0.3, 0.7, 0.45, 0.55, 0.35, 0.65, 0.25, 0.75)):
            at = _shift(ax, _arc_point(ax, *curve, rad, t), away * normal)
            text.set_position(at)
            text.update_bbox_position_size(renderer)
            extent = text.get_bbox_patch().get_window_extent(renderer)
            score = (
                _overlaps(extent, node_extents, 2 * px),
                sum(_overlaps(extent, [b], px) for b in labels),
                k,
            )
            if best is None or score < best[0]:
                best = (score, at, extent)
            if score[:2] == (False, 0):
                break
        text.set_position(best[1])
        labels.append(best[2])

    for parent in order:
        locals_ = getattr(parent, "partials", None)  # Values carry d(parent)/d(child)
        counts: dict[int, int] = {}
        for j, child in enumerate(parent.inputs):
            rep = counts.get(id(child), 0)
            counts[id(child)] = rep + 1
            rad = 0.15 * ((rep + 1) // 2) * (-1 if rep % 2 else 1)  # 0, -0.15, 0.15, ...
            a, b = xy[id(child)], xy[id(parent)]
            if layer[id(parent)] - layer[id(child)] > 1 and rep == 0:
                rad = -0.25 if a[1] + b[1] >= 0 else 0.25  # bow away from the middle
            _arrow(ax, a, b, boxes[id(child)], boxes[id(parent)], rad, FORWARD_COLOR, "-",
                   "bpkit-edge")
            has_local = locals_ is not None and j < len(locals_)
            if show_local and has_local:
                ax.text(*_arc_point(ax, a, b, rad, 0.5), _fmt(locals_[j]),
                        fontsize=fontsize * 0.85, ha="center", va="center",
                        color=FORWARD_COLOR, backgroundcolor="white", zorder=4)
            if show_adjoint:  # beside the forward edge, on the side it bulges to
                normal = _side(ax, a, b, rad)
                start = _shift(ax, b, 0.9 * fontsize * px * normal)
                end = _shift(ax, a, 0.9 * fontsize * px * normal)
                _arrow(ax, start, end, boxes[id(parent)], boxes[id(child)], -rad,
                       ADJOINT_COLOR, "--", "bpkit-adjoint")
                if has_local:
                    bbox = dict(boxstyle="round,pad=0.15", facecolor="white",
                                edgecolor=ADJOINT_COLOR, linewidth=0.4)
                    label = ax.text(*start, _fmt(locals_[j] * parent.grad),
                                    fontsize=fontsize * 0.85, ha="center", va="center",
                                    color=ADJOINT_COLOR, zorder=5, bbox=bbox)
                    label.set_gid("bpkit-adjoint-label")
                    place_label(label, (start, end), -rad, normal)
    return ax
