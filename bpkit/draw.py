"""Drawing computation graphs with matplotlib (no Graphviz needed).

:func:`draw_graph` draws the graph that ends at a :class:`bpkit.Value` or
:class:`bpkit.Tensor` as a layered DAG, inputs on the left and the output on the right: a
node's column is the length of the longest path to it from a leaf. Each box shows the
node's label and operation, its value (or shape, for tensors) and its adjoint ``grad``;
each arrow is one use of a child by a parent (a node used twice gets two arrows). The
layout is a deterministic function of the graph.

``import bpkit`` does not import this module (matplotlib is an optional dependency).
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

from .engine import topological_order

__all__ = ["draw_graph"]

FORWARD_COLOR = "0.25"
ADJOINT_COLOR = "tab:red"


def _graph(root: Any, max_nodes: int) -> tuple[list[Any], dict[int, int]]:
    """Nodes in topological order and each node's layer: 0 for a leaf, else 1 + the largest
    layer of its inputs."""
    if not hasattr(root, "inputs") or not hasattr(root, "data"):
        raise TypeError(f"draw_graph: expected a bpkit Value or Tensor, got {type(root).__name__}")
    order = topological_order(root)
    if len(order) > max_nodes:
        raise ValueError(
            f"draw_graph: the graph has more than max_nodes={max_nodes} nodes; draw a smaller "
            f"expression or raise max_nodes"
        )
    layer: dict[int, int] = {}
    for node in order:
        layer[id(node)] = 1 + max((layer[id(c)] for c in node.inputs), default=-1)
    return order, layer


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


def _order_layers(order: list[Any], layer: dict[int, int]) -> list[list[Any]]:
    """Nodes grouped by layer, ordered to reduce crossings: a sweep left to right sorts each
    layer by the mean position of the nodes' children, then a sweep right to left by the
    mean position of their parents (ties keep the previous order)."""
    n_layers = 1 + max(layer.values())
    layers: list[list[Any]] = [[] for _ in range(n_layers)]
    for node in order:
        layers[layer[id(node)]].append(node)
    parents: dict[int, list[Any]] = {id(n): [] for n in order}
    for n in order:
        for c in n.inputs:
            parents[id(c)].append(n)
    pos: dict[int, float] = {}

    def place(nodes: list[Any]) -> None:
        m = len(nodes)
        for i, n in enumerate(nodes):
            pos[id(n)] = (m - 1) / 2 - i

    def sort_by(nodes: list[Any], neighbours: Any) -> None:
        rank = {id(n): i for i, n in enumerate(nodes)}
        means = {}
        for n in nodes:
            ys = [pos[id(c)] for c in neighbours(n) if id(c) in pos]
            means[id(n)] = -float(np.mean(ys)) if ys else float(rank[id(n)])
        nodes.sort(key=lambda n: (means[id(n)], rank[id(n)]))

    for k, nodes in enumerate(layers):
        if k > 0:
            sort_by(nodes, lambda n: n.inputs)
        place(nodes)
    for nodes in reversed(layers[:-1]):
        sort_by(nodes, lambda n: parents[id(n)])
        place(nodes)
    return layers


def _arc_point(ax: Axes, p0: tuple, p1: tuple, rad: float, t: float) -> tuple[float, float]:
    """The point at parameter t on matplotlib's ``arc3,rad`` curve from p0 to p1 (a quadratic
    Bezier built in display coordinates), in data coordinates."""
    to_disp = ax.transData
    (x0, y0), (x1, y1) = to_disp.transform(p0), to_disp.transform(p1)
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    x = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t**2 * x1
    y = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t**2 * y1
    return tuple(to_disp.inverted().transform((x, y)))


def _side(ax: Axes, p0: tuple, p1: tuple, rad: float) -> np.ndarray:
    """Unit normal (display coordinates) of the chord p0 -> p1 on the side where the
    ``arc3,rad`` curve bulges; for a straight edge (rad 0) the side below a rightward edge."""
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
    arrow = ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops=dict(
            arrowstyle="-|>",
            color=color,
            lw=0.9,
            linestyle=linestyle,
            shrinkA=2,
            shrinkB=2,
            patchA=box_start.get_bbox_patch(),
            patchB=box_end.get_bbox_patch(),
            connectionstyle=f"arc3,rad={rad}",
        ),
        zorder=3,
    )
    arrow.set_gid(gid)


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

    - ``show_grad``: print each node's adjoint ``grad`` (run ``root.backward()`` first);
    - ``show_adjoint``: also draw the reverse pass, one red dashed arrow per edge from
      parent to child, running beside its forward edge (below a straight one, outside a
      curved one); for Values it is labelled, in a small boxed label placed clear of the
      node boxes, with the contribution d(parent)/d(child) x parent.grad that the child
      receives along that edge;
    - ``show_local``: label forward edges of a Value graph with the local derivative
      d(parent)/d(child).

    A new figure of size ``figsize`` (by default from the graph's size) is made when ``ax``
    is None; the adjoint arrows and labels are placed in display units for the figure's
    size at the time of the call, so choose ``figsize`` here rather than resizing later.
    Nodes and arrows are matplotlib artists with gid ``"bpkit-node"``, ``"bpkit-edge"`` or
    ``"bpkit-adjoint"``; adjoint labels have gid ``"bpkit-adjoint-label"``.
    """
    order, layer = _graph(root, max_nodes)
    layers = _order_layers(order, layer)
    dx, dy = 2.2, 1.25
    xy: dict[int, tuple[float, float]] = {}
    for k, nodes in enumerate(layers):
        m = len(nodes)
        for i, n in enumerate(nodes):
            xy[id(n)] = (k * dx, ((m - 1) / 2 - i) * dy)
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
        x, y = xy[id(node)]
        is_root = node is root
        text = ax.text(
            x,
            y,
            _node_text(node, show_grad),
            ha="center",
            va="center",
            fontsize=fontsize,
            family="monospace",
            zorder=2,  # below the arrows: each draw places the boxes before the arrows clip to them
            bbox=dict(
                boxstyle="round,pad=0.35",
                facecolor="#fff3d6" if is_root else ("#e8f0fb" if node.inputs else "white"),
                edgecolor="0.3",
                linewidth=1.2 if is_root else 0.8,
            ),
        )
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
        """Put ``text`` beside the curve (p0, p1) on the ``normal`` side: at the first of a
        fixed list of points along it where its box clears every node box and earlier label,
        else where it clears the node boxes and overlaps the fewest labels."""
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
            span = layer[id(parent)] - layer[id(child)]
            if span > 1 and rep == 0:  # bow a long edge away from the middle, around boxes
                up = xy[id(child)][1] + xy[id(parent)][1] >= 0
                rad = -0.25 if up else 0.25
            _arrow(ax, xy[id(child)], xy[id(parent)], boxes[id(child)], boxes[id(parent)],
                   rad, FORWARD_COLOR, "-", "bpkit-edge")
            has_local = locals_ is not None and j < len(locals_)
            if show_local and has_local:
                ax.text(
                    *_arc_point(ax, xy[id(child)], xy[id(parent)], rad, 0.5),
                    _fmt(locals_[j]),
                    fontsize=fontsize * 0.85,
                    ha="center",
                    va="center",
                    color=FORWARD_COLOR,
                    backgroundcolor="white",
                    zorder=4,
                )
            if show_adjoint:
                # the reverse arrow runs beside its forward edge, shifted to the side the
                # edge bulges to (below a straight edge), from the parent's box to the child's
                normal = _side(ax, xy[id(child)], xy[id(parent)], rad)
                start = _shift(ax, xy[id(parent)], 0.9 * fontsize * px * normal)
                end = _shift(ax, xy[id(child)], 0.9 * fontsize * px * normal)
                _arrow(ax, start, end, boxes[id(parent)], boxes[id(child)], -rad,
                       ADJOINT_COLOR, "--", "bpkit-adjoint")
                if has_local:
                    label = ax.text(
                        *start,
                        _fmt(locals_[j] * parent.grad),
                        fontsize=fontsize * 0.85,
                        ha="center",
                        va="center",
                        color=ADJOINT_COLOR,
                        zorder=5,
                        bbox=dict(
                            boxstyle="round,pad=0.15",
                            facecolor="white",
                            edgecolor=ADJOINT_COLOR,
                            linewidth=0.4,
                        ),
                    )
                    label.set_gid("bpkit-adjoint-label")
                    place_label(label, (start, end), -rad, normal)
    return ax
