"""Reverse-mode gradients checked against central differences in float64:
dC/dx_j ~ (C(x + h e_j) - C(x - h e_j)) / (2h), error O(h^2). A non-scalar f is checked
through C = sum(r * f(x)) with fixed random weights r, so every output is covered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckReport"]


@dataclass
class GradcheckReport:
    """Result of :func:`bpkit.gradcheck`: ``ok`` and the worst entry (input, index)."""

    ok: bool
    max_rel_error: float  # |a - n| / max(|a|, |n|) at the worst entry (0 if both are 0)
    max_abs_error: float  # largest |a - n| over all entries
    input: int  # which input holds the worst entry
    index: tuple[int, ...]  # where in that input
    analytic: float  # reverse-mode derivative there
    numeric: float  # central difference there
    rtol: float
    atol: float
    eps: float
    n_checked: int

    def __repr__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"GradcheckReport({verdict}: worst relative error {self.max_rel_error:.3g} at "
            f"input {self.input} index {self.index} (analytic {self.analytic:.10g}, numeric "
            f"{self.numeric:.10g}); max abs error {self.max_abs_error:.3g} over "
            f"{self.n_checked} entries; rtol={self.rtol:g}, atol={self.atol:g}, eps={self.eps:g})"
        )

    def __bool__(self) -> bool:
        return self.ok


def _scalar(out: Any, r: np.ndarray | None) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
    return out if r is None else (out * r).sum()


def gradcheck(
    f: Callable[..., Any], *inputs: Any, eps: float = 1e-6, rtol: float = 1e-5,
    atol: float = 1e-8, seed: int = 0,
) -> GradcheckReport:
    """Compare the reverse-mode gradient of f at ``inputs`` (arrays or Tensors, each made a
    float64 Tensor) with central differences of step ``eps``; ``report.ok`` when every entry
    agrees within ``atol + rtol * max(|analytic|, |numeric|)``."""
    if not inputs:
        raise ValueError("gradcheck: give at least one input")
    xs = [
        np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64, copy=True)
        for x in inputs
    ]
    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    out = f(*ts)
    r = None
    if isinstance(out, Tensor) and out.data.size != 1:
        r = np.random.default_rng(seed).standard_normal(out.data.shape)
    c = _scalar(out, r)
    if c.requires_grad:
        c.backward()

    def C(values: list[np.ndarray]) -> float:
        with no_grad():
            return float(_scalar(f(*[Tensor(v) for v in values]), r).data)

    worst = (-1.0, 0, (), 0.0, 0.0)  # (violation ratio, input, index, analytic, numeric)
    max_abs = 0.0
    for i, x in enumerate(xs):
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + eps
            c_plus = C(xs)
            x[idx] = old - eps
            num = (c_plus - C(xs)) / (2 * eps)
            x[idx] = old
            ana = 0.0 if ts[i].grad is None else float(ts[i].grad[idx])
            err = abs(ana - num)
            if err > max_abs or np.isnan(err):  # once NaN, it stays NaN
                max_abs = err
            ratio = err / (atol + rtol * max(abs(ana), abs(num)))
            if np.isnan(ratio):  # a NaN derivative is the worst possible entry
                ratio = np.inf
            if ratio > worst[0]:
                worst = (ratio, i, tuple(int(k) for k in idx), ana, num)
    ratio, i, idx, ana, num = worst
    scale = max(abs(ana), abs(num))
    if scale > 0:
        rel = abs(ana - num) / scale
    else:  # both 0, or a NaN among them
        rel = 0.0 if ana == num else float("nan")
    return GradcheckReport(
        ok=bool(ratio <= 1.0), max_rel_error=rel, max_abs_error=max_abs, input=i, index=idx,
        analytic=ana, numeric=num, rtol=rtol, atol=atol, eps=eps,
        n_checked=sum(x.size for x in xs),
    )
