"""S networks of the same layer sizes trained as one batched computation: the weights into
layer l of all S form one Tensor (S, n_l, n_{l-1}), the biases one (S, 1, n_l). E_s depends
on network s's weights only, so one backward pass of E_all = Σ_s E_s gives each network its
own gradient, ∂E_all/∂W_s = ∂E_s/∂W_s."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .tensor import Tensor

__all__ = ["init", "forward", "squared_error", "train", "TrainResult"]

ACTIVATIONS = ("sigmoid", "tanh")


def init(
    sizes: Sequence[int], n_nets: int, scale: float = 0.3, seed: int = 0
) -> list[Tensor]:
    """[W^1, b^1, ..., W^L, b^L] of ``n_nets`` networks with layer sizes (n_0, ..., n_L):
    W^l (n_nets, n_l, n_{l-1}) and b^l (n_nets, 1, n_l), drawn in that order uniformly from
    [-scale, scale] (the 1986 initialisation) by ``np.random.default_rng(seed)``."""
    if len(sizes) < 2 or n_nets < 1:
        raise ValueError(f"init: need at least two layer sizes and one network, got {sizes}")
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        for shape in ((n_nets, n_out, n_in), (n_nets, 1, n_out)):
            params.append(Tensor(rng.uniform(-scale, scale, shape), requires_grad=True))
    return params


def forward(
    params: Sequence[Tensor], X: np.ndarray, activation: str = "sigmoid"
) -> list[Tensor]:
    """The activations [a^1, ..., a^L] of every network on the cases X
    (n_cases, n_0), each of shape (S, n_cases, n_l):

        z^l = a^{l-1} (W^l)^T + b^l,    a^l = f(z^l),

    with f = ``activation`` ("sigmoid" or "tanh") in every layer. One backward pass
    of the networks' summed errors gives each its own gradient (eq-7-independent).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"forward: activation must be one of {ACTIVATIONS}, got {activation!r}"
        )
    a, acts = Tensor(X), []
    for W, b in zip(params[::2], params[1::2], strict=True):
        z = a @ W.transpose(0, 2, 1) + b
        a = z.sigmoid() if activation == "sigmoid" else z.tanh()
        acts.append(a)
    return acts


def squared_error(a_L: Tensor, Y: np.ndarray) -> Tensor:
    """E_s = ½ Σ_c Σ_j (a^L_{jc} - y_{jc})² (S,) from the outputs a^L (S, n_cases, n_L) and
    targets Y (n_cases, n_L), summed (not averaged) over cases, as in 1986 (eq-9-error)."""
    return 0.5 * ((a_L - Y) ** 2).sum(axis=(1, 2))


@dataclass
class TrainResult:
    """What :func:`train` recorded: ``losses[t, s]`` = E_s and ``grad_norms[t, s]`` = ‖∇E_s‖
    before sweep t's update; ``solved_at[s]``, the first sweep with every output of network s
    within ``tol`` (-1 if never), and ``snapshot``, its parameters then (zeros if never);
    ``velocity``, the last steps Δw, to continue training from."""

    losses: np.ndarray
    grad_norms: np.ndarray
    solved_at: np.ndarray
    snapshot: list[np.ndarray]
    velocity: list[np.ndarray]


def train(
    params: Sequence[Tensor], X: np.ndarray, Y: np.ndarray, eta: float, alpha: float,
    n_sweeps: int, *, tol: float = 0.5, activation: str = "sigmoid",
    velocity: Sequence[np.ndarray] | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> TrainResult:
    """Full-batch gradient descent with momentum on all networks at once, in place:
    Δw(t) = -η ∂E_s/∂w(t) + α Δw(t-1), w(t+1) = w(t) + Δw(t) (eq-7-momentum), from
    Δw(-1) = 0 or from ``velocity`` (to continue a run); ``progress`` may wrap the sweeps."""
    S = params[0].shape[0]
    if velocity is None:
        velocity = [np.zeros_like(p.data) for p in params]
    else:
        velocity = [np.array(v, dtype=p.dtype) for v, p in zip(velocity, params, strict=True)]
    losses, grad_norms = np.zeros((n_sweeps, S)), np.zeros((n_sweeps, S))
    solved_at = np.full(S, -1)
    snapshot = [np.zeros_like(p.data) for p in params]
    sweeps = range(n_sweeps)
    for t in sweeps if progress is None else progress(sweeps):
        a_L = forward(params, X, activation)[-1]
        E = squared_error(a_L, Y)
        for p in params:
            p.grad = None
        E.sum().backward()  # one backward pass: S independent gradients
        losses[t] = E.data
        sq_norms = [(p.grad.reshape(S, -1) ** 2).sum(axis=1) for p in params]
        grad_norms[t] = np.sqrt(sum(sq_norms))
        new = (solved_at < 0) & np.all(np.abs(a_L.data - Y) < tol, axis=(1, 2))
        solved_at[new] = t
        for p, snap, v in zip(params, snapshot, velocity, strict=True):
            snap[new] = p.data[new]
            v *= alpha  # α Δw(t-1)
            v -= eta * p.grad  # - η ∂E/∂w
            p.data += v
    return TrainResult(losses, grad_norms, solved_at, snapshot, velocity)
