"""Optimisers: first-order methods (SGD with momentum, RMSProp, Adam, AdamW), gradient
clipping, and Levenberg-Marquardt.

Each optimiser updates the parameter Tensors in place (``p.data``), so a model and its
optimiser keep sharing the same arrays; each update raises the tensor's ``version``, so a
graph recorded before a step cannot be backpropagated after it (recompute the loss). A
parameter may appear only once in the list. The first-order rules follow PyTorch's
``torch.optim`` (same arguments, defaults and update equations), so a training loop can move
between the two. Second-order methods see the parameters as one vector w:
:func:`get_flat` and :func:`set_flat` convert, :func:`flat_grad`, :func:`jacobian`,
:func:`hvp` and :func:`hessian` (exact, forward over reverse) and :func:`hessian_fd`
(finite differences) give the derivatives of a loss or residual in that view.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from . import engine
from .tensor import Tensor, no_grad
from .transforms import push_tangents

__all__ = [
    "Optimizer",
    "SGD",
    "RMSProp",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "LevenbergMarquardt",
    "get_flat",
    "set_flat",
    "flat_grad",
    "jacobian",
    "hvp",
    "hessian",
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


def _check(ok: bool, who: str, name: str, want: str, value: object) -> None:
    """Raise ValueError naming the argument unless ``ok``."""
    if not ok:
        raise ValueError(f"{who}: {name} must {want}, got {value!r}")


class Optimizer:
    """What the first-order optimisers share: the parameter list (each a Tensor with
    ``requires_grad=True``, listed once), the learning rate η = ``lr`` > 0, the weight decay
    λ = ``weight_decay`` ≥ 0, :meth:`zero_grad`, and a :meth:`step` that updates each
    parameter whose ``grad`` is set and skips those whose ``grad`` is None.

    ``state[i]`` holds the running quantities of parameter i (arrays of its shape and
    dtype), named as in the subclass's equations. ``lr`` may be changed between steps.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> None:
        who = type(self).__name__
        self.params = _param_list(params, who)
        _check(lr > 0, who, "lr", "be > 0", lr)
        _check(weight_decay >= 0, who, "weight_decay", "be >= 0", weight_decay)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``) before the next backward pass."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if g.shape != p.data.shape:
                raise ValueError(
                    f"{type(self).__name__}: gradient of parameter {i} has shape {g.shape}, "
                    f"parameter {p.shape}"
                )
            self._update(p, g, self.state[i])

    def _update(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _with_l2(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """g + λw (the gradient of E + ½λ‖w‖²) in a buffer, or g itself when λ = 0."""
        if not self.weight_decay:
            return g
        buf = _buffer(state, "g", p.data)
        np.multiply(p.data, self.weight_decay, out=buf)
        buf += g
        return buf


def _buffer(state: dict[str, np.ndarray], name: str, like: np.ndarray) -> np.ndarray:
    """state[name], created as zeros shaped like ``like`` on first use."""
    buf = state.get(name)
    if buf is None:
        buf = state[name] = np.zeros_like(like)
    return buf


class SGD(Optimizer):
    r"""Gradient descent with momentum, in the form of Rumelhart, Hinton & Williams (1986).
    With :math:`g(t) = \partial E/\partial w` at :math:`w(t)`, learning rate
    :math:`\eta` = ``lr``, momentum :math:`\alpha` = ``momentum`` and weight decay
    :math:`\lambda` = ``weight_decay``:

    .. math::

        \begin{aligned}
        g(t) &\leftarrow g(t) + \lambda\, w(t)
            && \text{if } \lambda > 0 \text{ (the gradient of } E + \tfrac12\lambda\|w\|^2)\\
        \Delta w(t) &= -\eta\, g(t) + \alpha\, \Delta w(t-1), && \Delta w(0) = 0\\
        w(t+1) &= w(t) + \Delta w(t) && \text{nesterov=False}\\
        w(t+1) &= w(t) - \eta\, g(t) + \alpha\, \Delta w(t)
            && \text{nesterov=True (the step looks ahead)}
        \end{aligned}

    :math:`\alpha = 0` is plain gradient descent, :math:`w(t+1) = w(t) - \eta\, g(t)`.
    PyTorch's ``torch.optim.SGD`` (dampening 0) keeps
    :math:`v(t) = \alpha\, v(t-1) + g(t)` and steps :math:`w \leftarrow w - \eta\, v(t)`
    (Nesterov: :math:`w \leftarrow w - \eta\,(g(t) + \alpha\, v(t))`). For a constant
    :math:`\eta` the two are the same rule, with :math:`\Delta w(t) = -\eta\, v(t)`; they
    differ only when :math:`\eta` is changed during training (here the old
    :math:`\Delta w` keeps the old :math:`\eta`, there :math:`v` is multiplied by the new
    one).

    ``state[i]["delta"]`` is :math:`\Delta w(t-1)` of parameter i.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        _check(0.0 <= momentum < 1.0, "SGD", "momentum", "lie in [0, 1)", momentum)
        if nesterov and not momentum > 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        g = self._with_l2(p, g, state)
        dw = _buffer(state, "delta", p.data)
        if not self.momentum:
            np.multiply(g, -self.lr, out=dw)
            p.data += dw
            return
        tmp = state.get("tmp")  # η g(t)
        if tmp is None:
            tmp = state["tmp"] = np.empty_like(p.data)
        dw *= self.momentum  # α Δw(t-1)
        np.multiply(g, self.lr, out=tmp)
        dw -= tmp  # - η g(t)
        if self.nesterov:
            step = dw * self.momentum  # α Δw(t)
            step -= tmp
            p.data += step  # - η g(t) + α Δw(t)
        else:
            p.data += dw


class RMSProp(Optimizer):
    r"""RMSProp (Tieleman & Hinton, 2012): each weight's step is divided by a running root
    mean square of its own gradient. With :math:`g(t) = \partial E/\partial w`,
    :math:`\eta` = ``lr``, :math:`\rho` = ``alpha``, :math:`\epsilon` = ``eps``,
    :math:`\lambda` = ``weight_decay``, :math:`\mu` = ``momentum``, all operations
    elementwise:

    .. math::

        \begin{aligned}
        g(t) &\leftarrow g(t) + \lambda\, w(t) && \text{if } \lambda > 0\\
        v(t) &= \rho\, v(t-1) + (1 - \rho)\, g(t)^2, && v(0) = 0\\
        w(t+1) &= w(t) - \eta\, g(t) / \bigl(\sqrt{v(t)} + \epsilon\bigr)
            && \mu = 0\\
        b(t) &= \mu\, b(t-1) + g(t) / \bigl(\sqrt{v(t)} + \epsilon\bigr), && b(0) = 0\\
        w(t+1) &= w(t) - \eta\, b(t) && \mu > 0
        \end{aligned}

    as ``torch.optim.RMSprop`` (not centred): :math:`\epsilon` is added after the square
    root.
    ``state[i]`` holds ``"v"`` (and ``"b"`` with momentum).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        _check(0.0 <= alpha < 1.0, "RMSProp", "alpha", "lie in [0, 1)", alpha)
        _check(eps > 0, "RMSProp", "eps", "be > 0", eps)
        _check(0.0 <= momentum < 1.0, "RMSProp", "momentum", "lie in [0, 1)", momentum)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)

    def _update(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        g = self._with_l2(p, g, state)
        v = _buffer(state, "v", p.data)
        v *= self.alpha
        v += (1.0 - self.alpha) * np.square(g)
        step = np.sqrt(v)
        step += self.eps
        np.divide(g, step, out=step)  # g(t) / (√v(t) + ε)
        if self.momentum:
            b = _buffer(state, "b", p.data)
            b *= self.momentum
            b += step
            step = b * self.lr
        else:
            step *= self.lr
        p.data -= step


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015): running averages of the gradient and of its square,
    corrected for their start at zero, give each weight its own step. With
    :math:`g(t) = \partial E/\partial w`, :math:`\eta` = ``lr``,
    :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` =
    ``weight_decay``, :math:`t = 1, 2, \dots` the number of steps this parameter has taken,
    all operations elementwise:

    .. math::

        \begin{aligned}
        g(t) &\leftarrow g(t) + \lambda\, w(t) && \text{if } \lambda > 0 \text{ (an L2 penalty)}\\
        m(t) &= \beta_1 m(t-1) + (1 - \beta_1)\, g(t), && m(0) = 0\\
        v(t) &= \beta_2 v(t-1) + (1 - \beta_2)\, g(t)^2, && v(0) = 0\\
        \hat m(t) &= m(t) / (1 - \beta_1^t),\quad \hat v(t) = v(t) / (1 - \beta_2^t)
            && \text{bias correction}\\
        w(t+1) &= w(t) - \eta\, \hat m(t) / \bigl(\sqrt{\hat v(t)} + \epsilon\bigr)
        \end{aligned}

    as ``torch.optim.Adam``. At :math:`t = 1`, :math:`\hat m = g` and :math:`\hat v = g^2`,
    so the first step is :math:`\eta\, g / (\sqrt{g^2} + \epsilon)`, about :math:`\eta` in
    size for every weight. The L2 term passes through the scaling by
    :math:`1/\sqrt{\hat v}` (weights with large gradients are decayed less); :class:`AdamW`
    decouples it. ``state[i]`` holds ``"m"``, ``"v"`` and the step count ``"t"``.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        who = type(self).__name__
        beta1, beta2 = betas
        _check(0.0 <= beta1 < 1.0, who, "betas[0]", "lie in [0, 1)", beta1)
        _check(0.0 <= beta2 < 1.0, who, "betas[1]", "lie in [0, 1)", beta2)
        _check(eps > 0, who, "eps", "be > 0", eps)
        self.betas = (float(beta1), float(beta2))
        self.eps = float(eps)

    def _update(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        g = self._with_l2(p, g, state)
        self._adam_step(p, g, state)

    def _adam_step(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        beta1, beta2 = self.betas
        m = _buffer(state, "m", p.data)
        v = _buffer(state, "v", p.data)
        t = state["t"] = state.get("t", 0) + 1
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * np.square(g)
        step = v / (1.0 - beta2**t)  # v̂(t)
        np.sqrt(step, out=step)
        step += self.eps
        np.divide(m, step, out=step)  # m(t) / (√v̂(t) + ε)
        step *= self.lr / (1.0 - beta1**t)  # η m̂(t) / (√v̂(t) + ε)
        p.data -= step


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019): the weights shrink by
    a fixed fraction :math:`\eta\lambda` per step, outside the adaptive scaling, instead of
    adding :math:`\lambda w` to the gradient. With the notation of :class:`Adam` and
    :math:`\lambda` = ``weight_decay``:

    .. math::

        \begin{aligned}
        w'(t) &= (1 - \eta\lambda)\, w(t) && \text{decay, before the Adam step}\\
        m(t), v(t), \hat m(t), \hat v(t) &\text{ from } g(t) \text{ as in Adam}
            && \text{(} g \text{ without } \lambda w)\\
        w(t+1) &= w'(t) - \eta\, \hat m(t) / \bigl(\sqrt{\hat v(t)} + \epsilon\bigr)
        \end{aligned}

    as ``torch.optim.AdamW`` (which ties the decay to :math:`\eta`; the paper writes a separate
    schedule multiplier). Every weight is decayed at the same rate, whatever its gradient
    scale, which is the point of decoupling.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _update(self, p: Tensor, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.weight_decay:
            p.data *= 1.0 - self.lr * self.weight_decay
        self._adam_step(p, g, state)


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    r"""Rescale the gradients together so that their joint norm is at most ``max_norm``;
    return the norm before clipping.

    The gradients count as one vector :math:`g` (parameters whose ``grad`` is None are left
    out):

    .. math::

        \|g\| = \sqrt{\textstyle\sum_p \|g_p\|^2}, \qquad
        g_p \leftarrow g_p \cdot \frac{\text{max\_norm}}{\|g\| + 10^{-6}}
        \quad \text{if that factor is} < 1

    (otherwise nothing changes), as ``torch.nn.utils.clip_grad_norm_``; the direction of
    the step is kept, only its length is capped. Each clipped ``grad`` is a new array (a
    gradient array may be shared). Raises FloatingPointError if :math:`\|g\|` is NaN or infinite:
    then no scaling gives a usable step.
    """
    ps = _param_list(params, "clip_grad_norm")
    _check(max_norm > 0, "clip_grad_norm", "max_norm", "be > 0", max_norm)
    grads = [p for p in ps if p.grad is not None]
    total = math.sqrt(sum(float(np.linalg.norm(p.grad)) ** 2 for p in grads))
    if not math.isfinite(total):
        raise FloatingPointError(
            f"clip_grad_norm: the gradient norm is {total}; a NaN or infinite gradient "
            "cannot be clipped (look for an overflow or a NaN in the loss)"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in grads:
            p.grad = p.grad * coef
    return total


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


def _recorded_gradient(
    loss_fn: Callable[[], Tensor], ps: list[Tensor], who: str
) -> list[Tensor | None]:
    """∂C/∂p for every parameter p, as Tensors whose backward pass is recorded."""
    old, engine.modes.grad = engine.modes.grad, True  # the backward pass must be recorded
    try:
        loss = loss_fn()
        if not isinstance(loss, Tensor) or loss.data.size != 1:
            raise TypeError(f"{who}: loss_fn must return a one-element Tensor")
        if not loss.requires_grad:
            return [None] * len(ps)
        adjoint = Tensor(np.ones_like(loss.data))
        return engine.backward(loss, adjoint, True, ps)
    finally:
        engine.modes.grad = old


def _tangent_of_gradient(
    grads: list[Tensor | None], ps: list[Tensor], v: np.ndarray
) -> np.ndarray:
    """d(∇C) along dw = v: the tangents of the recorded backward pass, pushed forward
    from the parameters with each primitive's JVP (one flat float64 vector)."""
    tangent: dict[Tensor, np.ndarray] = {}
    i = 0
    for p in ps:
        tangent[p] = v[i : i + p.data.size].reshape(p.shape).astype(p.dtype)
        i += p.data.size
    parts = [
        np.zeros(p.data.size) if t is None else np.ravel(t)
        for p, t in zip(ps, push_tangents(grads, tangent), strict=True)
    ]
    return np.concatenate(parts).astype(np.float64)


def hvp(loss_fn: Callable[[], Tensor], params: Iterable[Tensor], v: np.ndarray) -> np.ndarray:
    """The Hessian-vector product H v, H[j, k] = ∂²C/∂w_j∂w_k, exact to rounding.

    Forward over reverse (Pearlmutter 1994), as :func:`bpkit.hvp` but for a loss over
    parameter Tensors: the backward pass of C = ``loss_fn()`` is recorded
    (``create_graph``), then the tangents of its nodes are carried forward from dw = v
    (flat, in :func:`get_flat` order); the tangent of ∇_w C is H v. Costs a few gradients.
    """
    ps = _param_list(params, "hvp")
    w = get_flat(ps)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"hvp: v must have shape {w.shape} for these parameters, got {v.shape}")
    return _tangent_of_gradient(_recorded_gradient(loss_fn, ps, "hvp"), ps, v)


def hessian(loss_fn: Callable[[], Tensor], params: Iterable[Tensor]) -> np.ndarray:
    """The Hessian H[j, k] = ∂²C/∂w_j∂w_k of C = ``loss_fn()``, exact to rounding.

    The backward pass is recorded once; column k is its tangent along dw = e_k
    (:func:`hvp`), so P weights cost one recorded gradient and P tangent sweeps; the
    result is symmetrised, (H + Hᵀ)/2, which changes it only by rounding.
    """
    ps = _param_list(params, "hessian")
    n = get_flat(ps).size
    grads = _recorded_gradient(loss_fn, ps, "hessian")
    H = np.column_stack([_tangent_of_gradient(grads, ps, e_k) for e_k in np.eye(n)])
    return (H + H.T) / 2


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
