"""Tests of bpkit.draw: headless drawing, node and edge counts, layering, determinism."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from bpkit import F, Tensor, Value, nn  # noqa: E402
from bpkit.draw import draw_graph  # noqa: E402


def by_gid(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


def fan_out_example():
    """f = tanh(s) s + w x1 with s = w x1 + w x2: w is used three times, s twice."""
    w, x1, x2 = Value(0.5, label="w"), Value(1.0, label="x1"), Value(-2.0, label="x2")
    s = w * x1 + w * x2
    s.label = "s"
    f = s.tanh() * s + w * x1
    f.label = "f"
    f.backward()
    return f, w


def test_value_graph_nodes_edges_and_labels():
    f, w = fan_out_example()
    ax = draw_graph(f, show_adjoint=True)
    nodes = by_gid(ax, "bpkit-node")
    # leaves w, x1, x2; products w*x1, w*x2, w*x1 (again), sum s, tanh, product, f
    assert len(nodes) == 10
    assert len(by_gid(ax, "bpkit-edge")) == 13  # two children per binary node, one for tanh
    assert len(by_gid(ax, "bpkit-adjoint")) == 13
    texts = [t.get_text() for t in nodes]
    w_box = next(t for t in texts if t.startswith("w\n"))
    assert f"grad {w.grad:.4g}" in w_box and "data 0.5" in w_box
    assert any(t.startswith("f (+)") for t in texts)
    assert isinstance(ax, plt.Axes)
    ax.figure.canvas.draw()  # renders headless
    plt.close(ax.figure)


def test_layers_are_longest_paths_from_the_leaves():
    f, _ = fan_out_example()
    ax = draw_graph(f)
    nodes = by_gid(ax, "bpkit-node")
    x = {t.get_text().split("\n")[0]: t.get_position()[0] for t in nodes}
    xs = sorted({t.get_position()[0] for t in nodes})
    col = {k: xs.index(v) for k, v in x.items()}
    assert col["w"] == col["x1"] == col["x2"] == 0
    assert col["s (+)"] == 2 and col["(tanh)"] == 3 and col["f (+)"] == 5
    assert len(xs) == 6
    plt.close(ax.figure)


def test_layout_is_deterministic():
    f, _ = fan_out_example()
    a1, a2 = draw_graph(f), draw_graph(f)
    p1 = [(t.get_text(), t.get_position()) for t in by_gid(a1, "bpkit-node")]
    p2 = [(t.get_text(), t.get_position()) for t in by_gid(a2, "bpkit-node")]
    assert p1 == p2
    plt.close("all")


def test_repeated_child_gets_two_arrows_and_local_labels():
    a = Value(3.0, label="a")
    b = a * a
    b.backward()
    fig, ax = plt.subplots()
    out = draw_graph(b, ax=ax, show_local=True, show_grad=False)
    assert out is ax
    assert len(by_gid(ax, "bpkit-node")) == 2
    assert len(by_gid(ax, "bpkit-edge")) == 2
    assert all("grad" not in t.get_text() for t in by_gid(ax, "bpkit-node"))
    assert [t.get_text() for t in ax.texts if t.get_gid() is None] == ["3", "3"]
    plt.close(fig)


def test_tensor_graph_shows_shapes():
    model = nn.MLP([3, 4, 2], activation="tanh", seed=0)
    loss = F.mse_loss(model(np.ones((5, 3))), np.zeros((5, 2)))
    loss.backward()
    ax = draw_graph(loss)
    texts = [t.get_text() for t in by_gid(ax, "bpkit-node")]
    # count the graph's nodes independently
    seen, stack = {id(loss)}, [loss]
    while stack:
        for c in stack.pop().inputs:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    assert len(texts) == len(seen)
    assert any(t.startswith("W\nshape (4, 3) float64\ngrad shape (4, 3)") for t in texts)
    ax.figure.canvas.draw()
    plt.close(ax.figure)


def test_bad_input():
    with pytest.raises(TypeError, match="Value or Tensor"):
        draw_graph(1.5)
    x = Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.0
    with pytest.raises(ValueError, match="max_nodes"):
        draw_graph(y, max_nodes=10)


def test_import_bpkit_does_not_import_matplotlib():
    code = "import sys, bpkit; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def skip_connection_example():
    """Chapter 5's graph: v9 = tanh(v6) v6 + v4 with v4 = w x1, v6 = w x1 + w x2."""
    x1, x2, w = Value(0.3, label="x1"), Value(-1.2, label="x2"), Value(0.7, label="w")
    v4 = w * x1
    v6 = v4 + w * x2
    v9 = v6.tanh() * v6 + v4
    v9.backward()
    return v9


@pytest.mark.parametrize("example", [fan_out_example, skip_connection_example])
def test_adjoint_labels_sit_clear_of_the_node_boxes(example):
    root = example()
    root = root[0] if isinstance(root, tuple) else root
    ax = draw_graph(root, show_adjoint=True)
    fig = ax.figure
    fig.canvas.draw()  # Agg renderer: the extents below are the rendered ones
    boxes = [t.get_bbox_patch().get_window_extent() for t in by_gid(ax, "bpkit-node")]
    arrow_gids = ("bpkit-node", "bpkit-edge", "bpkit-adjoint")
    labels = [t for t in ax.texts if t.get_gid() not in arrow_gids and t.get_text()]
    assert len(labels) == len(by_gid(ax, "bpkit-adjoint"))  # every Value edge is labelled
    for label in labels:
        patch = label.get_bbox_patch()
        extent = patch.get_window_extent() if patch else label.get_window_extent()
        for box in boxes:
            assert not extent.overlaps(box), f"adjoint label {label.get_text()!r} on a node box"
    assert fig.get_size_inches()[0] <= 10
    plt.close(fig)
