r"""Activations and losses that run on a :class:`bpkit.Tensor` (reverse mode), on a
:class:`bpkit.forward.Dual` (forward mode) or on an array-like taken as a constant Tensor;
the elementwise activations also take a scalar :class:`bpkit.Value`."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .forward import Dual
from .scalar import Value
from .tensor import Tensor

ArrayLike = Any  # numpy.typing.ArrayLike: an array, a nested list or a number

__all__ = ["linear", "sigmoid", "tanh", "relu", "swish", "mish", "softplus", "softmax",
           "log_softmax", "standardize", "mse_loss", "cross_entropy"]


def _arg(x: Any, who: str | None = None) -> Any:
    """x as a Tensor, Dual or Value; ``who``, a function of whole arrays, refuses a Value."""
    if who is not None and isinstance(x, Value):
        raise TypeError(f"{who}: got a scalar Value; {who} takes a Tensor (or an array)")
    return x if isinstance(x, (Tensor, Dual, Value)) else Tensor(x)


def linear(
    a: Tensor | Dual | ArrayLike, W: Tensor | Dual | ArrayLike,
    b: Tensor | Dual | ArrayLike | None = None,
) -> Tensor | Dual:
    r""":math:`z = a W^T + b` for rows ``a`` (N, n_in), ``W`` (n_out, n_in), ``b`` (n_out,) or
    None. One node (:func:`bpkit.ops.linear`): :math:`\partial C/\partial a = G W`,
    :math:`\partial C/\partial W = G^T a`, :math:`\partial C/\partial b = \sum_n G_n`."""
    a, W = _arg(a, "linear"), _arg(W, "linear")
    b = None if b is None else _arg(b, "linear")
    if b is not None and tuple(b.shape) != tuple(W.shape[:1]):
        raise ValueError(
            f"linear: bias of shape {tuple(b.shape)}, expected ({W.shape[0]},) for weights of "
            f"shape {tuple(W.shape)}"
        )
    if a.ndim != 2 and W.ndim == 2 and a.shape[-1:] == W.shape[1:]:
        z = a @ W.T  # one example (1-D) or extra batch axes: compose the same rule
        return z if b is None else z + b
    if a.ndim != 2 or W.ndim != 2 or a.shape[1] != W.shape[1]:
        raise ValueError(
            f"linear: input of shape {tuple(a.shape)} and weights of shape {tuple(W.shape)} "
            f"do not fit; expected (N, n_in) and (n_out, n_in)"
        )
    return ops.linear(a, W) if b is None else ops.linear(a, W, b)


def sigmoid(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\sigma(z) = 1/(1+e^{-z})` (stable), :math:`\sigma' = \sigma(1-\sigma)`."""
    return _arg(z).sigmoid()


def tanh(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\tanh(z) = (e^z - e^{-z}) / (e^z + e^{-z})`; :math:`\tanh' = 1 - \tanh^2`."""
    return _arg(z).tanh()


def relu(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\max(z, 0)`; :math:`\operatorname{relu}'(z) = [z > 0]` (0 at the kink)."""
    return _arg(z).relu()


def swish(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`z\,\sigma(z)` (SiLU), with derivative :math:`\sigma + z\,\sigma(1-\sigma)`."""
    z = _arg(z)
    return z * z.sigmoid()


def softplus(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\log(1 + e^z)`, stable for any z, with derivative :math:`\sigma(z)`."""
    return _arg(z).softplus()


def mish(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\operatorname{mish}(z) = z \tanh(\operatorname{softplus}(z))`."""
    z = _arg(z)
    return z * z.softplus().tanh()


def softmax(z: Tensor | Dual | ArrayLike, axis: int = -1) -> Tensor | Dual:
    r""":math:`e^{z_i} / \sum_j e^{z_j}` along ``axis`` (max subtracted first)."""
    return _arg(z, "softmax").softmax(axis)


def log_softmax(z: Tensor | Dual | ArrayLike, axis: int = -1) -> Tensor | Dual:
    r""":math:`z_i - \log \sum_j e^{z_j}` along ``axis`` (log-sum-exp, stable)."""
    return _arg(z, "log_softmax").log_softmax(axis)


def standardize(
    x: Tensor | Dual | ArrayLike, axis: int | tuple[int, ...] = -1, eps: float = 1e-5
) -> Tensor | Dual:
    r""":math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}` over ``axis`` (the last for
    layer norm, 0 for batch norm); one node with :math:`\partial C/\partial x = (g - \bar g
    - \hat x\,\overline{g \hat x}) / \sqrt{\sigma^2 + \epsilon}` (bars: means)."""
    x = _arg(x, "standardize")
    nd = len(x.shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if not axes or not all(-nd <= ax < nd for ax in axes):
        raise ValueError(f"standardize: axis {axis} does not fit a tensor of shape {x.shape}")
    return ops.standardize(x, axes=tuple(sorted({int(ax) % nd for ax in axes})), eps=eps)


def mse_loss(pred: Tensor | Dual | ArrayLike, target: Tensor | Dual | ArrayLike) -> Tensor | Dual:
    r"""The mean of :math:`(\hat y - y)^2` over all entries (NaN for none). The shapes must
    match: broadcasting (N, 1) against (N,) would pair every prediction with every target."""
    pred = _arg(pred, "mse_loss")
    t_shape = np.shape(target.data if isinstance(target, (Tensor, Dual)) else target)
    if tuple(pred.shape) != tuple(t_shape):
        raise ValueError(
            f"mse_loss: pred has shape {tuple(pred.shape)} but target has shape {t_shape}; "
            f"they must match (reshape one of them)"
        )
    d = pred - target
    return (d * d).mean()


def _labels(labels: Any, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if y.size == 0 and y.dtype.kind == "f":  # [] (no labels) is float for NumPy
        y = y.astype(np.intp)
    if len(shape) != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, K), got {shape}")
    n, k = shape
    if y.shape == shape and k > 1:
        raise ValueError(
            f"cross_entropy: labels have the shape {y.shape} of the logits; one-hot targets? "
            f"pass the class indices labels = onehot.argmax(axis=1)"
        )
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: labels must be integer class indices, got dtype {y.dtype} "
            f"with shape {y.shape} (convert with labels.astype(int))"
        )
    if k == 0:
        raise ValueError(f"cross_entropy: logits of shape {shape} have no classes")
    if y.shape != (n,):
        raise ValueError(f"cross_entropy: labels have shape {y.shape}, expected ({n},)")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(
            f"cross_entropy: labels must lie in [0, {k - 1}] for logits of shape {shape}, "
            f"got values from {y.min()} to {y.max()}"
        )
    return y


def cross_entropy(logits: Tensor | Dual | ArrayLike, labels: ArrayLike) -> Tensor | Dual:
    r""":math:`C = -\frac1N \sum_n \log \operatorname{softmax}(z_n)_{y_n}` for logits z (N, K)
    and N integer labels y (NaN for N = 0), one node with the fused rule :math:`\partial
    C/\partial z = (\operatorname{softmax}(z) - \operatorname{onehot}(y))/N`."""
    z = _arg(logits, "cross_entropy")
    return ops.cross_entropy(z, labels=_labels(labels, tuple(z.shape)))
