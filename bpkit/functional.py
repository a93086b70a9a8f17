r"""Activations and losses, for :class:`bpkit.Tensor` and forward-mode :class:`bpkit.forward.Dual`.

Each function accepts a Tensor, a Dual (forward mode) or an array-like (taken as a constant
Tensor) and dispatches to methods that both types implement, so one model function works
under reverse and forward mode. Elementwise activations also accept a scalar
:class:`bpkit.Value`.

Activations f and their derivatives f':

- sigmoid: :math:`\sigma(z) = 1/(1+e^{-z})`, :math:`\sigma' = \sigma(1-\sigma)`
- tanh: :math:`\tanh(z)`, :math:`\tanh' = 1 - \tanh^2`
- relu: :math:`\max(z, 0)`, :math:`\operatorname{relu}'(z) = [z > 0]`
- swish: :math:`z\,\sigma(z)`, :math:`\operatorname{swish}' = \sigma + z\,\sigma(1-\sigma)`
- mish: :math:`z \tanh(\operatorname{softplus}(z))`,
  :math:`\operatorname{softplus}(z) = \log(1+e^z)`

The affine map of a layer, one graph node instead of three (``@``, ``.T``, ``+``):

- ``linear(a, W, b)`` :math:`= a W^T + b` for a batch of rows :math:`a`
  (:math:`z^l = W^l a^{l-1} + b^l`), with :math:`\partial C/\partial a = G W`,
  :math:`\partial C/\partial W = G^T a`, :math:`\partial C/\partial b = \sum_n G_n`.

Losses (averaged over the examples of a batch):

- ``mse_loss(pred, target)`` = mean of :math:`(\hat y - y)^2`
- ``cross_entropy(logits, labels)``
  :math:`= -\frac1N \sum_n \log \operatorname{softmax}(z_n)_{y_n}`, with the fused
  gradient :math:`\partial C/\partial z = (\operatorname{softmax}(z) - \operatorname{onehot}(y))/N`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .forward import Dual
from .scalar import Value
from .tensor import Tensor

ArrayLike = Any  # numpy.typing.ArrayLike: an array, a nested list or a number

__all__ = [
    "linear",
    "sigmoid",
    "tanh",
    "relu",
    "swish",
    "mish",
    "softplus",
    "softmax",
    "log_softmax",
    "standardize",
    "mse_loss",
    "cross_entropy",
]


def _arg(x: Any) -> Any:
    """Tensors, Duals and Values pass through; anything else becomes a constant Tensor."""
    if isinstance(x, (Tensor, Dual, Value)):
        return x
    return Tensor(x)


def _array_arg(x: Any, who: str) -> Any:
    """As :func:`_arg`, for the functions of whole vectors: a scalar Value is an error."""
    if isinstance(x, Value):
        raise TypeError(f"{who}: got a scalar Value; {who} takes a Tensor (or an array)")
    return _arg(x)


def linear(
    a: Tensor | Dual | ArrayLike, W: Tensor | Dual | ArrayLike,
    b: Tensor | Dual | ArrayLike | None = None,
) -> Tensor | Dual:
    r""":math:`z = a W^T + b`: the layer's :math:`z^l = W^l a^{l-1} + b^l` for a batch of
    rows ``a`` (N, n_in).

    ``W`` has shape (n_out, n_in), ``b`` (n_out,) or None. For a batch of Tensors this is one
    graph node (the primitive :func:`bpkit.ops.linear`) with the rules
    :math:`\partial C/\partial a = G W`, :math:`\partial C/\partial W = G^T a`,
    :math:`\partial C/\partial b = \sum_n G_n` (:math:`G = \partial C/\partial z`);
    it gives the same numbers as ``a @ W.T + b``.
    """
    a, W = _array_arg(a, "linear"), _array_arg(W, "linear")
    b = None if b is None else _array_arg(b, "linear")
    if b is not None and tuple(b.shape) != tuple(W.shape[:1]):  # on every path
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
    r"""The logistic function :math:`\sigma(z) = 1/(1+e^{-z})`, stable for large :math:`|z|`."""
    return _arg(z).sigmoid()


def tanh(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\tanh(z) = (e^z - e^{-z}) / (e^z + e^{-z})`."""
    return _arg(z).tanh()


def relu(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\max(z, 0)`; its derivative is taken as 0 at the kink :math:`z = 0`."""
    return _arg(z).relu()


def swish(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\operatorname{swish}(z) = z\,\sigma(z)` (also called SiLU)."""
    z = _arg(z)
    return z * z.sigmoid()


def softplus(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\operatorname{softplus}(z) = \log(1 + e^z)`, stable for large :math:`|z|`;
    its derivative is :math:`\sigma(z)`."""
    return _arg(z).softplus()


def mish(z: Tensor | Dual | Value | ArrayLike) -> Tensor | Dual | Value:
    r""":math:`\operatorname{mish}(z) = z \tanh(\operatorname{softplus}(z))`."""
    z = _arg(z)
    return z * z.softplus().tanh()


def softmax(z: Tensor | Dual | ArrayLike, axis: int = -1) -> Tensor | Dual:
    r""":math:`\operatorname{softmax}(z)_i = e^{z_i} / \sum_j e^{z_j}` along ``axis``
    (max subtracted first)."""
    return _array_arg(z, "softmax").softmax(axis)


def log_softmax(z: Tensor | Dual | ArrayLike, axis: int = -1) -> Tensor | Dual:
    r""":math:`\log \operatorname{softmax}(z)_i = z_i - \log \sum_j e^{z_j}` along ``axis``
    (log-sum-exp, stable)."""
    return _array_arg(z, "log_softmax").log_softmax(axis)


def standardize(
    x: Tensor | Dual | ArrayLike, axis: int | tuple[int, ...] = -1, eps: float = 1e-5
) -> Tensor | Dual:
    r""":math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}`, :math:`\mu` and
    :math:`\sigma^2` the mean and biased variance
    over ``axis``: layer normalisation over the last axis (the default), batch
    normalisation over axis 0 (chapter 12). One node (``bpkit.ops.standardize``) with
    the fused rule :math:`\partial C/\partial x = (g - \bar g - \hat x\,\overline{g \hat x})
    / \sqrt{\sigma^2 + \epsilon}` (bars: means over ``axis``)."""
    x = _array_arg(x, "standardize")
    nd = len(x.shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if not axes or not all(-nd <= ax < nd for ax in axes):
        raise ValueError(f"standardize: axis {axis} does not fit a tensor of shape {x.shape}")
    return ops.standardize(x, axes=tuple(sorted({int(ax) % nd for ax in axes})), eps=eps)


def mse_loss(pred: Tensor | Dual | ArrayLike, target: Tensor | Dual | ArrayLike) -> Tensor | Dual:
    r"""Mean squared error, the mean of :math:`(\hat y - y)^2` over all entries (NaN for no entries,
    as NumPy's mean).

    The shapes must match exactly: broadcasting (N, 1) against (N,) would silently
    compare every prediction with every target.
    """
    pred = _array_arg(pred, "mse_loss")
    t_shape = np.shape(target.data if isinstance(target, (Tensor, Dual)) else target)
    if tuple(pred.shape) != tuple(t_shape):
        raise ValueError(
            f"mse_loss: pred has shape {tuple(pred.shape)} but target has shape {t_shape}; "
            f"they must match (reshape one of them)"
        )
    d = pred - target
    return (d * d).mean()


def _labels(labels: Any, logits_shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if y.size == 0 and y.dtype.kind == "f":  # [] (no labels) is float for NumPy
        y = y.astype(np.intp)
    if len(logits_shape) != 2:
        raise ValueError(
            f"cross_entropy: logits must have shape (N, K) (a batch of N rows of K class "
            f"scores), got {logits_shape}"
        )
    if y.shape == logits_shape and len(logits_shape) == 2 and logits_shape[1] > 1:
        raise ValueError(
            f"cross_entropy: labels have the shape {y.shape} of the logits; one-hot targets? "
            f"pass the class indices labels = onehot.argmax(axis=1)"
        )
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: labels must be integer class indices, got dtype {y.dtype} "
            f"with shape {y.shape} (convert with labels.astype(int))"
        )
    n, k = logits_shape
    if k == 0:
        raise ValueError(f"cross_entropy: logits of shape {logits_shape} have no classes")
    if y.shape != (n,):
        raise ValueError(
            f"cross_entropy: labels have shape {y.shape}, expected ({n},) for logits of shape "
            f"{logits_shape}"
        )
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(
            f"cross_entropy: labels must lie in [0, {k - 1}] for logits of shape {logits_shape}, "
            f"got values from {y.min()} to {y.max()}"
        )
    return y


def cross_entropy(logits: Tensor | Dual | ArrayLike, labels: ArrayLike) -> Tensor | Dual:
    r"""Mean softmax cross-entropy
    :math:`C = -\frac1N \sum_n \log \operatorname{softmax}(z_n)_{y_n}`.

    ``logits`` z has shape (N, K); ``labels`` y holds N integer class indices. Computed with
    log-sum-exp, so logits of any magnitude give a finite loss. One primitive
    (:data:`bpkit.ops.cross_entropy`) with the fused rule
    :math:`\partial C/\partial z = (\operatorname{softmax}(z) - \operatorname{onehot}(y))/N`.
    An empty batch (:math:`N = 0`) gives NaN, the mean of no entries, as in NumPy and in forward
    mode; its gradient is empty.
    """
    z = _array_arg(logits, "cross_entropy")
    y = _labels(labels, tuple(z.shape))
    return ops.cross_entropy(z, labels=y)
