"""Computation graphs that several tests build the same way."""

from __future__ import annotations

from bpkit import Value


def eq_5_1() -> Value:
    """Chapter 5's Eq. (5.1), recorded with bpkit.Value under the chapter's labels:
    s = w x1 + w x2, h = tanh s, f = h s + w x1 (w and v4 and v6 are each used twice)."""
    x1, x2, w = Value(0.3, label="x1"), Value(-1.2, label="x2"), Value(0.7, label="w")
    v4 = w * x1
    v5 = w * x2
    v6 = v4 + v5
    v7 = v6.tanh()
    v8 = v7 * v6
    v9 = v8 + v4
    for k, v in enumerate([v4, v5, v6, v7, v8, v9], start=4):
        v.label = f"v{k}"
    return v9
