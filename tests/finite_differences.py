"""Central finite differences for the tests, written independently of bpkit.gradcheck."""

from __future__ import annotations

import numpy as np


def central_differences(f, params, h=1e-6):
    """dC/dp by central differences for each array p in ``params``, where C = f() reads the
    arrays; each entry is moved by +-h in place and restored."""
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            fp = f()
            p[idx] = old - h
            fm = f()
            p[idx] = old
            g[idx] = (fp - fm) / (2 * h)
        grads.append(g)
    return grads


def numeric_grad(f, x, h=1e-6):
    """Central differences of the scalar f(ndarray) -> float, in float64."""
    x = np.array(x, dtype=np.float64)
    return central_differences(lambda: f(x), [x], h)[0]
