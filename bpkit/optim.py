"""Optimisers with ``torch.optim``'s arguments and rules (SGD, RMSProp, Adam, AdamW),
gradient clipping, Levenberg-Marquardt, and derivatives over the parameters as one vector w.
A step updates ``p.data`` in place, raising its ``version``: recompute the loss after it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from . import engine
from .tensor import Tensor, no_grad
from .transforms import push_tangents

__all__ = [
    "Optimizer", "SGD", "RMSProp", "Adam", "AdamW", "clip_grad_norm", "LevenbergMarquardt",
    "get_flat", "set_flat", "flat_grad", "jacobian", "hvp", "hessian", "hessian_fd",
]


def _param_list(params: Iterable[Tensor], who: str) -> list[Tensor]:
    """The parameters as a list: not empty, each a Tensor with requires_grad, listed once."""
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
            raise ValueError(f"{who}: parameter {i} is the same Tensor as parameter {j} "
                             f"(shape {p.data.shape}); list each parameter once")
    return ps


def _check(ok: bool, who: str, name: str, want: str, value: object) -> None:
    """Raise ValueError naming the argument unless ``ok``."""
    if not ok:
        raise ValueError(f"{who}: {name} must {want}, got {value!r}")


def _buffer(state: dict, name: str, like: np.ndarray) -> np.ndarray:
    """state[name], created as zeros shaped like ``like`` on first use."""
    buf = state.get(name)
    if buf is None:
        buf = state[name] = np.zeros_like(like)
    return buf


def _zero_grads(ps: list[Tensor]) -> None:
    for p in ps:
        p.grad = None


def _pop_grads(ps: list[Tensor]) -> np.ndarray:
    """The gradients as one float64 vector (zeros where None); then sets them to None."""
    grads = [np.zeros_like(p.data) if p.grad is None else p.grad for p in ps]
    _zero_grads(ps)
    return np.concatenate([g.ravel() for g in grads]).astype(np.float64)


def _pieces(w: np.ndarray, ps: list[Tensor]) -> Iterator[np.ndarray]:
    """The flat vector w cut into views shaped like the parameters, in order."""
    i = 0
    for p in ps:
        yield w[i : i + p.data.size].reshape(p.data.shape)
        i += p.data.size


class Optimizer:
    """Base of the first-order optimisers: learning rate η = ``lr``, weight decay
    λ = ``weight_decay``; ``state[i]`` holds parameter i's running arrays."""

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> None:
        who = type(self).__name__
        self.params = _param_list(params, who)
        _check(lr > 0, who, "lr", "be > 0", lr)
        _check(weight_decay >= 0, who, "weight_decay", "be >= 0", weight_decay)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``) before the next backward pass."""
        _zero_grads(self.params)

    def step(self) -> None:
        """Update in place every parameter whose ``grad`` is not None."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is not None:
                name, want = f"the gradient of parameter {i}", f"have shape {p.shape}"
                _check(g.shape == p.shape, type(self).__name__, name, want, g.shape)
                self._update(p, g, self.state[i])

    def _update(self, p: Tensor, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def _decay(self, p: Tensor, g: np.ndarray, state: dict) -> np.ndarray:
        """g + λw (the gradient of E + ½λ‖w‖²) in a buffer, or g itself when λ = 0."""
        if not self.weight_decay:
            return g
        buf = _buffer(state, "g", p.data)
        np.multiply(p.data, self.weight_decay, out=buf)
        buf += g
        return buf


class SGD(Optimizer):
    r"""Gradient descent with momentum (Rumelhart, Hinton & Williams, 1986); :math:`\eta` =
    ``lr``, :math:`\alpha` = ``momentum``, :math:`\lambda` = ``weight_decay``:

    .. math::

        g = \partial E/\partial w + \lambda w, \qquad
        \Delta w \leftarrow \alpha\, \Delta w - \eta\, g,

        w \leftarrow w + \Delta w \quad
        (\text{nesterov: } w \leftarrow w - \eta\, g + \alpha\, \Delta w).

    For a fixed :math:`\eta` this is ``torch.optim.SGD``
    (:math:`v \leftarrow \alpha v + g`, :math:`w \leftarrow w - \eta v`) with
    :math:`\Delta w = -\eta v`. ``state[i]["delta"]`` is :math:`\Delta w`."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        _check(0.0 <= momentum < 1.0, "SGD", "momentum", "lie in [0, 1)", momentum)
        if nesterov and not momentum > 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, p: Tensor, g: np.ndarray, state: dict) -> None:
        g = self._decay(p, g, state)
        dw = _buffer(state, "delta", p.data)
        if not self.momentum:
            np.multiply(g, -self.lr, out=dw)
            p.data += dw
            return
        eta_g = g * self.lr
        dw *= self.momentum
        dw -= eta_g
        p.data += (dw * self.momentum - eta_g) if self.nesterov else dw


class RMSProp(Optimizer):
    r"""RMSProp (Tieleman & Hinton, 2012) as ``torch.optim.RMSprop``; :math:`\rho` =
    ``alpha``, :math:`\epsilon` = ``eps``, :math:`\mu` = ``momentum``, elementwise:

    .. math::

        g = \partial E/\partial w + \lambda w, \qquad
        v \leftarrow \rho v + (1 - \rho)\, g^2, \qquad
        w \leftarrow w - \frac{\eta\, g}{\sqrt{v} + \epsilon};

    with :math:`\mu > 0`, :math:`b \leftarrow \mu b + g / (\sqrt{v} + \epsilon)` and
    :math:`w \leftarrow w - \eta b`. ``state[i]`` holds "v" (and "b")."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        _check(0.0 <= alpha < 1.0, "RMSProp", "alpha", "lie in [0, 1)", alpha)
        _check(eps > 0, "RMSProp", "eps", "be > 0", eps)
        _check(0.0 <= momentum < 1.0, "RMSProp", "momentum", "lie in [0, 1)", momentum)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)

    def _update(self, p: Tensor, g: np.ndarray, state: dict) -> None:
        g = self._decay(p, g, state)
        v = _buffer(state, "v", p.data)
        v *= self.alpha
        v += (1.0 - self.alpha) * np.square(g)
        step = np.sqrt(v)
        step += self.eps
        np.divide(g, step, out=step)  # g / (√v + ε)
        if self.momentum:
            b = _buffer(state, "b", p.data)
            b *= self.momentum
            b += step
            step = b
        p.data -= step * self.lr


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) as ``torch.optim.Adam``; :math:`(\beta_1, \beta_2)` =
    ``betas``, at step :math:`t = 1, 2, \dots`, elementwise:

    .. math::

        g = \partial E/\partial w + \lambda w, \qquad
        m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2,

        w \leftarrow w - \eta\, \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \epsilon}.

    ``state[i]`` holds "m", "v" and the step count "t"."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        beta1, beta2 = betas
        _check(0.0 <= beta1 < 1.0, who, "betas[0]", "lie in [0, 1)", beta1)
        _check(0.0 <= beta2 < 1.0, who, "betas[1]", "lie in [0, 1)", beta2)
        _check(eps > 0, who, "eps", "be > 0", eps)
        self.betas, self.eps = (float(beta1), float(beta2)), float(eps)

    def _update(self, p: Tensor, g: np.ndarray, state: dict) -> None:
        g = self._decay(p, g, state)
        beta1, beta2 = self.betas
        m, v = _buffer(state, "m", p.data), _buffer(state, "v", p.data)
        t = state["t"] = state.get("t", 0) + 1
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * np.square(g)
        step = v / (1.0 - beta2**t)  # v̂
        np.sqrt(step, out=step)
        step += self.eps
        np.divide(m, step, out=step)
        step *= self.lr / (1.0 - beta1**t)  # η m̂ / (√v̂ + ε)
        p.data -= step


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019) as
    ``torch.optim.AdamW``: :math:`w \leftarrow (1 - \eta\lambda)\, w`, then the Adam step
    with :math:`g = \partial E/\partial w` (no :math:`\lambda w` added to :math:`g`)."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, p: Tensor, g: np.ndarray, state: dict) -> np.ndarray:
        if self.weight_decay:
            p.data *= 1.0 - self.lr * self.weight_decay
        return g


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    r""":math:`g \leftarrow g \cdot \text{max\_norm} / (\|g\| + 10^{-6})` if that factor is
    below 1, :math:`g` all gradients as one vector (``torch.nn.utils.clip_grad_norm_``).
    Returns :math:`\|g\|` before clipping; clipped gradients are new arrays. A NaN or
    infinite :math:`\|g\|` raises FloatingPointError."""
    ps = _param_list(params, "clip_grad_norm")
    _check(max_norm > 0, "clip_grad_norm", "max_norm", "be > 0", max_norm)
    grads = [p for p in ps if p.grad is not None]
    total = math.sqrt(sum(float(np.linalg.norm(p.grad)) ** 2 for p in grads))
    if not math.isfinite(total):
        raise FloatingPointError(f"clip_grad_norm: the gradient norm is {total}; a NaN or "
                                 "infinite gradient cannot be clipped (look for an overflow)")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in grads:
            p.grad = p.grad * coef
    return total


def get_flat(params: Iterable[Tensor]) -> np.ndarray:
    """All parameters as one float64 vector w, each flattened in C order, in list order."""
    return np.concatenate([p.data.ravel() for p in params]).astype(np.float64)


def set_flat(params: Iterable[Tensor], w: np.ndarray) -> None:
    """Copy the vector w back into the parameters, in place (the inverse of get_flat)."""
    ps = list(params)
    w = np.asarray(w)
    n = sum(p.data.size for p in ps)
    if w.shape != (n,):
        raise ValueError(f"set_flat: w must have shape ({n},) for these parameters, "
                         f"got {w.shape}")
    for p, part in zip(ps, _pieces(w, ps), strict=True):
        p.assign(part)


def flat_grad(loss_fn: Callable[[], Tensor],
              params: Iterable[Tensor]) -> tuple[float, np.ndarray]:
    """C = ``loss_fn()`` and ∇_w C as a flat vector, by one backward pass; the parameters'
    gradients are left as None."""
    ps = _param_list(params, "flat_grad")
    _zero_grads(ps)
    loss = loss_fn()
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        raise TypeError("flat_grad: loss_fn must return a one-element Tensor")
    loss.backward()
    return loss.item(), _pop_grads(ps)


def jacobian(residual_fn: Callable[[], Tensor],
             params: Iterable[Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """The residuals e = ``residual_fn()`` (flattened) and J[i, :] = ∂e_i/∂w, float64: row i
    is a backward pass seeded with the i-th unit vector. Gradients are left as None."""
    ps = _param_list(params, "jacobian")
    e = residual_fn()
    if not isinstance(e, Tensor):
        raise TypeError(f"jacobian: residual_fn must return a Tensor, got {type(e).__name__}")
    J = np.zeros((e.data.size, sum(p.data.size for p in ps)))
    _zero_grads(ps)
    if e.requires_grad:
        for i in range(e.data.size):
            seed = np.zeros(e.data.size, dtype=e.dtype)
            seed[i] = 1
            e.backward(seed.reshape(e.shape))
            J[i] = _pop_grads(ps)
    return e.data.astype(np.float64).ravel(), J


def _recorded_gradient(loss_fn: Callable[[], Tensor], ps: list[Tensor],
                       who: str) -> list[Tensor | None]:
    """∂C/∂p for every parameter p, as Tensors whose backward pass is recorded."""
    old, engine.modes.grad = engine.modes.grad, True
    try:
        loss = loss_fn()
        if not isinstance(loss, Tensor) or loss.data.size != 1:
            raise TypeError(f"{who}: loss_fn must return a one-element Tensor")
        if not loss.requires_grad:
            return [None] * len(ps)
        return engine.backward(loss, Tensor(np.ones_like(loss.data)), True, ps)
    finally:
        engine.modes.grad = old


def _tangent_of_gradient(grads: list[Tensor | None], ps: list[Tensor],
                         v: np.ndarray) -> np.ndarray:
    """H v: the tangent of the recorded gradient along dw = v (flat), as a float64 vector."""
    tangent = {p: part.astype(p.dtype) for p, part in zip(ps, _pieces(v, ps), strict=True)}
    parts = [
        np.zeros(p.data.size) if t is None else np.ravel(t)
        for p, t in zip(ps, push_tangents(grads, tangent), strict=True)
    ]
    return np.concatenate(parts).astype(np.float64)


def hvp(loss_fn: Callable[[], Tensor], params: Iterable[Tensor], v: np.ndarray) -> np.ndarray:
    """H v, H[j, k] = ∂²C/∂w_j∂w_k of C = ``loss_fn()``, v flat as in :func:`get_flat`; exact
    to rounding, forward over reverse (Pearlmutter, 1994)."""
    ps = _param_list(params, "hvp")
    w = get_flat(ps)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"hvp: v must have shape {w.shape} for these parameters, "
                         f"got {v.shape}")
    return _tangent_of_gradient(_recorded_gradient(loss_fn, ps, "hvp"), ps, v)


def hessian(loss_fn: Callable[[], Tensor], params: Iterable[Tensor]) -> np.ndarray:
    """H[j, k] = ∂²C/∂w_j∂w_k of C = ``loss_fn()``, exact to rounding: column k is H e_k
    (:func:`hvp`) on one recorded gradient. Returns (H + Hᵀ)/2."""
    ps = _param_list(params, "hessian")
    n = sum(p.data.size for p in ps)
    grads = _recorded_gradient(loss_fn, ps, "hessian")
    H = np.column_stack([_tangent_of_gradient(grads, ps, e_k) for e_k in np.eye(n)])
    return (H + H.T) / 2


def hessian_fd(loss_fn: Callable[[], Tensor], params: Iterable[Tensor],
               h: float = 1e-5) -> np.ndarray:
    """H[j] ≈ (∇C(w + h e_j) - ∇C(w - h e_j)) / 2h by central differences, error O(h²);
    returns (H + Hᵀ)/2 and leaves the parameters as they were."""
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
    """Levenberg-Marquardt for E = ½‖e‖²: Δw = -(JᵀJ + μI)⁻¹ Jᵀe. A step that lowers E is
    kept and μ ← max(μ/``mu_dec``, ``mu_min``); otherwise it is undone and μ ← μ·``mu_inc``,
    at most ``max_tries`` times. ``mu`` and ``accepted`` tell the last step's outcome."""

    def __init__(self, params: Iterable[Tensor], mu: float = 1e-2, mu_inc: float = 10.0,
                 mu_dec: float = 10.0, max_tries: int = 10, mu_min: float = 1e-12) -> None:
        who = "LevenbergMarquardt"
        self.params = _param_list(params, who)
        _check(mu > 0, who, "mu", "be > 0", mu)
        _check(mu_inc > 1, who, "mu_inc", "be > 1", mu_inc)
        _check(mu_dec > 1, who, "mu_dec", "be > 1", mu_dec)
        _check(mu_min > 0, who, "mu_min", "be > 0", mu_min)
        self.mu, self.mu_inc, self.mu_dec = float(mu), float(mu_inc), float(mu_dec)
        self.mu_min, self.max_tries = float(mu_min), int(max_tries)
        self.accepted = False

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``)."""
        _zero_grads(self.params)

    def step(self, residual_fn: Callable[[], Tensor]) -> float:
        """One damped Gauss-Newton step on the residuals e = ``residual_fn()`` (any shape);
        returns ½‖e‖² after it, or before it if no try lowered it."""
        e, J = jacobian(residual_fn, self.params)
        loss = 0.5 * float(e @ e)
        if not np.isfinite(loss):
            raise FloatingPointError(f"LevenbergMarquardt: the loss is {loss}")
        w = get_flat(self.params)
        JtJ, Jte = J.T @ J, J.T @ e
        self.accepted = False
        for _ in range(self.max_tries):
            self.mu = max(self.mu, self.mu_min)
            A = JtJ + self.mu * np.eye(len(w))
            try:
                dw = np.linalg.solve(A, -Jte)
            except np.linalg.LinAlgError:  # singular: the minimum-norm least-squares step
                dw = np.linalg.lstsq(A, -Jte, rcond=None)[0]
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
