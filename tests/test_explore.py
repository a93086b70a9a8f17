"""bpkit.explore: the explorables' data is bpkit's, and their HTML is self-contained.

The browser checks (clicking through the figures in the built book) are in test_book.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from graphs import eq_5_1

from bpkit import Value
from bpkit.engine import topological_order
from bpkit.explore import (
    Explorable,
    backprop_explorer,
    backward_steps,
    descent_explorer,
    fmt,
)


def breadth_first_order(root):
    """Nodes by distance from root, reversed (root last): not topological here."""
    levels, seen, frontier = [], {id(root)}, [root]
    while frontier:
        levels.extend(frontier)
        nxt = []
        for node in frontier:
            for k in node.inputs:
                if id(k) not in seen:
                    seen.add(id(k))
                    nxt.append(k)
        frontier = nxt
    return levels[::-1]


def fresh_backward(root):
    """Every node's adjoint from bpkit's own backward pass on a graph nothing else swept."""
    root.backward()
    return {v.label: v.grad for v in topological_order(root)}


def by_name(data):
    return {n["name"]: n for n in data["nodes"]}


def test_topological_sweep_equals_backward_bit_for_bit():
    root = eq_5_1()
    steps = backward_steps(root)
    totals = {"v9": 1.0}
    for s in steps:
        for x, _, total in s["pushes"]:
            totals[x.label] = total
    grads = fresh_backward(root)
    assert totals == grads  # exact: the same products and sums in the same order
    # each step passes on the adjoint its node ends with (complete when it is used)
    assert all(s["adjoint"] == grads[s["node"].label] for s in steps)


def test_exported_values_and_adjoints_are_bpkits():
    root = eq_5_1()
    fig = backprop_explorer([("topological", root, None, "")])
    data = fig.data["examples"][0]
    grads = fresh_backward(eq_5_1())
    nodes = by_name(data)
    values = {v.label: v.data for v in topological_order(root)}
    assert {k: n["value"] for k, n in nodes.items()} == {k: fmt(v) for k, v in values.items()}
    assert data["final"] == {k: fmt(g) for k, g in grads.items()}
    assert data["final"] == data["right"]
    # forward steps: every node with inputs, in topological order
    order = [v.label for v in topological_order(root) if v.inputs]
    assert [data["nodes"][i]["name"] for i in data["forward"]] == order
    # backward steps: the reverse order, each node's adjoint as bpkit's backward() has it
    names = [n["name"] for n in data["nodes"]]
    assert [names[s["node"]] for s in data["backward"]] == order[::-1]
    for s in data["backward"]:
        assert s["adjoint"] == fmt(grads[names[s["node"]]])
        assert not s["incomplete"] and not any(p["late"] for p in s["pushes"])
        for p in s["pushes"]:
            edge = data["edges"][p["edge"]]
            assert (edge["from"], edge["to"]) == (p["to"], s["node"])
    # fan-out: w, v4 and v6 each receive two contributions, summed
    received = [names[p["to"]] for s in data["backward"] for p in s["pushes"]]
    assert {k for k in set(received) if received.count(k) == 2} == {"w", "v4", "v6"}


def test_wrong_order_gives_a_wrong_gradient():
    root = eq_5_1()
    fig = backprop_explorer([("bfs", root, breadth_first_order(root), "")])
    data = fig.data["examples"][0]
    grads = fresh_backward(eq_5_1())
    # the breadth-first sweep, done by hand on bpkit's partials
    adjoint = {id(v): 0.0 for v in topological_order(root)}
    adjoint[id(root)] = 1.0
    for node in reversed(breadth_first_order(root)):
        for x, partial in zip(node.inputs, node.partials, strict=True):
            adjoint[id(x)] += partial * adjoint[id(node)]
    by_hand = {v.label: adjoint[id(v)] for v in topological_order(root)}
    assert data["final"] == {k: fmt(v) for k, v in by_hand.items()}
    assert data["right"] == {k: fmt(g) for k, g in grads.items()}
    wrong = {k for k in grads if not np.isclose(by_hand[k], grads[k], rtol=1e-9)}
    assert wrong == {"w", "x1"}
    assert {k for k in data["final"] if data["final"][k] != data["right"][k]} == wrong
    names = [n["name"] for n in data["nodes"]]
    v4 = next(s for s in data["backward"] if names[s["node"]] == "v4")
    assert v4["incomplete"] == ["v6"]
    late = [names[p["to"]] for s in data["backward"] for p in s["pushes"] if p["late"]]
    assert late == ["v4"]


def test_layout_puts_each_node_below_its_inputs():
    data = backprop_explorer([("t", eq_5_1(), None, "")]).data["examples"][0]
    for e in data["edges"]:
        assert data["nodes"][e["from"]]["y"] < data["nodes"][e["to"]]["y"]
    for n in data["nodes"]:
        assert 0 < n["x"] - data["box"][0] / 2 and n["x"] + data["box"][0] / 2 < data["width"]
    assert data["width"] <= 670  # drawn 1:1 in the book's text column


def test_html_is_self_contained_and_deterministic():
    html_1 = backprop_explorer([("t", eq_5_1(), None, "")], element_id="f1").html()
    html_2 = backprop_explorer([("t", eq_5_1(), None, "")], element_id="f1").html()
    assert html_1 == html_2
    assert "<script src" not in html_1 and "http" not in html_1.replace(
        "http://www.w3.org/2000/svg", "")
    assert "bpkitExplore.backprop(\"f1\")" in html_1
    payload = re.search(r'<script type="application/json" id="f1-data">(.*?)</script>',
                        html_1, re.S).group(1)
    assert json.loads(payload)["examples"][0]["title"] == "t"
    with pytest.raises(ValueError, match="element_id"):
        Explorable("backprop", "a b", {}, "", "")


def test_labels_must_be_unique():
    a, b = Value(1.0, label="a"), Value(2.0, label="a")
    with pytest.raises(ValueError, match="unique"):
        backprop_explorer([("t", a * b, None, "")])


H_TWO_CASES = np.array([[2.0, 1.0], [1.0, 1.0]])  # chapter 2, Eq. (2.9)


def test_descent_eta_max_is_two_over_the_largest_eigenvalue():
    fig = descent_explorer(H_TWO_CASES, [1.0, -1.0])
    lam_max = np.linalg.eigvalsh(H_TWO_CASES).max()
    assert fig.data["eta_max"] == pytest.approx(2 / lam_max, rel=1e-9)
    assert fig.data["eta_max"] == pytest.approx(3 - np.sqrt(5), rel=1e-9)
    assert fig.data["lam"] == pytest.approx(sorted(np.linalg.eigvalsh(H_TWO_CASES)))
    low, high, _ = fig.data["eta_range"]
    assert low < fig.data["eta"] < fig.data["eta_max"] < high
    # the eigenvectors the contours are drawn from
    for lam, v in zip(fig.data["lam"], fig.data["vec"], strict=True):
        np.testing.assert_allclose(H_TWO_CASES @ v, lam * np.array(v), atol=1e-9)


def test_descent_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="symmetric"):
        descent_explorer(np.array([[2.0, 1.0], [0.0, 1.0]]), [0, 0])
    with pytest.raises(ValueError, match="positive definite"):
        descent_explorer(np.array([[1.0, 1.0], [1.0, 1.0]]), [0, 0])
    with pytest.raises(ValueError, match="square"):
        descent_explorer(H_TWO_CASES, [0, 0], box=(-1, 1, -2, 2))


def test_formats_without_scripts_get_a_sentence():
    fig = descent_explorer(H_TWO_CASES, [1.0, -1.0])
    assert fig._repr_markdown_().startswith("**Gradient descent on the error surface**")
    assert repr(fig) == "Explorable('descent', element_id='bpkit-descent')"
