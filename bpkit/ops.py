"""The primitives: each array operation of bpkit, defined once with its derivatives::

    out = fwd(*x, **params)
    vjp_i(g, out, *x, **params) = dC/dx_i        given g = dC/d(out)      (reverse mode)
    jvp_i(dx_i, out, *x, **params) = d(out)      given the tangent dx_i   (forward mode)

Positional arguments are the differentiable inputs, keyword arguments constants. The
rules use operations that arrays and Tensors share (``*``, ``@``, ``.T``, ``.sum``, the
primitives), so ``backward(create_graph=True)`` records the backward pass as a graph.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

Rule = Callable[..., Any]


class Primitive:
    """A named array function ``fwd`` with one VJP and one JVP per input.

    ``reads[i]`` lists the data that the VJP of input i reads (input indices, -1 for the
    output; None: all): the engine refuses a backward pass after it changed in place.
    With ``residual``, fwd returns (out, r) and the VJPs on arrays receive ``res=r``."""

    def __init__(self, name: str, fwd: Rule,
                 vjps: tuple[Rule, ...], jvps: tuple[Rule, ...],
                 reads: tuple[tuple[int, ...], ...] | None = None,
                 residual: bool = False) -> None:
        self.name, self.fwd, self.vjps, self.jvps = name, fwd, vjps, jvps
        self.__doc__ = fwd.__doc__  # the equation and its rules, for help() and the API page
        self.reads, self.residual = reads, residual
        self.reads_data = reads is None or any(reads)  # the engine must check versions

    def __call__(self, *args: Any, **params: Any) -> Any:
        """Apply fwd to arrays, or let a Tensor or Dual among the arguments bind it."""
        for a in args:
            if hasattr(a, "bind") and not isinstance(a, np.ndarray):
                return a.bind(self, *args, **params)
        out = self.fwd(*args, **params)
        return out[0] if self.residual else out

    def explain_broadcast(self, error: ValueError, arrays: list) -> None:
        """Raise NumPy's broadcasting error again, naming the primitive and the shapes."""
        if "broadcast" in str(error):
            shapes = " and ".join(str(np.shape(a)) for a in arrays)
            message = f"{self.name}: shapes {shapes} cannot be broadcast together"
            raise ValueError(message) from error

    def __eq__(self, other: object) -> bool:
        return other is self or other == self.name

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return self.name


def primitive(name: str, vjps: tuple[Rule, ...], jvps: tuple[Rule, ...],
              reads: tuple[tuple[int, ...], ...] | None = None,
              residual: bool = False) -> Callable[[Rule], Primitive]:
    """Decorator: the forward function below, with its rules, becomes a Primitive."""
    return lambda fwd: Primitive(name, fwd, vjps, jvps, reads, residual)


def value(x: Any) -> np.ndarray:
    """The array of an array or a graph object: for masks and constants inside rules."""
    return x if isinstance(x, np.ndarray) else np.asarray(x.data)


def matmul_like(x: Any, y: Any, like: Any) -> Any:
    """x @ y, laid out in memory as ``like``: (y^T x^T)^T for a column-major ``like``
    (W.T), so that dC/dW has W's layout and ``W -= eta dC/dW`` streams contiguously."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        return x @ y
    if like.ndim == 2 and like.strides[0] < like.strides[1]:
        return np.matmul(y.T, x.T).T
    return np.matmul(x, y)


# -- elementwise, two inputs (broadcasting) -----------------------------------------------
@primitive("add", vjps=(lambda g, out, a, b: g, lambda g, out, a, b: g),
           jvps=(lambda da, out, a, b: da, lambda db, out, a, b: db), reads=((), ()))
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = a + b.  dC/da = g, dC/db = g.  dz = da + db."""
    return np.add(a, b)


@primitive("sub", vjps=(lambda g, out, a, b: g, lambda g, out, a, b: -g),
           jvps=(lambda da, out, a, b: da, lambda db, out, a, b: -db), reads=((), ()))
def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = a - b.  dC/da = g, dC/db = -g.  dz = da - db."""
    return np.subtract(a, b)


@primitive(
    "mul",
    vjps=(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a),
    jvps=(lambda da, out, a, b: da * b, lambda db, out, a, b: a * db),
    reads=((1,), (0,)),
)
def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = a b.  dC/da = g b, dC/db = g a.  dz = da b + a db."""
    return np.multiply(a, b)


@primitive("div", vjps=(lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b),
           jvps=(lambda da, out, a, b: da / b, lambda db, out, a, b: -(out * db / b)),
           reads=((1,), (1, -1)))
def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = a / b.  dC/da = g / b, dC/db = -g z / b.  dz = da / b - z db / b."""
    return np.divide(a, b)


def _exponent(b: Any) -> Any:
    """b - 1 where b != 0, else 1: so that b a^(b-1) is 0, not NaN, at b = 0, a = 0."""
    return where(value(b) != 0, b - 1, 1.0)


def _log_base(a: Any) -> Any:
    """log a where a != 0, else log 1 = 0: the limit of a^b log a at a = 0 (b > 0)."""
    return log(where(value(a) != 0, a, 1.0))


@primitive("pow", vjps=(lambda g, out, a, b: g * b * a ** _exponent(b),
                        lambda g, out, a, b: g * out * _log_base(a)),
           jvps=(lambda da, out, a, b: b * a ** _exponent(b) * da,
                 lambda db, out, a, b: out * _log_base(a) * db))
def power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = a^b.  dC/da = g b a^(b-1), dC/db = g z log a, with the limits 0 at b = 0 and at
    a = 0 (as in HIPS autograd): a zero in the data does not make the gradient NaN."""
    return np.power(a, b)


def _dpow(a: Any, k: float) -> Any:
    """d(a^k)/da = k a^(k-1); 0 for k = 0 (also at a = 0)."""
    return k * a ** (k - 1) if k != 0 else np.zeros_like(value(a))


@primitive("pow_k", vjps=(lambda g, out, a, k: g * _dpow(a, k),),
           jvps=(lambda da, out, a, k: _dpow(a, k) * da,), reads=((0,),))
def power_k(a: np.ndarray, k: float) -> np.ndarray:
    """z = a^k for a constant number k.  dC/da = g k a^(k-1).  dz = k a^(k-1) da."""
    return a**k


@primitive("where", vjps=(lambda g, out, a, b, mask: where(mask, g, 0.0),
                          lambda g, out, a, b, mask: where(mask, 0.0, g)),
           jvps=(lambda da, out, a, b, mask: np.where(mask, da, 0.0),
                 lambda db, out, a, b, mask: np.where(mask, 0.0, db)), reads=((), ()))
def _where(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """z = a where mask, else b (mask is constant).  dC/da = g [mask], dC/db = g [not mask]."""
    return np.where(mask, a, b)


def where(mask: np.ndarray, a: Any, b: Any) -> Any:
    """a where the constant boolean ``mask`` is true, else b (the primitive ``where``)."""
    return _where(a, b, mask=mask)


@primitive(
    "matmul",
    vjps=(lambda g, out, a, b: matmul_like(g, b.T, a) if a.ndim == 2 == b.ndim
          else _matmul_vjp(g, a, b, 0),
          lambda g, out, a, b: matmul_like(a.T, g, b) if a.ndim == 2 == b.ndim
          else _matmul_vjp(g, a, b, 1)),
    jvps=(lambda da, out, a, b: np.matmul(da, b), lambda db, out, a, b: np.matmul(a, db)),
    reads=((1,), (0,)),
)
def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Z = A B (NumPy's rules: 1-D operands, batched leading axes).
    dC/dA = G B^T, dC/dB = A^T G.  dZ = dA B + A dB."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes "
                         f"{a.shape} and {b.shape} (use * for a scalar)")
    try:
        return np.matmul(a, b)
    except ValueError as e:
        axis = "only" if b.ndim == 1 else "second-to-last"
        message = (f"matmul: shapes {a.shape} and {b.shape} are not aligned (the last "
                   f"axis of the first must equal the {axis} axis of the second)")
        raise ValueError(message) from e


def _swap(x: Any) -> Any:
    """The transpose of each matrix of a batch (the last two axes swapped)."""
    return x.transpose(tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def _matmul_vjp(g: Any, a: Any, b: Any, i: int) -> Any:
    """dC/dA = G B^T (i = 0), dC/dB = A^T G (i = 1) for 1-D (a row A, a column B) or
    batched operands, summed over the batch axes."""
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    if a.ndim == 1 or b.ndim == 1:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
    if i == 0:
        return unbroadcast(g @ _swap(b2), a2.shape).reshape(a.shape)
    return unbroadcast(_swap(a2) @ g, b2.shape).reshape(b.shape)


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum g over the axes that broadcasting added or stretched, giving ``shape``."""
    extra = g.ndim - len(shape)
    if extra == 1:
        g = g.sum(axis=0)
    elif extra:
        g = g.sum(axis=tuple(range(extra)))
    if tuple(g.shape) != shape:
        g = g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)
    return g


# -- elementwise, one input ---------------------------------------------------------------
@primitive("neg", vjps=(lambda g, out, a: -g,), jvps=(lambda da, out, a: -da,), reads=((),))
def neg(a: np.ndarray) -> np.ndarray:
    """z = -a.  dC/da = -g."""
    return np.negative(a)


@primitive("exp", vjps=(lambda g, out, a: g * out,), jvps=(lambda da, out, a: out * da,),
           reads=((-1,),))
def exp(a: np.ndarray) -> np.ndarray:
    """z = e^a.  dC/da = g e^a = g z."""
    return np.exp(a)


@primitive("log", vjps=(lambda g, out, a: g / a,), jvps=(lambda da, out, a: da / a,),
           reads=((0,),))
def log(a: np.ndarray) -> np.ndarray:
    """z = log a.  dC/da = g / a."""
    return np.log(a)


@primitive("tanh", vjps=(lambda g, out, a: g * (1 - out * out),),
           jvps=(lambda da, out, a: (1 - out * out) * da,), reads=((-1,),))
def tanh(a: np.ndarray) -> np.ndarray:
    """z = tanh a.  dC/da = g (1 - z^2)."""
    return np.tanh(a)


@primitive("sigmoid", vjps=(lambda g, out, a: g * out * (1 - out),),
           jvps=(lambda da, out, a: out * (1 - out) * da,), reads=((-1,),))
def sigmoid(a: np.ndarray) -> np.ndarray:
    """z = sigma(a) = 1/(1 + e^{-a}), from e^{-|a|} <= 1.  dC/da = g z (1 - z)."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


@primitive("relu", vjps=(lambda g, out, a: g * (value(a) > 0),),
           jvps=(lambda da, out, a: da * (a > 0),), reads=((0,),))
def relu(a: np.ndarray) -> np.ndarray:
    """z = max(a, 0).  dC/da = g [a > 0] (0 at the kink a = 0)."""
    return np.maximum(a, 0)


@primitive("softplus", vjps=(lambda g, out, a: g * sigmoid(a),),
           jvps=(lambda da, out, a: sigmoid(a) * da,), reads=((0,),))
def softplus(a: np.ndarray) -> np.ndarray:
    """z = log(1 + e^a) = max(a, 0) + log(1 + e^{-|a|}) (stable).  dC/da = g sigma(a)."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


# -- reductions, shape and indexing -------------------------------------------------------
def _kept(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


@primitive(
    "sum",
    vjps=(lambda g, out, a, axes, keepdims: expand(g, shape=a.shape, kept=_kept(a.shape, axes)),),
    jvps=(lambda da, out, a, axes, keepdims: da.sum(axis=axes, keepdims=keepdims),),
    reads=((),),
)
def sum_(a: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """z = sum of a over ``axes``.  dC/da = g, copied along the summed axes."""
    return a.sum(axis=axes, keepdims=keepdims)


@primitive(
    "expand",
    vjps=(lambda g, out, a, shape, kept: g.sum(
        axis=tuple(i for i, n in enumerate(kept) if n == 1 and shape[i] != 1), keepdims=True
    ).reshape(a.shape),),
    jvps=(lambda da, out, a, shape, kept: expand(da, shape=shape, kept=kept),),
    reads=((),),
)
def expand(a: np.ndarray, shape: tuple[int, ...], kept: tuple[int, ...]) -> np.ndarray:
    """z = a (of shape ``kept``) copied along the axes where ``kept`` is 1: the VJP of
    sum.  dC/da = g summed over those axes."""
    out = np.empty(shape, dtype=np.result_type(a))
    out[...] = a.reshape(kept)
    return out


def _max_share(a: Any, out: Any, axes: tuple[int, ...]) -> np.ndarray:
    """[a == max] / (number of maximal entries): ties share the gradient equally."""
    a = value(a)
    mask = a == value(out).reshape(_kept(a.shape, axes))
    return mask / mask.sum(axis=axes, keepdims=True)


@primitive("max", vjps=(lambda g, out, a, axes, keepdims:
                        g.reshape(_kept(a.shape, axes)) * _max_share(a, out, axes),),
           jvps=(lambda da, out, a, axes, keepdims:
                 (da * _max_share(a, out, axes)).sum(axis=axes, keepdims=keepdims),),
           reads=((0, -1),))
def max_(a: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """z = max of a over ``axes``.  dC/da = g at the maximal entries, shared equally by ties."""
    return a.max(axis=axes, keepdims=keepdims)


@primitive("reshape", vjps=(lambda g, out, a, shape: g.reshape(a.shape),),
           jvps=(lambda da, out, a, shape: da.reshape(shape),), reads=((),))
def reshape(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Same entries, new shape.  dC/da = g reshaped back."""
    try:
        return a.reshape(shape)
    except ValueError as e:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} "
                         f"entries) into {shape}") from e


@primitive("transpose", vjps=(lambda g, out, a, perm: g.transpose(_inverse(perm)),),
           jvps=(lambda da, out, a, perm: da.transpose(perm),), reads=((),))
def transpose(a: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    """Permute the axes.  dC/da = g with the axes permuted back."""
    return a.transpose(perm)


@functools.cache
def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation that undoes ``perm``."""
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


@primitive("getitem", vjps=(lambda g, out, a, index: scatter(g, index=index, shape=a.shape),),
           jvps=(lambda da, out, a, index: da[index],), reads=((),))
def getitem(a: np.ndarray, index: Any) -> np.ndarray:
    """z = a[index] (basic or integer-array indexing).  dC/da = g scattered to index."""
    try:
        return a[index]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor of shape {a.shape})") from e


@primitive("scatter", vjps=(lambda g, out, a, index, shape: getitem(g, index=index),),
           jvps=(lambda da, out, a, index, shape: scatter(da, index=index, shape=shape),),
           reads=((),))
def scatter(a: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    """z = zeros of ``shape`` with a added at ``index`` (the VJP of getitem).  dC/da = g[index]."""
    out = np.zeros(shape, dtype=a.dtype)
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, np.ndarray) for i in items):  # integer arrays: repeats add up
        np.add.at(out, index, a)
    else:
        out[index] = a
    return out


# -- softmax and its relatives ------------------------------------------------------------
def row_max(a: np.ndarray, axis: int) -> np.ndarray:
    """max over ``axis``, kept (column-major for a short last axis: 3-4x faster)."""
    if a.ndim == 2 and axis in (1, -1) and a.shape[1] <= 16:
        a = np.asfortranarray(a)
    return a.max(axis=axis, keepdims=True)


@primitive(
    "softmax",
    vjps=(lambda g, out, a, axis: out * (g - (g * out).sum(axis=axis, keepdims=True)),),
    jvps=(lambda da, out, a, axis: out * (da - (out * da).sum(axis=axis, keepdims=True)),),
    reads=((-1,),),
)
def softmax(a: np.ndarray, axis: int) -> np.ndarray:
    """s_i = e^{a_i - m} / sum_j e^{a_j - m}, m = max_j a_j.  dC/da = s (g - sum_j g_j s_j)."""
    e = np.exp(a - row_max(a, axis))
    e /= e.sum(axis=axis, keepdims=True)
    return e


@primitive(
    "log_softmax",
    vjps=(lambda g, out, a, axis, res=None:
          g - (softmax(a, axis=axis) if res is None else res) * g.sum(axis=axis, keepdims=True),),
    jvps=(lambda da, out, a, axis:
          da - (softmax(a, axis=axis) * da).sum(axis=axis, keepdims=True),),
    reads=((0,),), residual=True,
)
def log_softmax(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """z_i = a_i - m - log sum_j e^{a_j - m} (log-sum-exp).  dC/da = g - softmax(a) sum_j g_j.
    Residual: softmax(a)."""
    shifted = a - row_max(a, axis)
    e = np.exp(shifted)
    s = e.sum(axis=axis, keepdims=True)
    return shifted - np.log(s), e / s


def _ce_vjp(g: Any, out: Any, z: Any, labels: np.ndarray, res: Any = None) -> Any:
    """dC/dz = (softmax(z) - onehot(y)) g / N."""
    n = len(labels)
    if res is None:  # on Tensors: softmax(z) is recorded, for second derivatives
        y = np.zeros(z.shape, dtype=value(z).dtype)  # onehot(labels)
        y[np.arange(n), labels] = 1
        return (softmax(z, axis=1) - y) * (g / n if n else g * np.nan)
    d = res.copy()  # on arrays: the forward's softmax, minus onehot(y) in place
    d[np.arange(n), labels] -= 1
    d *= g.item() / n if n else np.nan
    return d


def _ce_jvp(dz: np.ndarray, out: np.ndarray, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dC = -(1/N) sum_n (dz_{n, y_n} - sum_k softmax(z_n)_k dz_{n, k})."""
    d = dz - (softmax(z, axis=1) * dz).sum(axis=1, keepdims=True)
    n = len(labels)
    return -d[np.arange(n), labels].sum() / n if n else np.asarray(np.nan, dz.dtype)


@primitive("cross_entropy", vjps=(_ce_vjp,), jvps=(_ce_jvp,), reads=((0,),), residual=True)
def cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C = -(1/N) sum_n log softmax(z_n)[y_n], fused and stable; NaN for N = 0.
    dC/dz = (softmax(z) - onehot(y)) / N.  Residual: softmax(z)."""
    n = len(labels)
    shifted = z - row_max(z, 1)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s)[:, 0] - shifted[np.arange(n), labels]).sum() / n if n else np.nan
    return np.asarray(loss, dtype=z.dtype), e / s


# -- the layer's affine map and the convolution's patches ---------------------------------
@primitive("linear", vjps=(lambda g, out, a, W, b=None: g @ W,
                           lambda g, out, a, W, b=None: matmul_like(g.T, a, W),
                           lambda g, out, a, W, b=None: g.sum(axis=0)),
           jvps=(lambda da, out, a, W, b=None: np.matmul(da, W.T),
                 lambda dW, out, a, W, b=None: np.matmul(a, dW.T),
                 lambda db, out, a, W, b: np.broadcast_to(db, out.shape)),
           reads=((1,), (0,), ()))
def linear(a: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """z = a W^T + b for a batch of rows a (the layer's z^l = W^l a^{l-1} + b^l).
    dC/da = G W, dC/dW = G^T a, dC/db = sum over the batch of G (G = dC/dz)."""
    z = np.matmul(a, W.T)
    if b is not None:
        if np.result_type(z, b) == z.dtype:
            z += b  # in place: z is new
        else:
            z = z + b
    return z


def conv_out_size(n: int, k: int, s: int, p: int, who: str, axis: str) -> int:
    """H' = (H + 2p - k) // s + 1, the number of kernel positions along one axis."""
    if n + 2 * p < k:
        raise ValueError(f"{who}: kernel {k} is larger than the padded input {axis} {n + 2 * p}")
    return (n + 2 * p - k) // s + 1


@primitive("im2col", vjps=(lambda g, out, x, k, s, p: col2im(g, shape=x.shape, k=k, s=s, p=p),),
           jvps=(lambda dx, out, x, k, s, p: im2col(dx, k=k, s=s, p=p),), reads=((),))
def im2col(x: np.ndarray, k: tuple[int, int], s: tuple[int, int],
           p: tuple[int, int]) -> np.ndarray:
    """The patches of NCHW x as rows, shape (N H' W', C kh kw): row (n, i, j) holds
    x_pad[n, c, i s + u, j s + v] ordered (c, u, v).  dC/dx = col2im(g)."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    N, C, H, W = x.shape
    Ho = conv_out_size(H, kh, sh, ph, "im2col", "height")
    Wo = conv_out_size(W, kw, sw, pw, "im2col", "width")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    patches = np.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for u in range(kh):  # one strided slice per kernel offset (u, v)
        for v in range(kw):
            patches[:, :, u, v] = xp[:, :, u : u + sh * Ho : sh, v : v + sw * Wo : sw]
    return patches.transpose(0, 4, 5, 1, 2, 3).reshape(N * Ho * Wo, C * kh * kw)


@primitive("col2im", vjps=(lambda g, out, cols, shape, k, s, p: im2col(g, k=k, s=s, p=p),),
           jvps=(lambda dc, out, cols, shape, k, s, p: col2im(dc, shape=shape, k=k, s=s, p=p),),
           reads=((),))
def col2im(cols: np.ndarray, shape: tuple[int, ...], k: tuple[int, int], s: tuple[int, int],
           p: tuple[int, int]) -> np.ndarray:
    """The adjoint of im2col: each patch entry is added back to the pixel it was copied
    from (a pixel in several patches receives the sum).  dC/dcols = im2col(g)."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    N, C, H, W = shape
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    gp = cols.reshape(N, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    x = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            x[:, :, u : u + sh * Ho : sh, v : v + sw * Wo : sw] += gp[:, :, u, v]
    return x[:, :, ph : ph + H, pw : pw + W]


# -- normalisation (chapter 12: batch and layer normalisation) ----------------------------
def _rstd(x: Any, axes: tuple[int, ...], eps: float) -> Any:
    """1 / sqrt(var + eps) over ``axes`` (biased variance), kept for broadcasting."""
    d = x - x.mean(axis=axes, keepdims=True)
    return ((d * d).mean(axis=axes, keepdims=True) + eps) ** -0.5


def _standardize_vjp(g: Any, out: Any, x: Any, axes: tuple[int, ...],
                     eps: float, res: Any = None) -> Any:
    """dC/dx = (g - mean(g) - xhat mean(g xhat)) / sigma, means over axes."""
    r = _rstd(x, axes, eps) if res is None else res
    gm = g.mean(axis=axes, keepdims=True)
    gx = (g * out).mean(axis=axes, keepdims=True)
    return r * (g - gm - out * gx)


_standardize_jvp = _standardize_vjp  # the Jacobian is symmetric: the same formula


@primitive("standardize", vjps=(_standardize_vjp,), jvps=(_standardize_jvp,),
           reads=((0, -1),), residual=True)
def standardize(x: np.ndarray, axes: tuple[int, ...],
                eps: float) -> tuple[np.ndarray, np.ndarray]:
    """xhat = (x - mu) / sigma with mu, sigma^2 the mean and the biased
    variance over ``axes`` and sigma = sqrt(sigma^2 + eps): the core of batch
    normalisation (axes (0,)) and layer normalisation (the last axis).
    dC/dx = (g - mean(g) - xhat mean(g xhat)) / sigma.  Residual: 1/sigma."""
    d = x - x.mean(axis=axes, keepdims=True)
    r = 1.0 / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)
    return d * r, r


# -- stacking (chapter 14: the hidden states of a recurrent layer) ------------------------
@functools.cache
def _stack(n: int) -> Primitive:
    """The primitive stack of n inputs: VJP i reads g at position i along ``axis`` (a
    view); JVP i puts dx_i there, zeros elsewhere."""
    def at(i: int, axis: int) -> tuple:
        return (slice(None),) * axis + (i,)

    vjps = tuple(lambda g, out, *xs, axis, i=i: g[at(i, axis)] for i in range(n))
    jvps = tuple(lambda dx, out, *xs, axis, i=i:
                 scatter(dx, index=at(i, axis), shape=out.shape) for i in range(n))
    return Primitive("stack", lambda *xs, axis: np.stack(xs, axis=axis), vjps, jvps,
                     reads=((),) * n)


def stack(xs: Any, axis: int = 0) -> Any:
    """z = the arrays x_1, ..., x_n (of one shape) stacked along a new ``axis``, as
    ``np.stack``.  dC/dx_i = g[..., i, ...], the slice of g at position i."""
    xs = list(xs)
    shapes = {tuple(x.shape) if hasattr(x, "shape") else np.shape(x) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"stack: need at least one input, all of one shape, got "
                         f"{sorted(shapes)}")
    ndim = len(shapes.pop())
    if not isinstance(axis, (int, np.integer)) or not -ndim - 1 <= axis <= ndim:
        raise ValueError(f"stack: axis {axis!r} is out of range for {ndim}-D inputs")
    return _stack(len(xs))(*xs, axis=int(axis) % (ndim + 1))


# -- the operators of a graph type --------------------------------------------------------
def _axes(shape: tuple[int, ...], axis: Any, op: str) -> tuple[int, ...]:
    """The reduced axes as a sorted tuple of non-negative ints."""
    nd = len(shape)
    if axis is None:
        return tuple(range(nd))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for ax in axes:
        if not -nd <= ax < nd:
            message = f"{op}: axis {ax} is out of bounds for a tensor of shape {shape}"
            raise np.exceptions.AxisError(message)
    out = tuple(sorted(int(ax) % nd for ax in axes))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} repeats an axis of shape {shape}")
    return out


def _max_axes(shape: tuple[int, ...], axis: Any, op: str) -> tuple[int, ...]:
    """The reduced axes of a maximum (or of softmax, which subtracts it), none empty."""
    axes = _axes(shape, axis, op)
    for ax in axes:
        if shape[ax] == 0:
            raise ValueError(f"{op}: axis {ax} of a tensor of shape {shape} is empty; "
                             f"the maximum of no entries is undefined")
    if not axes and 0 in shape:
        raise ValueError(f"{op}: tensor of shape {shape} is empty")
    return axes


def _shape_arg(shape: tuple) -> tuple:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _operator(prim: Primitive) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The operator ``a (op) b`` and its reflected form ``b (op) a``, applying ``prim``."""
    return (lambda self, other: self.bind(prim, self, other),
            lambda self, other: self.bind(prim, other, self))


def _method(prim: Primitive, doc: str) -> Callable[[Any], Any]:
    """The method ``a.name()`` of a one-input primitive."""
    def method(self: Any) -> Any:
        return self.bind(prim, self)
    method.__name__, method.__doc__ = prim.name, doc
    return method


class Operators:
    """NumPy-style operators and methods, each applying a primitive with ``self.bind``."""

    shape: tuple[int, ...]
    bind: Callable[..., Any]  # bind(prim, *args, **params) applies prim

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    __add__, __radd__ = _operator(add)
    __sub__, __rsub__ = _operator(sub)
    __mul__, __rmul__ = _operator(mul)
    __truediv__, __rtruediv__ = _operator(div)
    __matmul__, __rmatmul__ = _operator(matmul)  # NumPy's rules: 1-D, batched leading axes

    def __pow__(self, other: Any) -> Any:
        """a^b elementwise; a number exponent k is a constant of the primitive pow_k."""
        if isinstance(other, (int, float, np.integer)) and not isinstance(other, bool):
            return self.bind(power_k, self, k=int(other) if isinstance(other, np.integer)
                             else other)
        return self.bind(power, self, other)

    __rpow__ = _operator(power)[1]  # b ** a for a number or an array b
    __neg__ = _method(neg, "-a elementwise.")
    exp = _method(exp, "e^a elementwise.")
    log = _method(log, "Natural logarithm elementwise.")
    tanh = _method(tanh, "tanh(a) elementwise.")
    sigmoid = _method(sigmoid, "sigma(a) = 1/(1 + e^{-a}) elementwise, stable for large abs(a).")
    relu = _method(relu, "max(a, 0) elementwise; derivative 0 at the kink.")
    softplus = _method(softplus, "log(1 + e^a) elementwise, stable; derivative sigma(a).")

    def softmax(self, axis: int = -1) -> Any:
        """e^{a_i} / sum_j e^{a_j} along ``axis`` (max subtracted first)."""
        _max_axes(self.shape, axis, "softmax")
        return self.bind(softmax, self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Any:
        """a_i - log sum_j e^{a_j} along ``axis`` (log-sum-exp, stable)."""
        _max_axes(self.shape, axis, "log_softmax")
        return self.bind(log_softmax, self, axis=axis)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        """Sum over ``axis`` (all axes by default)."""
        return self.bind(sum_, self, axes=_axes(self.shape, axis, "sum"), keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        """The sum over ``axis`` times 1/n, n the number of entries (NaN for n = 0)."""
        axes = _axes(self.shape, axis, "mean")
        n = 1
        for ax in axes:
            n *= self.shape[ax]
        return self.sum(axis=axes, keepdims=keepdims) * (1.0 / n if n else np.nan)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        """Maximum over ``axis``; the gradient goes to the maximal entries (ties share it)."""
        axes = _max_axes(self.shape, axis, "max")
        return self.bind(max_, self, axes=axes, keepdims=keepdims)

    def reshape(self, *shape: int | tuple[int, ...]) -> Any:
        """Same entries, new shape."""
        return self.bind(reshape, self, shape=_shape_arg(shape))

    def transpose(self, *axes: int) -> Any:
        """Permute the axes (reverse them by default)."""
        axes, nd = _shape_arg(axes), self.ndim
        if not axes:
            perm = tuple(range(nd - 1, -1, -1))
        elif len(axes) == nd and all(-nd <= ax < nd for ax in axes):
            perm = tuple(int(ax) % nd for ax in axes)
        else:
            perm = ()
        if sorted(perm) != list(range(nd)):
            raise ValueError(f"transpose: axes {axes} are not a permutation for shape {self.shape}")
        return self.bind(transpose, self, perm=perm)

    @property
    def T(self) -> Any:
        """The transpose (all axes reversed), e.g. W.T in z = a W^T + b."""
        return self.bind(transpose, self, perm=(1, 0)) if self.ndim == 2 else self.transpose()

    def __getitem__(self, index: Any) -> Any:
        """Basic (ints, slices, None, ...) and integer-array indexing."""
        return self.bind(getitem, self, index=_clean_index(index))


def _clean_index(index: Any) -> Any:
    if hasattr(index, "bind"):
        raise TypeError("getitem: index with an int array, not a Tensor (Tensor data is "
                        "floating point)")
    if isinstance(index, tuple):
        return tuple(_clean_index(i) for i in index)
    if isinstance(index, list):  # [] selects nothing (NumPy would make it float)
        return np.asarray(index) if index else np.zeros(0, dtype=np.intp)
    return index
