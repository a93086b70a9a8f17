"""Many independent networks trained as one batched computation.

S fully connected networks with the same layer sizes are stored together: the weights into
layer l of all of them form one Tensor of shape (S, n_l, n_{l-1}), the biases one of shape
(S, 1, n_l). A batched matrix product then evaluates every network on every case at once,

    z^l = a^{l-1} (W^l)^T + b^l,    a^l = f(z^l),    a^l of shape (S, n_cases, n_l),

and since network s's error E_s depends on its own weights only, one backward pass of the
total E_all = sum_s E_s gives each network its own gradient, ∂E_all/∂W_s = ∂E_s/∂W_s.

- :func:`init`: weights and biases uniform in [-scale, scale] (the 1986 initialisation);
- :func:`forward`: the activations of every layer, for every network;
- :func:`squared_error`: the summed squared error E_s = ½ Σ_c Σ_j (a^L_{jc} - y_{jc})² of each;
- :func:`train`: full-batch gradient descent with the momentum of Rumelhart, Hinton and
  Williams (1986), Δw(t) = -η ∂E/∂w(t) + α Δw(t-1), on all S networks at once.
"""

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
    """Parameters [W^1, b^1, ..., W^L, b^L] of ``n_nets`` networks with layer sizes
    ``sizes`` = (n_0, ..., n_L): W^l of shape (n_nets, n_l, n_{l-1}) and b^l of shape
    (n_nets, 1, n_l), every entry drawn uniformly from [-scale, scale] (in that order, from
    ``np.random.default_rng(seed)``)."""
    if len(sizes) < 2 or n_nets < 1:
        raise ValueError(
            f"init: need at least two layer sizes and one network, got {sizes}"
        )
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
    """E_s = ½ Σ_c Σ_j (a^L_{jc} - y_{jc})² for every network s, a Tensor of shape (S,), from
    the outputs a^L (S, n_cases, n_L) and the targets Y (n_cases, n_L): the squared error
    summed (not averaged) over the cases c and outputs j, as in 1986 (eq-9-error)."""
    return 0.5 * ((a_L - Y) ** 2).sum(axis=(1, 2))


@dataclass
class TrainResult:
    """What :func:`train` recorded. ``losses[t, s]`` and ``grad_norms[t, s]`` are E_s and
    ‖∇E_s‖ at sweep t (before that sweep's update); ``solved_at[s]`` is the first sweep at
    which every output of network s was within ``tol`` of its target (-1 if never), and
    ``snapshot`` holds each network's parameters at that sweep (zeros if never);
    ``velocity`` is the last step Δw of every parameter, to continue training with."""

    losses: np.ndarray
    grad_norms: np.ndarray
    solved_at: np.ndarray
    snapshot: list[np.ndarray]
    velocity: list[np.ndarray]


def train(
    params: Sequence[Tensor],
    X: np.ndarray,
    Y: np.ndarray,
    eta: float,
    alpha: float,
    n_sweeps: int,
    *,
    tol: float = 0.5,
    activation: str = "sigmoid",
    velocity: Sequence[np.ndarray] | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> TrainResult:
    """Full-batch gradient descent with momentum on every network at once, in place:

        Δw(t) = -η ∂E_s/∂w(t) + α Δw(t-1),    w(t+1) = w(t) + Δw(t)    (eq-7-momentum),

    with η = ``eta``, α = ``alpha`` and one backward pass of Σ_s E_s per sweep. Training
    starts from Δw(-1) = 0, or from ``velocity`` (a previous result's) to continue a run.
    ``progress`` may wrap the range of sweeps (e.g. a progress bar)."""
    S = params[0].shape[0]
    if velocity is None:
        velocity = [np.zeros_like(p.data) for p in params]
    else:
        velocity = [
            np.array(v, dtype=p.data.dtype)
            for v, p in zip(velocity, params, strict=True)
        ]
    losses, grad_norms = np.zeros((n_sweeps, S)), np.zeros((n_sweeps, S))
    solved_at = np.full(S, -1)
    snapshot = [np.zeros_like(p.data) for p in params]
    sweeps: Iterable[int] = (
        range(n_sweeps) if progress is None else progress(range(n_sweeps))
    )
    for t in sweeps:
        a_L = forward(params, X, activation)[-1]
        E = squared_error(a_L, Y)
        for p in params:
            p.grad = None
        E.sum().backward()  # one backward pass: S independent gradients
        losses[t] = E.data
        grad_norms[t] = np.sqrt(
            sum((p.grad.reshape(S, -1) ** 2).sum(axis=1) for p in params)
        )
        new = (solved_at < 0) & np.all(np.abs(a_L.data - Y) < tol, axis=(1, 2))
        solved_at[new] = t
        for p, snap, v in zip(params, snapshot, velocity, strict=True):
            snap[new] = p.data[new]
            v *= alpha  # α Δw(t-1)
            v -= eta * p.grad  # - η ∂E/∂w
            p.data += v
    return TrainResult(losses, grad_norms, solved_at, snapshot, velocity)
