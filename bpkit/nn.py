"""Layers and networks on :class:`bpkit.Tensor`, with PyTorch's semantics and names.

A layer maps a batch of rows a (shape (N, n_in)) to ``z = a @ W.T + b``, that is
z^l = W^l a^{l-1} + b^l with ``W[j, k]`` = w^l_{jk}, the weight from node k to node j.
Initialisation (``seed``: an int, a ``np.random.Generator`` or None):
``"he"`` w ~ N(0, 2 / n_in) (He et al. 2015, for ReLU-like f); ``"xavier"`` w ~ U(-r, r),
r = sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010, for tanh and sigmoid); both times
``scale`` (default 1), biases 0. ``"uniform"``: w and b ~ U(-r, r), r = ``scale`` (default
0.3; Rumelhart, Hinton & Williams 1986).
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
    "Module", "Linear", "MLP", "Sequential", "Residual", "Flatten", "ReLU", "Tanh", "Sigmoid",
    "Conv2d", "AvgPool2d", "MaxPool2d", "im2col", "BatchNorm1d", "LayerNorm", "RNN", "LSTM",
]

Seed = int | np.random.Generator | None

_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "relu": F.relu, "tanh": F.tanh, "sigmoid": F.sigmoid, "swish": F.swish, "mish": F.mish,
}


class Module:
    """Base class: ``m(x)`` runs ``m.forward(x)``. Parameters are the Tensors with
    ``requires_grad`` among the attributes (or items of list/tuple attributes) and those of
    sub-modules; ``buffer_names`` names arrays of state that are not parameters."""

    training: bool = True
    buffer_names: tuple[str, ...] = ()

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    def _walk(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
        """(name, value) for this module and, depth first, all it holds; each module once."""
        seen.add(id(self))
        yield prefix.rstrip("."), self
        for attr, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                members = [(f"{attr}.{i}", item) for i, item in enumerate(value)]
            else:
                members = [(attr, value)]
            for name, v in members:
                if not isinstance(v, Module):
                    yield prefix + name, v
                elif id(v) not in seen:
                    yield from v._walk(f"{prefix}{name}.", seen)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(name, Tensor) for every parameter (``"layers.0.W"``), W before b, layer by
        layer; a Tensor shared by layers (tied weights) is listed once, by its first name."""
        seen: set[int] = set()
        for name, p in self._walk(prefix, set()):
            if isinstance(p, Tensor) and p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for this module (named ``prefix``) and every sub-module, once."""
        return ((name, m) for name, m in self._walk(prefix, set()) if isinstance(m, Module))

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) for every buffer of this module and its sub-modules."""
        for name, m in self.named_modules(prefix):
            for b in m.buffer_names:
                yield (f"{name}.{b}" if name else b), getattr(m, b)

    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=True``) or evaluation mode, for every sub-module too."""
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
        """Copy arrays or Tensors into the parameters and buffers in place, all or nothing:
        names and shapes must match (ValueError), dtypes be int or float (TypeError)."""
        buffers = dict(self.named_buffers())
        params: dict[str, Any] = dict(self.named_parameters()) | buffers
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"load_state_dict: parameter names differ; missing {missing}, "
                             f"unexpected {unexpected}")
        arrays = {n: np.asarray(v.data if isinstance(v, Tensor) else v) for n, v in state.items()}
        bad_type = [f"{n}: {a.dtype}" for n, a in arrays.items() if a.dtype.kind not in "iuf"]
        if bad_type:
            raise TypeError("load_state_dict: parameters must be real numbers (int or float "
                            "arrays), got " + "; ".join(bad_type))
        bad = [f"{n}: expected {p.shape}, got {arrays[n].shape}"
               for n, p in params.items() if arrays[n].shape != p.shape]
        if bad:
            raise ValueError("load_state_dict: shape mismatch: " + "; ".join(bad))
        for n, p in params.items():
            if n in buffers:
                p[...] = arrays[n]
            else:
                p.assign(arrays[n])  # in place; the version goes up

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` to ``path`` (``np.savez``; no pickle, no suffix added)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | Path) -> None:
        """Read a file written by :meth:`save` (no pickle), as :meth:`load_state_dict`."""
        try:
            f = np.load(path, allow_pickle=False)
        except ValueError as e:  # NumPy refuses a pickle (or a file it cannot read)
            raise ValueError(f"Module.load: {path} is not an .npz file of arrays ({e})") from e
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"Module.load: {path} holds a single array (.npy); expected an "
                             ".npz archive of named arrays, as written by Module.save")
        with f:
            state = {}
            for k in f.files:
                try:
                    state[k] = f[k]
                except ValueError as e:  # an object array needs pickle
                    raise ValueError(f"Module.load: array {k!r} in {path} needs pickle to "
                                     "load (dtype object), which is refused") from e
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _checked(who: str, dtype: DTypeLike, what: str = "sizes", **sizes: Any) -> np.dtype:
    """The layer's dtype (float32 or float64), once ``sizes`` are checked."""
    if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in sizes.values()):
        got = ", ".join(f"{name}={n!r}" for name, n in sizes.items())
        raise ValueError(f"{who}: {what} must be positive ints, got {got}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt}")
    return dt


def _init(shape: tuple[int, ...], fan_in: int, fan_out: int, init: str, scale: float | None,
          seed: Seed, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights of ``shape`` and biases of shape (shape[0],), both float64."""
    rng = _rng(seed)
    if init == "uniform":
        r = 0.3 if scale is None else scale
        return rng.uniform(-r, r, shape), rng.uniform(-r, r, shape[0])
    if init == "he":
        W = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "xavier":
        r = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-r, r, shape)
    else:
        raise ValueError(f"{who}: unknown init {init!r}; use 'he', 'xavier' or 'uniform'")
    return (W if scale is None else W * scale), np.zeros(shape[0])


def _as_input(x: Any, dtype: np.dtype, who: str) -> Any:
    """An array as a constant Tensor of ``dtype``; a Tensor (or Dual) must have that dtype."""
    if not isinstance(x, (Tensor, Dual)):
        return Tensor(np.asarray(x, dtype=dtype))
    if x.dtype != dtype:
        raise TypeError(f"{who}: input has dtype {x.dtype} but the parameters are {dtype}; "
                        f"convert the input (e.g. Tensor(x.data.astype(np.{dtype})))")
    return x


# -- fully connected ----------------------------------------------------------------------
class Linear(Module):
    """Affine layer :math:`z^l = W^l a^{l-1} + b^l`; for a batch of rows ``z = a @ W.T + b``,
    ``W`` of shape (n_out, n_in) (``W[j, k]`` = :math:`w^l_{jk}`), ``b`` of shape (n_out,)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, init: str = "he",
                 scale: float | None = None, seed: Seed = None,
                 dtype: DTypeLike = np.float64) -> None:
        dt = _checked("Linear", dtype, n_in=n_in, n_out=n_out)
        W, b = _init((n_out, n_in), n_in, n_out, init, scale, seed, "Linear")
        self.n_in, self.n_out, self.init = n_in, n_out, init
        # W column-major: a @ W.T is then a row-major BLAS product (~10% faster, wide inputs)
        self.W = Tensor(np.asfortranarray(W, dtype=dt), requires_grad=True, label="W")
        self.b = Tensor(b.astype(dt), requires_grad=True, label="b") if bias else None

    def forward(self, a: Any) -> Tensor:
        return F.linear(_as_input(a, self.W.dtype, "Linear"), self.W, self.b)

    def __repr__(self) -> str:
        return f"Linear({self.n_in}, {self.n_out}, bias={self.b is not None}, init={self.init!r})"


class ReLU(Module):
    """a = max(z, 0) elementwise."""

    def forward(self, z: Any) -> Any:
        return F.relu(z)


class Tanh(Module):
    """a = tanh(z) elementwise."""

    def forward(self, z: Any) -> Any:
        return F.tanh(z)


class Sigmoid(Module):
    """a = sigma(z) = 1 / (1 + e^{-z}) elementwise."""

    def forward(self, z: Any) -> Any:
        return F.sigmoid(z)


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
    """Residual block (He et al. 2016): ``Residual(F)(a) = a + F(a)``, F a ``module`` keeping
    the shape. Jacobian I + dF/da, so the adjoint passes through plus the branch's:
    abar_in = abar_out + (dF/da)^T abar_out (chapter 13)."""

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
            raise ValueError(f"Residual: the branch maps shape {a.shape} to {out.shape}; "
                             "a + F(a) needs equal shapes")
        return a + out

    def __repr__(self) -> str:
        return f"Residual({self.module!r})"


def _activation(f: str | Callable | None) -> Callable[[Any], Any] | None:
    if f is None or callable(f):
        return f
    if f not in _ACTIVATIONS:
        raise ValueError(f"MLP: unknown activation {f!r}; use one of {sorted(_ACTIVATIONS)} "
                         "or a callable")
    return _ACTIVATIONS[f]


class MLP(Module):
    r"""Fully connected network, ``sizes = [n_0, ..., n_L]``: :math:`a^0 = x`,
    :math:`a^l = f(W^l a^{l-1} + b^l)`, with ``output_activation`` :math:`f^L` (None: the
    identity) at layer L. Layer l is ``layers[l - 1]``, a :class:`Linear`; ``init`` defaults
    to "he" for relu/swish/mish, else "xavier"."""

    def __init__(self, sizes: list[int], activation: str | Callable = "relu",
                 output_activation: str | Callable | None = None, init: str | None = None,
                 scale: float | None = None, seed: Seed = 0,
                 dtype: DTypeLike = np.float64) -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        self.sizes = list(sizes)
        self.f = _activation(activation)
        self.f_out = _activation(output_activation)
        if init is None:
            init = "he" if activation in ("relu", "swish", "mish") else "xavier"
        rng = _rng(seed)
        self.layers = [Linear(n_in, n_out, init=init, scale=scale, seed=rng, dtype=dtype)
                       for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].W.dtype

    def forward(self, x: Any) -> Tensor:
        a = x
        for l, layer in enumerate(self.layers, start=1):  # noqa: E741  (layer index l)
            z = layer(a)
            f = self.f if l < len(self.layers) else self.f_out
            a = f(z) if f is not None else z
        return a

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, dtype={self.dtype})"


# -- normalisation (chapter 12) -----------------------------------------------------------
class _Norm(Module):
    """What BatchNorm1d and LayerNorm share: n features, eps, gamma = 1 and beta = 0."""

    def __init__(self, n: int, eps: float = 1e-5, dtype: DTypeLike = np.float64) -> None:
        who = type(self).__name__
        if not eps > 0:
            raise ValueError(f"{who}: eps must be positive, got {eps!r}")
        dt = _checked(who, dtype, n=n)
        self.n, self.eps = n, float(eps)
        self.weight = Tensor(np.ones(n, dtype=dt), requires_grad=True, label="gamma")
        self.bias = Tensor(np.zeros(n, dtype=dt), requires_grad=True, label="beta")


class BatchNorm1d(_Norm):
    """Batch normalisation (Ioffe & Szegedy 2015) of the n features of a batch (N, n):
    y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta (``weight`` gamma, ``bias`` beta) with the
    batch mean and biased variance in training, the buffers ``running_mean`` and
    ``running_var`` after :meth:`Module.eval`. Training updates them as PyTorch does:
    running = (1 - momentum) running + momentum batch, with the unbiased variance."""

    buffer_names = ("running_mean", "running_var")

    def __init__(self, n: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: DTypeLike = np.float64) -> None:
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm1d: momentum must lie in [0, 1], got {momentum!r}")
        super().__init__(n, eps, dtype)
        self.momentum = float(momentum)
        self.running_mean = np.zeros(n, dtype=self.weight.dtype)
        self.running_var = np.ones(n, dtype=self.weight.dtype)

    def forward(self, x: Any) -> Any:
        x = _as_input(x, self.weight.dtype, "BatchNorm1d")
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"BatchNorm1d: expected input (N, {self.n}), got shape {x.shape}")
        if not self.training:
            scale = 1.0 / np.sqrt(self.running_var + self.eps)
            return (x - self.running_mean) * scale * self.weight + self.bias
        if x.shape[0] < 2:
            raise ValueError("BatchNorm1d: training mode needs more than one example per "
                             f"batch, got shape {x.shape} (use eval() for single examples)")
        data = np.asarray(x.data)
        mu, var = data.mean(axis=0), data.var(axis=0, ddof=1)  # unbiased for the estimate
        m = self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mu
        self.running_var[...] = (1 - m) * self.running_var + m * var
        xhat = ops.standardize(x, axes=(0,), eps=self.eps)
        return xhat * self.weight + self.bias

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.n}, eps={self.eps:g}, momentum={self.momentum:g})"


class LayerNorm(_Norm):
    """Layer normalisation (Ba, Kiros & Hinton 2016) over the last axis, of size n: each
    example is standardised over its own features, y = gamma (x - mu) / sqrt(sigma^2 + eps)
    + beta, the same in training and evaluation."""

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


def _patches(x: Any, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
             who: str) -> tuple[Tensor, int, int]:
    """(im2col(x), H', W') with H' = (H + 2p - kh) // s + 1 (likewise W')."""
    Ho = ops.conv_out_size(x.shape[2], k[0], s[0], p[0], who, "height")
    Wo = ops.conv_out_size(x.shape[3], k[1], s[1], p[1], who, "width")
    return ops.im2col(x, k=k, s=s, p=p), Ho, Wo


def im2col(x: Any, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] = 0) -> Any:
    """Unfold the patches of an NCHW tensor into rows, shape (N H' W', C kh kw), ordered
    (c, u, v) like the weights of :class:`Conv2d`; H' = (H + 2p - kh) // s + 1 (likewise W').
    Backward (col2im) adds each entry's gradient to the pixel it was copied from."""
    if not isinstance(x, (Tensor, Dual)):
        x = Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"im2col: input must be NCHW (4-D), got shape {x.shape}")
    k = _pair(kernel_size, "kernel_size", "im2col")
    s = _pair(stride, "stride", "im2col")
    p = _pair(padding, "padding", "im2col", minimum=0)
    return ops.im2col(x, k=k, s=s, p=p)


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in deep-learning libraries) on NCHW input:
    out[n, k, i, j] = b_k + sum_{c,u,v} W[k, c, u, v] x_pad[n, c, i*s + u, j*s + v], that is
    ``im2col(x) @ W.reshape(K, -1).T + b``; ``W`` has shape (K, C, kh, kw) for K
    ``out_channels`` and C ``in_channels``."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, bias: bool = True, init: str = "he",
                 scale: float | None = None, seed: Seed = None,
                 dtype: DTypeLike = np.float64) -> None:
        dt = _checked("Conv2d", dtype, "channels", in_channels=in_channels,
                      out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.padding = _pair(padding, "padding", "Conv2d", minimum=0)
        kh, kw = self.kernel_size
        shape = (out_channels, in_channels, kh, kw)
        W, b = _init(shape, in_channels * kh * kw, out_channels * kh * kw, init, scale, seed,
                     "Conv2d")
        self.W = Tensor(W.astype(dt), requires_grad=True, label="W")
        self.b = Tensor(b.astype(dt), requires_grad=True, label="b") if bias else None

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x, self.W.dtype, "Conv2d")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d: expected input (N, {self.in_channels}, H, W), "
                             f"got shape {x.shape}")
        cols, Ho, Wo = _patches(x, self.kernel_size, self.stride, self.padding, "Conv2d")
        z = cols @ self.W.reshape(self.out_channels, -1).T  # (N Ho Wo, K)
        if self.b is not None:
            z = z + self.b
        return z.reshape(x.shape[0], Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding})")


class _Pool2d(Module):
    """Pooling of each kh x kw window of each channel by the subclass's ``_reduce(cols)``."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | None = None) -> None:
        who = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", who)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", who)

    def forward(self, x: Any) -> Tensor:
        who = type(self).__name__
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim != 4:
            raise ValueError(f"{who}: input must be NCHW, got shape {x.shape}")
        N, C, H, W = x.shape  # one row of cols per window of one channel
        cols, Ho, Wo = _patches(x.reshape(N * C, 1, H, W), self.kernel_size, self.stride,
                                (0, 0), who)
        return self._reduce(cols).reshape(N, C, Ho, Wo)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class AvgPool2d(_Pool2d):
    """Mean over each kh x kw window (stride = kernel size by default), channel by channel."""

    def _reduce(self, cols: Tensor) -> Tensor:
        return cols.mean(axis=1)


class MaxPool2d(_Pool2d):
    """Maximum over each kh x kw window; the gradient goes to the maximum (ties share it)."""

    def _reduce(self, cols: Tensor) -> Tensor:
        return cols.max(axis=1)


# -- recurrent (chapter 14) ---------------------------------------------------------------
class _Recurrent(Module):
    """What RNN and LSTM share: PyTorch's parameters, initialisation and checks."""

    n_gates = 1  # blocks of n_hidden rows in weight_ih, weight_hh, bias_ih, bias_hh

    def __init__(self, n_in: int, n_hidden: int, bias: bool = True, seed: Seed = None,
                 dtype: DTypeLike = np.float64) -> None:
        dt = _checked(type(self).__name__, dtype, n_in=n_in, n_hidden=n_hidden)
        self.n_in, self.n_hidden = n_in, n_hidden
        rng, r, G = _rng(seed), 1.0 / np.sqrt(n_hidden), self.n_gates * n_hidden

        def draw(name: str, *shape: int) -> Tensor:  # every entry ~ U(-r, r)
            w = rng.uniform(-r, r, shape).astype(dt)
            return Tensor(w, requires_grad=True, label=name)

        self.weight_ih = draw("weight_ih", G, n_in)
        self.weight_hh = draw("weight_hh", G, n_hidden)
        self.bias_ih = draw("bias_ih", G) if bias else None
        self.bias_hh = draw("bias_hh", G) if bias else None

    @property
    def dtype(self) -> np.dtype:
        return self.weight_ih.dtype

    def _inputs(self, x: Any) -> tuple[Any, int, int]:
        """(x W_ih^T + b_ih for every step, shape (B, T, G); B; T)."""
        who = type(self).__name__
        x = _as_input(x, self.dtype, who)
        if x.ndim != 3 or x.shape[2] != self.n_in or x.shape[1] == 0:
            hint = " (one sequence? add a batch axis: x[None])" if x.ndim == 2 else ""
            raise ValueError(f"{who}: expected input of shape (batch, time, {self.n_in}) "
                             f"with time >= 1 (batch first), got {tuple(x.shape)}{hint}")
        B, T = x.shape[0], x.shape[1]
        xz = F.linear(x.reshape(B * T, self.n_in), self.weight_ih, self.bias_ih)
        return xz.reshape(B, T, self.n_gates * self.n_hidden), B, T

    def _state(self, s: Any, B: int, name: str) -> Any:
        """An initial state: zeros (B, n_hidden) for None, else checked."""
        if s is None:
            return Tensor(np.zeros((B, self.n_hidden), dtype=self.dtype))
        who = type(self).__name__
        s = _as_input(s, self.dtype, who)
        if tuple(s.shape) != (B, self.n_hidden):
            raise ValueError(f"{who}: {name} must have shape (batch, n_hidden) = "
                             f"{(B, self.n_hidden)}, got {tuple(s.shape)}")
        return s

    def _recur(self, h: Any) -> Any:
        """h W_hh^T + b_hh, the recurrent part of the weighted input."""
        return F.linear(h, self.weight_hh, self.bias_hh)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_in}, {self.n_hidden})"


class RNN(_Recurrent):
    """A single-layer Elman network, batch first, as ``torch.nn.RNN``:
    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), f = tanh or relu (``nonlinearity``).
    ``rnn(x, h0=None)``, x of shape (batch, time, n_in), returns ``(output, h_n)``: every h_t
    (batch, time, n_hidden) and h_T (batch, n_hidden). Parameters ~ U(-1/sqrt(H), 1/sqrt(H))
    for H = n_hidden, drawn in the order weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, n_in: int, n_hidden: int, nonlinearity: str = "tanh",
                 bias: bool = True, seed: Seed = None, dtype: DTypeLike = np.float64) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', "
                             f"got {nonlinearity!r}")
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
    """A single-layer long short-term memory, batch first, as ``torch.nn.LSTM``; for each
    step t, with the gates in PyTorch's order (i, f, g, o) and * elementwise:

        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)    input gate
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)    forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     cell input
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)    output gate
        c_t = f_t * c_{t-1} + i_t * g_t,    h_t = o_t * tanh(c_t),

    ``weight_ih`` stacks W_ii, W_if, W_ig, W_io (``weight_hh``, the biases likewise);
    ``lstm(x, state=None)``, state = (h0, c0) (default 0), returns ``(output, (h_n, c_n))``.
    """

    n_gates = 4

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
