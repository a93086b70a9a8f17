"""Optimisers: gradient descent with momentum, and Levenberg-Marquardt.

Both update the parameter Tensors in place (``p.data``), so a model and its optimiser
keep sharing the same arrays; each update raises the tensor's ``version``, so a graph recorded
before a step cannot be backpropagated after it (recompute the loss). A parameter may appear
only once in the list. Second-order methods see the parameters as one vector w:
:func:`get_flat` and :func:`set_flat` convert, :func:`flat_grad`, :func:`jacobian` and
:func:`hessian_fd` give the derivatives of a loss or residual in that view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .tensor import Tensor, no_grad

__all__ = [
    "SGD",
    "LevenbergMarquardt",
    "get_flat",
    "set_flat",
    "flat_grad",
    "jacobian",
    "hessian_fd",
]


def _param_list(params: Iterable[Tensor], who: str) -> list[Tensor]:
    if hasattr(params, "parameters"):  # a model (bpkit.nn.Module) instead of its parameters
        raise TypeError(f"{who}: pass model.parameters(), not the {type(params).__name__}")
    ps = list(params)
    if not ps:
        raise ValueError(f"{who}: got an empty parameter list")
    first: dict[int, int] = {}
    for i, p in enumerate(ps):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(f"{who}: parameter {i} is not a Tensor with requires_grad=True")
        j = first.setdefault(id(p), i)
        if j != i:  # it would be updated twice per step
            raise ValueError(
                f"{who}: parameter {i} is the same Tensor as parameter {j} (shape "
                f"{p.data.shape}); list each parameter once"
            )
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


def get_flat(params: Iterable[Tensor]) -> np.ndarray:
    """All parameters as one float64 vector w, each flattened in C order, in the given order."""
    return np.concatenate([p.data.ravel() for p in params]).astype(np.float64)


def set_flat(params: Iterable[Tensor], w: np.ndarray) -> None:
    """Copy the entries of the vector w back into the parameters (the inverse of get_flat)."""
    ps = list(params)
    w = np.asarray(w)
    n = sum(p.data.size for p in ps)
    if w.shape != (n,):
        raise ValueError(f"set_flat: w must have shape ({n},) for these parameters, got {w.shape}")
    i = 0
    for p in ps:
        p.assign(w[i : i + p.data.size].reshape(p.data.shape))  # in place, version + 1
        i += p.data.size


def flat_grad(loss_fn: Callable[[], Tensor], params: Iterable[Tensor]) -> tuple[float, np.ndarray]:
    """The loss C = ``loss_fn()`` at the current parameters and its gradient ∇_w C as one
    flat vector, by one backward pass. Parameter gradients are left as None."""
    ps = _param_list(params, "flat_grad")
    for p in ps:
        p.grad = None
    loss = loss_fn()
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        raise TypeError("flat_grad: loss_fn must return a one-element Tensor")
    loss.backward()
    g = np.concatenate(
        [(p.grad if p.grad is not None else np.zeros_like(p.data)).ravel() for p in ps]
    ).astype(np.float64)
    for p in ps:
        p.grad = None
    return loss.item(), g


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


def hessian_fd(
    loss_fn: Callable[[], Tensor], params: Iterable[Tensor], h: float = 1e-5
) -> np.ndarray:
    """The Hessian H[j, k] = ∂²C/∂w_j∂w_k by central differences of the backpropagated
    gradient, H[j] ≈ (∇C(w + h e_j) - ∇C(w - h e_j)) / 2h, symmetrised as (H + Hᵀ)/2.

    2n backward passes for n weights, with an error of order h² (plus rounding of order
    ε/h); the parameters are restored afterwards.
    """
    ps = _param_list(params, "hessian_fd")
    w = get_flat(ps)
    rows = []
    try:
        for j in range(w.size):
            e_j = np.zeros_like(w)
            e_j[j] = h
            set_flat(ps, w + e_j)
            g_plus = flat_grad(loss_fn, ps)[1]
            set_flat(ps, w - e_j)
            g_minus = flat_grad(loss_fn, ps)[1]
            rows.append((g_plus - g_minus) / (2 * h))
    finally:
        set_flat(ps, w)
    H = np.array(rows)
    return (H + H.T) / 2


class LevenbergMarquardt:
    """Levenberg-Marquardt for small least-squares problems, E = ½‖e‖².

    Each :meth:`step` computes the residuals e and their Jacobian J (by :func:`jacobian`)
    and solves

        Δw = -(JᵀJ + μI)⁻¹ Jᵀe.

    If the loss at w + Δw is smaller the step is accepted and μ /= ``mu_dec`` (towards
    Gauss-Newton); otherwise it is undone, μ is multiplied by ``mu_inc`` (towards a short
    gradient-descent step) and the solve is retried, at most ``max_tries`` times.

    μ never falls below ``mu_min`` (default 1e-12): without a floor, a long run of accepted
    steps drives μ to 0, where it can no longer grow and a rank-deficient JᵀJ makes the
    system singular. Should the damped system still be singular to working precision, Δw
    is its least-squares (minimum-norm) solution (``np.linalg.lstsq``).

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
        mu_min: float = 1e-12,
    ) -> None:
        self.params = _param_list(params, "LevenbergMarquardt")
        if not mu > 0 or not mu_inc > 1 or not mu_dec > 1 or not mu_min > 0:
            raise ValueError(
                f"LevenbergMarquardt: need mu > 0, mu_inc > 1, mu_dec > 1, mu_min > 0; got "
                f"{mu}, {mu_inc}, {mu_dec}, {mu_min}"
            )
        self.mu = float(mu)
        self.mu_min = float(mu_min)
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
        w = get_flat(self.params)
        JtJ = J.T @ J
        Jte = J.T @ e
        eye = np.eye(len(w))
        self.accepted = False
        for _ in range(self.max_tries):
            self.mu = max(self.mu, self.mu_min)
            try:
                dw = np.linalg.solve(JtJ + self.mu * eye, -Jte)
            except np.linalg.LinAlgError:  # singular: the minimum-norm least-squares step
                dw = np.linalg.lstsq(JtJ + self.mu * eye, -Jte, rcond=None)[0]
            set_flat(self.params, w + dw)
            with no_grad():
                e_new = residual_fn().data.astype(np.float64).ravel()
            new_loss = 0.5 * float(e_new @ e_new)
            if new_loss < loss:
                self.mu = max(self.mu / self.mu_dec, self.mu_min)
                self.accepted = True
                return new_loss
            set_flat(self.params, w)
            self.mu = min(self.mu * self.mu_inc, 1e16)  # capped: at a minimum no step helps
        return loss
