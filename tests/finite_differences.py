"""Central finite differences for the tests, written independently of bpkit.gradcheck."""

from __future__ import annotations

import numpy as np


def numeric_grad(f, x, h=1e-6):
    """Central differences of the scalar f(ndarray) -> float, in float64."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        fp = f(x)
        x[idx] = old - h
        fm = f(x)
        x[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g
