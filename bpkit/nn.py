"""Layers and networks on :class:`bpkit.Tensor`.

A network maps a batch of row vectors a^0 = x (shape (N, n_0)) through layers
z^l = W^l a^{l-1} + b^l, a^l = f^l(z^l); for a batch this is ``z = a @ W.T + b``, so the
weight matrix ``W`` of a layer has shape (n_out, n_in) and entry ``W[j, k]`` = w^l_{jk} is
the weight from node k of layer l-1 to node j of layer l.

- :class:`Module`: ``parameters()``, ``zero_grad()``, ``state_dict()``/``load_state_dict()``,
  ``save(path)``/``load(path)`` (``.npz``, no pickle);
- :class:`Linear`, :class:`MLP`, :class:`Sequential`, :class:`Flatten`, the activations
  :class:`ReLU`, :class:`Tanh`, :class:`Sigmoid`;
- :class:`Residual`: a skip connection around any shape-preserving module, a + F(a);
- :class:`Conv2d` (NCHW, by :func:`im2col`), :class:`AvgPool2d`, :class:`MaxPool2d`;
- :class:`BatchNorm1d` and :class:`LayerNorm` (chapter 12), with PyTorch's semantics;
  ``train()``/``eval()`` switch a network's batch normalisation between batch and
  running statistics, which ``state_dict()`` holds as buffers (not parameters).
- :class:`RNN` and :class:`LSTM` (chapter 14): one recurrent layer, batch first
  (batch, time, features), with PyTorch's equations, parameter names and initialisation.

Initialisation is named and seeded (``seed`` is an int, a ``np.random.Generator``, or None
for fresh entropy):

- ``"he"`` (He et al. 2015, for ReLU-like f): w ~ N(0, 2 / n_in);
- ``"xavier"`` (Glorot & Bengio 2010, for tanh and sigmoid): w ~ U(-r, r) with
  r = sqrt(6 / (n_in + n_out));
- ``"uniform"`` (Rumelhart, Hinton & Williams 1986): w and b ~ U(-r, r), r = ``scale``
  (0.3 by default).

For "he" and "xavier" ``scale`` (default 1) multiplies the weights and biases start at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from . import functional as F
from . import ops
from .forward import Dual
from .tensor import Tensor

__all__ = [
    "Module",
    "Linear",
    "MLP",
    "Sequential",
    "Residual",
    "Flatten",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Conv2d",
    "AvgPool2d",
    "MaxPool2d",
    "im2col",
    "BatchNorm1d",
    "LayerNorm",
    "RNN",
    "LSTM",
]

Seed = int | np.random.Generator | None

_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "relu": F.relu,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "swish": F.swish,
    "mish": F.mish,
}


# -- Module -------------------------------------------------------------------------------


class Module:
    """Base class: a callable (``m(x)`` runs ``m.forward(x)``) holding parameter Tensors.

    Parameters are found by walking the attributes in the order they were set: a Tensor
    with ``requires_grad=True``, a sub-Module, or a list/tuple of those. Their names
    (``"layers.0.W"``) are the keys of :meth:`state_dict` and of the saved ``.npz`` file.

    A module is in training mode (``training`` True) until :meth:`eval`; a layer whose
    forward pass depends on the mode (:class:`BatchNorm1d`) reads it. Buffers are arrays
    that are state but not parameters (running statistics): a module names them in
    ``buffer_names``; :meth:`state_dict` saves them and :meth:`load_state_dict` restores
    them, and the optimisers never see them.
    """

    training: bool = True
    buffer_names: tuple[str, ...] = ()

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(name, Tensor) for every parameter, in a fixed order (W before b, layer by layer).

        A Tensor shared by several layers (tied weights) is listed once, under its first
        name, so that an optimiser updates it once with its summed gradient.
        """
        seen: set[int] = set()
        for name, p in self._all_named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_named_parameters(self, prefix: str) -> Iterator[tuple[str, Tensor]]:
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value._all_named_parameters(f"{prefix}{name}.")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item._all_named_parameters(f"{prefix}{name}.{i}.")
                    elif isinstance(item, Tensor) and item.requires_grad:
                        yield f"{prefix}{name}.{i}", item

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for this module (name ``prefix`` without its dot) and every
        sub-module found as the parameters are (attributes, lists and tuples), each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name.rstrip("."), m
            children = []
            for attr, value in vars(m).items():
                if isinstance(value, Module):
                    children.append((f"{name}{attr}.", value))
                elif isinstance(value, (list, tuple)):
                    children += [(f"{name}{attr}.{i}.", item) for i, item in enumerate(value)
                                 if isinstance(item, Module)]
            stack.extend(reversed(children))

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) for every buffer of this module and its sub-modules
        (``"layers.1.running_mean"``)."""
        for name, m in self.named_modules(prefix):
            for b in m.buffer_names:
                yield (f"{name}.{b}" if name else b), getattr(m, b)

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and every
        sub-module; returns the module."""
        for _, m in self.named_modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def parameters(self) -> list[Tensor]:
        """The parameter Tensors (leaves of the graph), e.g. [W^1, b^1, W^2, b^2, ...]."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget the gradients (``p.grad = None``) before the next backward pass."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array and of every buffer, by name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update((name, b.copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays (or Tensors) into the parameters and buffers in place (optimisers keep
        their references), all or nothing.

        Everything is checked before anything is written: the names must be exactly this
        module's parameter and buffer names, each shape must match, and each dtype must be a
        real number type (int or float; complex, bool, datetime, string and object arrays are
        refused by name). Otherwise a ValueError (TypeError for a dtype) lists what differs and no
        parameter has changed. Values are cast to the parameter's dtype.
        """
        params: dict[str, Any] = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        params.update(buffers)
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(
                f"load_state_dict: parameter names differ; missing {missing}, "
                f"unexpected {unexpected}"
            )
        arrays = {n: np.asarray(v.data if isinstance(v, Tensor) else v) for n, v in state.items()}
        bad_type = [f"{n}: {a.dtype}" for n, a in arrays.items() if a.dtype.kind not in "iuf"]
        if bad_type:
            raise TypeError(
                "load_state_dict: parameters must be real numbers (int or float arrays), got "
                + "; ".join(bad_type)
            )
        bad = [
            f"{n}: expected {params[n].shape}, got {arrays[n].shape}"
            for n in params
            if arrays[n].shape != params[n].shape
        ]
        if bad:
            raise ValueError("load_state_dict: shape mismatch: " + "; ".join(bad))
        for n, p in params.items():
            if n in buffers:
                p[...] = arrays[n]
            else:
                p.assign(arrays[n])  # in place; the version goes up

    def save(self, path: str | Path) -> None:
        """Write the parameters to the file ``path`` in ``.npz`` format (``np.savez``; no
        pickle). The name is used as given: no suffix is added."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | Path) -> None:
        """Read parameters written by :meth:`save` (``.npz``; pickled data is refused), all
        or nothing, as :meth:`load_state_dict`."""
        try:
            f = np.load(path, allow_pickle=False)
        except ValueError as e:  # NumPy refuses a pickle (or a file it cannot read)
            raise ValueError(f"Module.load: {path} is not an .npz file of arrays ({e})") from e
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(
                f"Module.load: {path} holds a single array (.npy); expected an .npz archive of "
                f"named arrays, as written by Module.save"
            )
        with f:
            state = {}
            for k in f.files:
                try:
                    state[k] = f[k]
                except ValueError as e:  # an object array needs pickle
                    raise ValueError(
                        f"Module.load: array {k!r} in {path} needs pickle to load (dtype "
                        f"object), which is refused"
                    ) from e
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _positive_ints(*ns: Any) -> bool:
    return all(isinstance(n, (int, np.integer)) and n >= 1 for n in ns)


def _float_dtype(dtype: DTypeLike, who: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt}")
    return dt


def _init(
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    init: str,
    scale: float | None,
    rng: np.random.Generator,
    who: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights of ``shape`` and biases of shape (shape[0],), both float64."""
    n_out = shape[0]
    if init == "he":
        W = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        b = np.zeros(n_out)
    elif init == "xavier":
        r = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-r, r, shape)
        b = np.zeros(n_out)
    elif init == "uniform":
        r = 0.3 if scale is None else scale
        return rng.uniform(-r, r, shape), rng.uniform(-r, r, n_out)
    else:
        raise ValueError(f"{who}: unknown init {init!r}; use 'he', 'xavier' or 'uniform'")
    if scale is not None:
        W = W * scale
    return W, b


def _as_input(x: Any, dtype: np.dtype, who: str) -> Any:
    """Arrays become constant Tensors of the layer's dtype; a Tensor (or a forward-mode
    Dual, under :func:`bpkit.jvp`) must already have it."""
    if not isinstance(x, (Tensor, Dual)):
        return Tensor(np.asarray(x, dtype=dtype))
    if x.dtype != dtype:
        raise TypeError(
            f"{who}: input has dtype {x.dtype} but the parameters are {dtype}; "
            f"convert the input (e.g. Tensor(x.data.astype(np.{dtype})))"
        )
    return x


# -- fully connected ----------------------------------------------------------------------


class Linear(Module):
    """Affine layer :math:`z^l = W^l a^{l-1} + b^l`; for a batch of rows ``z = a @ W.T + b``.

    ``W`` has shape (n_out, n_in) (``W[j, k]`` = :math:`w^l_{jk}`), ``b`` shape (n_out,).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        bias: bool = True,
        init: str = "he",
        scale: float | None = None,
        seed: Seed = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if not _positive_ints(n_in, n_out):
            raise ValueError(f"Linear: sizes must be positive ints, got n_in={n_in}, n_out={n_out}")
        dt = _float_dtype(dtype, "Linear")
        W, b = _init((n_out, n_in), n_in, n_out, init, scale, _rng(seed), "Linear")
        self.n_in, self.n_out, self.init = n_in, n_out, init
        # W is stored column-major (W.T is a row-major array), so that a @ W.T is a plain
        # row-major product for BLAS (about 10% faster for the first layer of a wide input)
        self.W = Tensor(np.asfortranarray(W, dtype=dt), requires_grad=True, label="W")
        self.b = Tensor(b.astype(dt), requires_grad=True, label="b") if bias else None

    def forward(self, a: Any) -> Tensor:
        return F.linear(_as_input(a, self.W.dtype, "Linear"), self.W, self.b)

    def __repr__(self) -> str:
        return f"Linear({self.n_in}, {self.n_out}, bias={self.b is not None}, init={self.init!r})"


class _Activation(Module):
    f: Callable[[Any], Any]

    def forward(self, z: Any) -> Any:
        return type(self).f(z)


class ReLU(_Activation):
    """a = max(z, 0) elementwise."""

    f = staticmethod(F.relu)


class Tanh(_Activation):
    """a = tanh(z) elementwise."""

    f = staticmethod(F.tanh)


class Sigmoid(_Activation):
    """a = sigma(z) = 1 / (1 + e^{-z}) elementwise."""

    f = staticmethod(F.sigmoid)


class Flatten(Module):
    """Reshape (N, d_1, d_2, ...) to (N, d_1 d_2 ...), keeping the batch axis."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # not -1: N may be 0


class Sequential(Module):
    """Apply modules one after the other: ``Sequential(m1, m2)(x) = m2(m1(x))``."""

    def __init__(self, *modules: Module) -> None:
        for m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: expected Modules, got {type(m).__name__}")
        self.layers = list(modules)

    def forward(self, x: Any) -> Any:
        for m in self.layers:
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(m) for m in self.layers)
        return f"Sequential(\n  {inner}\n)"


class Residual(Module):
    """Residual block (He et al. 2016): ``Residual(F)(a) = a + F(a)``.

    ``F`` is any module whose output has the shape of its input (a ValueError names both
    shapes otherwise). The Jacobian of the block is I + dF/da (chapter 13,
    eq-13-residual), so the backward pass adds the branch's vector-Jacobian product to
    the adjoint it receives unchanged: abar_in = abar_out + (dF/da)^T abar_out, with
    abar = dC/da the adjoint of a block's input or output. Parameters are the branch's.
    """

    def __init__(self, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Residual: expected a Module, got {type(module).__name__}")
        self.module = module

    def forward(self, a: Any) -> Any:
        if not isinstance(a, (Tensor, Dual)):
            params = self.module.parameters()
            a = Tensor(np.asarray(a, dtype=params[0].dtype if params else np.float64))
        out = self.module(a)
        if out.shape != a.shape:
            raise ValueError(
                f"Residual: the branch maps shape {a.shape} to {out.shape}; "
                f"a + F(a) needs equal shapes"
            )
        return a + out

    def __repr__(self) -> str:
        return f"Residual({self.module!r})"


def _activation(f: str | Callable | None, who: str) -> Callable[[Any], Any] | None:
    if f is None or callable(f):
        return f
    if f not in _ACTIVATIONS:
        raise ValueError(
            f"{who}: unknown activation {f!r}; use one of {sorted(_ACTIVATIONS)} or a callable"
        )
    return _ACTIVATIONS[f]


class MLP(Module):
    r"""Fully connected network with ``sizes = [n_0, n_1, ..., n_L]``.

    :math:`a^0 = x`, :math:`z^l = W^l a^{l-1} + b^l`, :math:`a^l = f(z^l)` for :math:`l < L`
    and :math:`a^L = f^L(z^L)`, where :math:`f^L` is ``output_activation``
    (None: the identity, a linear output layer). ``init`` defaults to "he" for
    relu/swish/mish and "xavier" otherwise. Layer l is ``layers[l - 1]``, a
    :class:`Linear`; ``parameters()`` is :math:`[W^1, b^1, \dots, W^L, b^L]`.
    """

    def __init__(
        self,
        sizes: list[int],
        activation: str | Callable = "relu",
        output_activation: str | Callable | None = None,
        init: str | None = None,
        scale: float | None = None,
        seed: Seed = 0,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        self.sizes = list(sizes)
        self.f = _activation(activation, "MLP")
        self.f_out = _activation(output_activation, "MLP")
        if init is None:
            init = "he" if activation in ("relu", "swish", "mish") else "xavier"
        rng = _rng(seed)
        self.layers = [
            Linear(n_in, n_out, init=init, scale=scale, seed=rng, dtype=dtype)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].W.dtype

    def forward(self, x: Any) -> Tensor:
        a = x
        L = len(self.layers)
        for l, layer in enumerate(self.layers, start=1):  # noqa: E741  (layer index l)
            z = layer(a)
            f = self.f if l < L else self.f_out
            a = f(z) if f is not None else z
        return a

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, dtype={self.dtype})"


# -- normalisation (chapter 12) -----------------------------------------------------------


def _norm_size(n: Any, eps: float, who: str) -> None:
    if not _positive_ints(n):
        raise ValueError(f"{who}: the number of features must be a positive int, got {n!r}")
    if not eps > 0:
        raise ValueError(f"{who}: eps must be positive, got {eps!r}")


class BatchNorm1d(Module):
    """Batch normalisation (Ioffe & Szegedy 2015) of the n features of a batch (N, n).

    Training mode: with the batch mean mu_j and biased variance sigma_j^2 of feature j,
    xhat = (x - mu) / sqrt(sigma^2 + eps) and y = gamma xhat + beta (``weight`` gamma,
    ``bias`` beta, shape (n,)). The backward pass of xhat is one fused rule (the
    primitive ``bpkit.ops.standardize``):
    dC/dx = (g - mean_b g - xhat mean_b(g xhat)) / sqrt(sigma^2 + eps), g = gamma dC/dy.
    Each training call also updates the buffers
    running = (1 - momentum) running + momentum batch, with the *unbiased* variance
    (N / (N - 1) sigma^2) in ``running_var``, as PyTorch does.

    Evaluation mode (after :meth:`Module.eval`): y = gamma (x - running_mean) /
    sqrt(running_var + eps) + beta, an affine map of each feature, the same for every
    example. ``running_mean`` starts at 0 and ``running_var`` at 1. The state_dict keys
    are PyTorch's ``weight``, ``bias``, ``running_mean``, ``running_var`` (without
    PyTorch's counter ``num_batches_tracked``).
    """

    buffer_names = ("running_mean", "running_var")

    def __init__(self, n: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: DTypeLike = np.float64) -> None:
        _norm_size(n, eps, "BatchNorm1d")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm1d: momentum must lie in [0, 1], got {momentum!r}")
        dt = _float_dtype(dtype, "BatchNorm1d")
        self.n, self.eps, self.momentum = n, float(eps), float(momentum)
        self.weight = Tensor(np.ones(n, dtype=dt), requires_grad=True, label="gamma")
        self.bias = Tensor(np.zeros(n, dtype=dt), requires_grad=True, label="beta")
        self.running_mean = np.zeros(n, dtype=dt)
        self.running_var = np.ones(n, dtype=dt)

    def forward(self, x: Any) -> Any:
        x = _as_input(x, self.weight.dtype, "BatchNorm1d")
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"BatchNorm1d: expected input (N, {self.n}), got shape {x.shape}")
        if not self.training:
            scale = 1.0 / np.sqrt(self.running_var + self.eps)
            return (x - self.running_mean) * scale * self.weight + self.bias
        N = x.shape[0]
        if N < 2:
            raise ValueError(
                f"BatchNorm1d: training mode needs more than one example per batch, got "
                f"shape {x.shape} (use eval() for single examples)"
            )
        data = np.asarray(x.data)
        mu, var = data.mean(axis=0), data.var(axis=0, ddof=1)  # unbiased for the estimate
        m = self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mu
        self.running_var[...] = (1 - m) * self.running_var + m * var
        xhat = ops.standardize(x, axes=(0,), eps=self.eps)
        return xhat * self.weight + self.bias

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.n}, eps={self.eps:g}, momentum={self.momentum:g})"


class LayerNorm(Module):
    """Layer normalisation (Ba, Kiros & Hinton 2016) over the last axis, of size n.

    Each example (each row, for input (..., n)) is standardised over its own n features,
    xhat = (x - mu) / sqrt(sigma^2 + eps) with the biased variance, then
    y = gamma xhat + beta (``weight`` gamma, ``bias`` beta, shape (n,)). No batch
    statistics, so training and evaluation compute the same function. Backward as for
    :class:`BatchNorm1d`, with the means over the features of one example.
    """

    def __init__(self, n: int, eps: float = 1e-5, dtype: DTypeLike = np.float64) -> None:
        _norm_size(n, eps, "LayerNorm")
        dt = _float_dtype(dtype, "LayerNorm")
        self.n, self.eps = n, float(eps)
        self.weight = Tensor(np.ones(n, dtype=dt), requires_grad=True, label="gamma")
        self.bias = Tensor(np.zeros(n, dtype=dt), requires_grad=True, label="beta")

    def forward(self, x: Any) -> Any:
        x = _as_input(x, self.weight.dtype, "LayerNorm")
        if x.ndim < 1 or x.shape[-1] != self.n:
            raise ValueError(f"LayerNorm: expected input (..., {self.n}), got shape {x.shape}")
        xhat = ops.standardize(x, axes=(x.ndim - 1,), eps=self.eps)
        return xhat * self.weight + self.bias

    def __repr__(self) -> str:
        return f"LayerNorm({self.n}, eps={self.eps:g})"


# -- convolution --------------------------------------------------------------------------


def _pair(k: int | tuple[int, int], name: str, who: str, minimum: int = 1) -> tuple[int, int]:
    kk = (k, k) if isinstance(k, (int, np.integer)) else k if isinstance(k, (tuple, list)) else ()
    if len(kk) != 2 or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in kk):
        raise ValueError(f"{who}: {name} must be an int or a pair of ints >= {minimum}, got {k!r}")
    return int(kk[0]), int(kk[1])


def _patches(
    x: Any, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int], who: str
) -> tuple[Tensor, int, int]:
    """(im2col(x), H', W') with H' = (H + 2p - kh) // s + 1 (likewise W')."""
    Ho = ops.conv_out_size(x.shape[2], k[0], s[0], p[0], who, "height")
    Wo = ops.conv_out_size(x.shape[3], k[1], s[1], p[1], who, "width")
    return ops.im2col(x, k=k, s=s, p=p), Ho, Wo


def im2col(
    x: Any,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Any:
    """Unfold the patches of an NCHW tensor into rows: shape (N * H' * W', C * kh * kw).

    Row (n, i, j) holds the input patch that the kernel sees at output position (i, j),
    ordered (c, u, v) like the weights (C, kh, kw) of :class:`Conv2d`, so a convolution is
    one matrix product ``im2col(x) @ W.reshape(K, -1).T``. Output size
    H' = (H + 2p - kh) // s + 1 (likewise W'). The primitive :data:`bpkit.ops.im2col`.

    Backward (col2im): each patch entry's gradient is added back to the input pixel it was
    copied from; a pixel covered by several patches receives the sum.
    """
    if not isinstance(x, (Tensor, Dual)):
        x = Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"im2col: input must be NCHW (4-D), got shape {x.shape}")
    k = _pair(kernel_size, "kernel_size", "im2col")
    s = _pair(stride, "stride", "im2col")
    p = _pair(padding, "padding", "im2col", minimum=0)
    return _patches(x, k, s, p, "im2col")[0]


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in deep-learning libraries) on NCHW input.

    out[n, k, i, j] = b_k + sum_{c,u,v} W[k, c, u, v] x_pad[n, c, i*s + u, j*s + v],
    computed as ``im2col(x) @ W.reshape(K, -1).T + b``. ``W`` has shape
    (out_channels, in_channels, kh, kw), ``b`` shape (out_channels,); fan-in C kh kw.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        init: str = "he",
        scale: float | None = None,
        seed: Seed = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if not _positive_ints(in_channels, out_channels):
            raise ValueError(
                f"Conv2d: channels must be positive ints, got {in_channels} -> {out_channels}"
            )
        dt = _float_dtype(dtype, "Conv2d")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.padding = _pair(padding, "padding", "Conv2d", minimum=0)
        kh, kw = self.kernel_size
        fan_in, fan_out = in_channels * kh * kw, out_channels * kh * kw
        W, b = _init(
            (out_channels, in_channels, kh, kw), fan_in, fan_out, init, scale, _rng(seed), "Conv2d"
        )
        self.W = Tensor(W.astype(dt), requires_grad=True, label="W")
        self.b = Tensor(b.astype(dt), requires_grad=True, label="b") if bias else None

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x, self.W.dtype, "Conv2d")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d: expected input (N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        cols, Ho, Wo = _patches(x, self.kernel_size, self.stride, self.padding, "Conv2d")
        z = cols @ self.W.reshape(self.out_channels, -1).T  # (N Ho Wo, K)
        if self.b is not None:
            z = z + self.b
        return z.reshape(x.shape[0], Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding})"
        )


class _Pool2d(Module):
    def __init__(self, kernel_size: int | tuple[int, int], stride: int | None = None) -> None:
        who = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", who)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", who)

    def _windows(self, x: Any) -> tuple[Tensor, tuple[int, int, int, int]]:
        """(N C H' W', kh kw) rows, one per window of one channel."""
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: input must be NCHW, got shape {x.shape}")
        N, C, H, W = x.shape
        cols, Ho, Wo = _patches(
            x.reshape(N * C, 1, H, W), self.kernel_size, self.stride, (0, 0), type(self).__name__
        )
        return cols, (N, C, Ho, Wo)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class AvgPool2d(_Pool2d):
    """Mean over each kh x kw window (stride = kernel size by default), channel by channel."""

    def forward(self, x: Any) -> Tensor:
        cols, (N, C, Ho, Wo) = self._windows(x)
        return cols.mean(axis=1).reshape(N, C, Ho, Wo)


class MaxPool2d(_Pool2d):
    """Maximum over each kh x kw window; the gradient goes to the maximal entry (ties
    share it)."""

    def forward(self, x: Any) -> Tensor:
        cols, (N, C, Ho, Wo) = self._windows(x)
        return cols.max(axis=1).reshape(N, C, Ho, Wo)


# -- recurrent (chapter 14) ---------------------------------------------------------------


class _Recurrent(Module):
    """What RNN and LSTM share: PyTorch's parameters, initialisation and checks."""

    n_gates = 1  # blocks of n_hidden rows in weight_ih, weight_hh, bias_ih, bias_hh

    def __init__(
        self, n_in: int, n_hidden: int, bias: bool, seed: Seed, dtype: DTypeLike
    ) -> None:
        who = type(self).__name__
        if not _positive_ints(n_in, n_hidden):
            raise ValueError(
                f"{who}: sizes must be positive ints, got n_in={n_in!r}, "
                f"n_hidden={n_hidden!r}"
            )
        dt = _float_dtype(dtype, who)
        self.n_in, self.n_hidden = n_in, n_hidden
        rng, r, G = _rng(seed), 1.0 / np.sqrt(n_hidden), self.n_gates * n_hidden
        shapes = {"weight_ih": (G, n_in), "weight_hh": (G, n_hidden)}
        if bias:
            shapes |= {"bias_ih": (G,), "bias_hh": (G,)}
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            value = None
            if name in shapes:  # every entry ~ U(-r, r), r = 1/sqrt(n_hidden)
                w = rng.uniform(-r, r, shapes[name]).astype(dt)
                value = Tensor(w, requires_grad=True, label=name)
            setattr(self, name, value)

    @property
    def dtype(self) -> np.dtype:
        return self.weight_ih.dtype

    def _inputs(self, x: Any) -> tuple[Any, int, int]:
        """(x W_ih^T + b_ih for every step, shape (B, T, G); B; T)."""
        who = type(self).__name__
        x = _as_input(x, self.dtype, who)
        if x.ndim != 3 or x.shape[2] != self.n_in or x.shape[1] == 0:
            hint = " (one sequence? add a batch axis: x[None])" if x.ndim == 2 else ""
            raise ValueError(
                f"{who}: expected input of shape (batch, time, {self.n_in}) with "
                f"time >= 1 (batch first), got {tuple(x.shape)}{hint}"
            )
        B, T = x.shape[0], x.shape[1]
        flat = x.reshape(B * T, self.n_in)
        xz = F.linear(flat, self.weight_ih, self.bias_ih)
        return xz.reshape(B, T, self.n_gates * self.n_hidden), B, T

    def _state(self, s: Any, B: int, name: str) -> Any:
        """An initial state: zeros (B, n_hidden) for None, else checked."""
        if s is None:
            return Tensor(np.zeros((B, self.n_hidden), dtype=self.dtype))
        who = type(self).__name__
        s = _as_input(s, self.dtype, who)
        if tuple(s.shape) != (B, self.n_hidden):
            raise ValueError(
                f"{who}: {name} must have shape (batch, n_hidden) = "
                f"{(B, self.n_hidden)}, got {tuple(s.shape)}"
            )
        return s

    def _recur(self, h: Any) -> Any:
        """h W_hh^T + b_hh, the recurrent part of the weighted input."""
        return F.linear(h, self.weight_hh, self.bias_hh)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_in}, {self.n_hidden})"


class RNN(_Recurrent):
    """A single-layer recurrent network (Elman), batch first, as ``torch.nn.RNN``.

    For each step t = 1, ..., T of an input x of shape (batch, time, n_in):

        z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,    h_t = f(z_t),

    with f = tanh or relu (``nonlinearity``) and h_0 = 0 unless given. The
    same W_ih, W_hh, b_ih, b_hh serve every step: in the unrolled graph each
    has T consumers, so its gradient is a sum over time (backpropagation
    through time). ``weight_ih`` (n_hidden, n_in), ``weight_hh`` (n_hidden,
    n_hidden), ``bias_ih`` and ``bias_hh`` (n_hidden,) are drawn, in that
    order, from U(-1/sqrt(n_hidden), 1/sqrt(n_hidden)) as in PyTorch.

    ``rnn(x, h0=None)`` returns ``(output, h_n)``: every h_t as ``output``
    of shape (batch, time, n_hidden), and the last, h_T, of shape
    (batch, n_hidden). (PyTorch's h_n has an extra leading axis of length
    1, num_layers times directions; here there is one layer, one direction.)
    """

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        seed: Seed = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        super().__init__(n_in, n_hidden, bias, seed, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x: Any, h0: Any = None) -> tuple[Tensor, Tensor]:
        xz, B, T = self._inputs(x)
        h = self._state(h0, B, "h0")
        f = _ACTIVATIONS[self.nonlinearity]
        hs = []
        for t in range(T):
            h = f(xz[:, t] + self._recur(h))  # h_t = f(z_t)
            hs.append(h)
        return ops.stack(hs, axis=1), h

    def __repr__(self) -> str:
        return f"RNN({self.n_in}, {self.n_hidden}, nonlinearity={self.nonlinearity!r})"


class LSTM(_Recurrent):
    """A single-layer long short-term memory, batch first, as ``torch.nn.LSTM``.

    For each step t, with the gates in PyTorch's order (i, f, g, o):

        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)    input gate
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)    forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     cell input
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)    output gate
        c_t = f_t * c_{t-1} + i_t * g_t,    h_t = o_t * tanh(c_t),

    (* elementwise), h_0 = c_0 = 0 unless given. The cell state c is updated
    by addition: along the path c_{t-1} -> c_t its Jacobian is diag(f_t), no
    weight matrix and no squashing derivative. ``weight_ih`` (4 n_hidden,
    n_in) stacks W_ii, W_if, W_ig, W_io; ``weight_hh`` (4 n_hidden, n_hidden)
    and the biases (4 n_hidden,) likewise; all drawn from
    U(-1/sqrt(n_hidden), 1/sqrt(n_hidden)) as in PyTorch.

    ``lstm(x, state=None)`` with ``state = (h0, c0)`` returns
    ``(output, (h_n, c_n))``: every h_t, shape (batch, time, n_hidden), and
    the last hidden and cell states, shape (batch, n_hidden) each.
    """

    n_gates = 4

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        bias: bool = True,
        seed: Seed = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__(n_in, n_hidden, bias, seed, dtype)

    def forward(
        self, x: Any, state: tuple[Any, Any] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        xz, B, T = self._inputs(x)
        if state is not None and len(state) != 2:
            raise ValueError("LSTM: state must be a pair (h0, c0)")
        h0, c0 = (None, None) if state is None else state
        h, c = self._state(h0, B, "h0"), self._state(c0, B, "c0")
        H, hs = self.n_hidden, []
        for t in range(T):
            z = xz[:, t] + self._recur(h)  # (B, 4H): blocks i, f, g, o
            i = z[:, :H].sigmoid()
            f = z[:, H : 2 * H].sigmoid()
            g = z[:, 2 * H : 3 * H].tanh()
            o = z[:, 3 * H :].sigmoid()
            c = f * c + i * g  # the additive cell update
            h = o * c.tanh()
            hs.append(h)
        return ops.stack(hs, axis=1), (h, c)
