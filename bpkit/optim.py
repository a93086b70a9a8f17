"""Optimisers: gradient descent with momentum, and Levenberg-Marquardt.

Both update the parameter Tensors in place (``p.data``), so a model and its optimiser
keep sharing the same arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .tensor import Tensor, no_grad

__all__ = ["SGD", "LevenbergMarquardt", "jacobian"]


def _param_list(params: Iterable[Tensor], who: str) -> list[Tensor]:
    if hasattr(params, "parameters"):  # a model (bpkit.nn.Module) instead of its parameters
        raise TypeError(f"{who}: pass model.parameters(), not the {type(params).__name__}")
    ps = list(params)
    if not ps:
        raise ValueError(f"{who}: got an empty parameter list")
    for i, p in enumerate(ps):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(f"{who}: parameter {i} is not a Tensor with requires_grad=True")
    return ps


class SGD:
    """Gradient descent with momentum, in the form of Rumelhart, Hinton & Williams (1986):

        Δw(t) = -η ∂E/∂w(t) + α Δw(t-1),    w(t+1) = w(t) + Δw(t),

    with learning rate η = ``lr`` and momentum α = ``momentum`` (α = 0: plain gradient
    descent). PyTorch writes v(t) = α v(t-1) + ∂E/∂w, w -= η v; the two agree with
    Δw = -η v for a constant η (only a change of η during training rescales differently).

    ``step()`` skips parameters whose ``grad`` is None.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        self.params = _param_list(params, "SGD")
        if not lr > 0:
            raise ValueError(f"SGD: lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must lie in [0, 1), got {momentum}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        # Δw(t-1) per parameter (momentum) or a scratch buffer for -η ∂E/∂w (no momentum)
        self._delta: list[np.ndarray | None] = [None] * len(self.params)
        self._tmp: list[np.ndarray | None] = [None] * len(self.params)  # η ∂E/∂w (momentum)

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``) before the next backward pass."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """w += Δw with Δw = -η ∂E/∂w + α Δw(t-1), in place."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if g.shape != p.data.shape:
                raise ValueError(
                    f"SGD: gradient of parameter {i} has shape {g.shape}, parameter {p.shape}"
                )
            dw = self._delta[i]
            if dw is None:
                dw = self._delta[i] = np.zeros_like(p.data)
            if self.momentum:
                tmp = self._tmp[i]
                if tmp is None:
                    tmp = self._tmp[i] = np.empty_like(p.data)
                dw *= self.momentum  # α Δw(t-1)
                np.multiply(g, self.lr, out=tmp)
                dw -= tmp  # - η ∂E/∂w
            else:
                np.multiply(g, -self.lr, out=dw)
            p.data += dw


def _flat(params: list[Tensor]) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in params]).astype(np.float64)


def _assign(params: list[Tensor], w: np.ndarray) -> None:
    i = 0
    for p in params:
        p.data[...] = w[i : i + p.data.size].reshape(p.data.shape)
        i += p.data.size


def jacobian(
    residual_fn: Callable[[], Tensor], params: Iterable[Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals e (flattened to m entries) and the Jacobian J[i, :] = ∂e_i/∂w (m x n).

    Reverse mode, one backward pass per residual on the same graph: row i is the gradient
    of e_i, obtained by seeding the backward pass with the i-th unit vector. The n
    parameters are taken in order, each flattened (C order). Returns float64 arrays;
    parameter gradients are left as None.
    """
    ps = _param_list(params, "jacobian")
    e = residual_fn()
    if not isinstance(e, Tensor):
        raise TypeError(f"jacobian: residual_fn must return a Tensor, got {type(e).__name__}")
    m = e.data.size
    n = sum(p.data.size for p in ps)
    J = np.zeros((m, n))
    if e.requires_grad:
        seed = np.zeros(e.shape, dtype=e.dtype)
        flat_seed = seed.reshape(-1)
        for i in range(m):
            for p in ps:
                p.grad = None
            flat_seed[:] = 0
            flat_seed[i] = 1
            e.backward(seed)
            J[i] = np.concatenate(
                [(p.grad if p.grad is not None else np.zeros_like(p.data)).ravel() for p in ps]
            )
    for p in ps:
        p.grad = None
    return e.data.astype(np.float64).ravel(), J


class LevenbergMarquardt:
    """Levenberg-Marquardt for small least-squares problems, E = ½‖e‖².

    Each :meth:`step` computes the residuals e and their Jacobian J (by :func:`jacobian`)
    and solves

        Δw = -(JᵀJ + μI)⁻¹ Jᵀe.

    If the loss at w + Δw is smaller the step is accepted and μ /= ``mu_dec`` (towards
    Gauss-Newton); otherwise it is undone, μ is multiplied by ``mu_inc`` (towards a short
    gradient-descent step) and the solve is retried, at most ``max_tries`` times.

    ``residual_fn()`` takes no argument and returns the residual Tensor computed from the
    parameters, e.g. ``lambda: model(X) - y`` (any shape; flattened to m entries).
    After a step, ``mu`` holds the current damping and ``accepted`` whether it moved.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        mu: float = 1e-2,
        mu_inc: float = 10.0,
        mu_dec: float = 10.0,
        max_tries: int = 10,
    ) -> None:
        self.params = _param_list(params, "LevenbergMarquardt")
        if not mu > 0 or not mu_inc > 1 or not mu_dec > 1:
            raise ValueError(
                f"LevenbergMarquardt: need mu > 0, mu_inc > 1, mu_dec > 1; got {mu}, "
                f"{mu_inc}, {mu_dec}"
            )
        self.mu = float(mu)
        self.mu_inc = float(mu_inc)
        self.mu_dec = float(mu_dec)
        self.max_tries = int(max_tries)
        self.accepted = False

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self, residual_fn: Callable[[], Tensor]) -> float:
        """One damped Gauss-Newton step; returns the loss ½‖e‖² after it (or before it, if
        no step within ``max_tries`` decreased the loss)."""
        e, J = jacobian(residual_fn, self.params)
        loss = 0.5 * float(e @ e)
        if not np.isfinite(loss):
            raise FloatingPointError(f"LevenbergMarquardt: the loss is {loss}")
        w = _flat(self.params)
        JtJ = J.T @ J
        Jte = J.T @ e
        eye = np.eye(len(w))
        self.accepted = False
        for _ in range(self.max_tries):
            dw = np.linalg.solve(JtJ + self.mu * eye, -Jte)
            _assign(self.params, w + dw)
            with no_grad():
                e_new = residual_fn().data.astype(np.float64).ravel()
            new_loss = 0.5 * float(e_new @ e_new)
            if new_loss < loss:
                self.mu /= self.mu_dec
                self.accepted = True
                return new_loss
            _assign(self.params, w)
            self.mu = min(self.mu * self.mu_inc, 1e16)  # capped: at a minimum no step helps
        return loss
