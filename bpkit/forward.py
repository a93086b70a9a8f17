"""Forward mode: dual numbers carry a tangent along with every value.

Each operation applies its primitive's JVPs (:mod:`bpkit.ops`) forwards:

    d(a + b) = da + db,   d(ab) = da b + a db,   d(f(a)) = f'(a) da,   d(AB) = dA B + A dB.

One pass gives one product J v: a gradient of n inputs takes n passes (reverse mode: one).
Dual has Tensor's operators and methods, so the same function runs under :func:`bpkit.grad`
and :func:`bpkit.jvp`; Tensors and arrays met inside it are constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ops import Operators, Primitive

__all__ = ["Dual", "push_tangent"]


def push_tangent(prim: Primitive, out: np.ndarray, primals: list[np.ndarray],
                 tangents: list[Any], params: dict[str, Any]) -> np.ndarray:
    """d(out) = sum_i jvp_i(dx_i) over the inputs with a tangent (None: a constant), with
    the output's shape and dtype."""
    t = None
    for jvp_i, dx in zip(prim.jvps, tangents):  # noqa: B905 (a bias may be absent)
        if dx is not None:
            d = jvp_i(dx, out, *primals, **params)
            t = d if t is None else t + d
    if t is None:
        return np.zeros_like(out)
    t = np.asarray(t)
    if t.shape != out.shape:
        t = np.broadcast_to(t, out.shape)
    return t if t.dtype == out.dtype else t.astype(out.dtype)


class Dual(Operators):
    """A value ``primal`` x with a ``tangent`` dx of the same shape (forward-mode AD);
    :func:`bpkit.jvp` starts from dx = v."""

    __slots__ = ("primal", "tangent")
    __array_ufunc__ = None  # ndarray (op) Dual defers to Dual's reflected operators

    def __init__(self, primal: Any, tangent: Any = None) -> None:
        p = np.asarray(primal)
        if p.dtype.kind != "f":
            p = p.astype(np.float64)
        t = np.zeros_like(p) if tangent is None else np.asarray(tangent)
        if t.shape != p.shape:
            raise ValueError(f"Dual: tangent shape {t.shape} differs from primal shape {p.shape}")
        self.primal = p
        self.tangent = t.astype(p.dtype, copy=False)

    def bind(self, prim: Primitive, *args: Any, **params: Any) -> Dual:
        """Apply ``prim`` to the primals and its JVPs to the tangents (Tensors, arrays and
        numbers are constants; numbers take this dual's dtype)."""
        primals, tangents = [], []
        for a in args:
            if isinstance(a, Dual):
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                if type(a) in (float, int, bool):  # Python numbers are "weak", as in NumPy
                    a = np.asarray(a, dtype=self.primal.dtype)
                a = np.asarray(a.data if hasattr(a, "bind") else a)
                primals.append(a if a.dtype.kind == "f" else a.astype(np.float64))
                tangents.append(None)
        try:
            out = prim.fwd(*primals, **params)
        except ValueError as e:
            prim.explain_broadcast(e, primals)
            raise
        out = np.asarray(out[0] if prim.residual else out)
        dual = Dual.__new__(Dual)
        dual.primal, dual.tangent = out, push_tangent(prim, out, primals, tangents, params)
        return dual

    def __repr__(self) -> str:
        return f"Dual(primal={self.primal!r}, tangent={self.tangent!r})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> np.dtype:
        return self.primal.dtype

    @property
    def data(self) -> np.ndarray:
        return self.primal

    def __len__(self) -> int:
        return len(self.primal)

    def item(self) -> float:
        return self.primal.item()
