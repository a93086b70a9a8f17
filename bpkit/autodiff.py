"""``grad(f)``: the gradient of a scalar function as a function, by reverse mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .tensor import Tensor

__all__ = ["grad"]


def grad(f: Callable[..., Any]) -> Callable[..., np.ndarray | float]:
    """Return a function computing dC/dx for a scalar-valued ``C = f(x, *args)``.

    The returned function wraps x (an array-like or float; integers become float64) in a
    Tensor that requires a gradient, runs f, calls ``backward`` and returns x's gradient:
    an ndarray of x's shape, or a float if x was a Python number. Further arguments are
    passed through unchanged and get no gradient.
    """

    def df(x: Any, *args: Any, **kwargs: Any) -> np.ndarray | float:
        scalar_in = isinstance(x, (int, float)) and not isinstance(x, bool)
        data = np.asarray(x.data if isinstance(x, Tensor) else x)
        if data.dtype.kind != "f":
            data = data.astype(np.float64)
        xt = Tensor(data.copy(), requires_grad=True)
        out = f(xt, *args, **kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"grad: f must return a Tensor computed from its first argument, got "
                f"{type(out).__name__}"
            )
        if out.data.size != 1:
            raise ValueError(
                f"grad: f must return a scalar (one-element) Tensor, got shape {out.data.shape}"
            )
        if out.requires_grad:
            out.backward()
        g = xt.grad if xt.grad is not None else np.zeros_like(data)
        return float(g) if scalar_in else g

    df.__name__ = f"grad_{getattr(f, '__name__', 'f')}"
    df.__doc__ = f"Gradient of {getattr(f, '__name__', 'f')} with respect to its first argument."
    return df
