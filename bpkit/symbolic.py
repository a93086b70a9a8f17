"""Symbolic backpropagation with SymPy (optional: ``import bpkit`` does not import it).

The gradients of a small network's loss C by the delta rule, checked against SymPy's:

    delta^L = dC/da^L ⊙ f'(z^L),    delta^l = ((W^{l+1})^T delta^{l+1}) ⊙ f'(z^l),
    dC/dW^l = delta^l (a^{l-1})^T,    dC/db^l = delta^l."""

# ruff: noqa: E741  (l is the layer index of the book's notation, W^l, z^l, delta^l)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

__all__ = ["Network", "network", "logistic", "gradient", "delta_rule", "check_equal"]


class logistic(sp.Function):
    """sigma(z) = 1 / (1 + e^{-z}), printed as sigma(z), with the derivative written as in
    1986, sigma(z) (1 - sigma(z)); ``expr.rewrite(sp.exp)`` writes it out with exp."""

    @classmethod
    def eval(cls, z):
        if z.is_Number:
            return 1 / (1 + sp.exp(-z))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = logistic(self.args[0])
        return s * (1 - s)

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        s = rf"\sigma\left({printer._print(self.args[0])}\right)"
        return s if exp is None else rf"{s}^{{{exp}}}"


_ACTIVATIONS = {  # f, and f' written through a = f(z), of the named activations
    "sigmoid": (logistic, lambda a: a * (1 - a)),
    "tanh": (sp.tanh, lambda a: 1 - a**2),
    "identity": (lambda z: z, lambda a: sp.Integer(1)),
}


@dataclass
class Network:
    """A fully connected network written out symbolically, for one example (x, y). Lists are
    indexed by layer l = 0..L (entry 0 is ``None`` for ``W``, ``b``, ``z``): ``W[l]`` is the
    (n_l x n_{l-1}) Matrix of symbols w^l_{jk}, ``b[l]`` the column of b^l_j,
    ``z[l] = W[l] a[l-1] + b[l]``, ``a[l] = f(z[l])``, ``a[0] = x``; ``C`` is the loss."""

    sizes: list[int]
    x: sp.Matrix
    y: sp.Matrix
    W: list
    b: list
    z: list
    a: list
    C: sp.Expr
    f: Callable
    f_prime_of_a: Callable | None
    dC_da: sp.Matrix

    @property
    def L(self) -> int:
        """Number of layers with weights."""
        return len(self.sizes) - 1

    @property
    def parameters(self) -> list[sp.Symbol]:
        """All weight and bias symbols, layer by layer."""
        return [s for l in range(1, self.L + 1) for s in list(self.W[l]) + list(self.b[l])]


def network(
    sizes: list[int], activation: str | Callable = "sigmoid", loss: str = "half_squared"
) -> Network:
    """The network ``sizes = [n_0, ..., n_L]`` and its loss C (symbol indices from 1, as in
    w^l_{jk}). ``activation``: "sigmoid", "tanh", "identity" or a callable on a SymPy
    expression; ``loss``: "half_squared", C = 1/2 sum_j (a^L_j - y_j)^2, or "cross_entropy",
    C = -sum_j [y_j log a^L_j + (1 - y_j) log(1 - a^L_j)] for sigmoid outputs."""
    if len(sizes) < 2 or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"symbolic.network: sizes must be >= 2 positive ints, got {sizes!r}")
    if not callable(activation) and activation not in _ACTIVATIONS:
        raise ValueError(
            f"symbolic: unknown activation {activation!r}; use one of {sorted(_ACTIVATIONS)} "
            f"or a callable"
        )
    f, f_prime_of_a = (activation, None) if callable(activation) else _ACTIVATIONS[activation]
    x = sp.Matrix(sizes[0], 1, lambda j, _: sp.Symbol(f"x_{j + 1}", real=True))
    y = sp.Matrix(sizes[-1], 1, lambda j, _: sp.Symbol(f"y_{j + 1}", real=True))
    W, b, z, a = [None], [None], [None], [x]  # indexed by layer l; a^0 = x
    for l in range(1, len(sizes)):
        W.append(sp.Matrix(
            sizes[l], sizes[l - 1],
            lambda j, k, l=l: sp.Symbol(f"w^{{{l}}}_{{{j + 1}{k + 1}}}", real=True),
        ))
        b.append(sp.Matrix(sizes[l], 1, lambda j, _, l=l: sp.Symbol(f"b^{{{l}}}_{{{j + 1}}}")))
        z.append(W[l] * a[l - 1] + b[l])
        a.append(z[l].applyfunc(f))
    aL = a[-1]
    if loss == "half_squared":
        C = sum(((o - t) ** 2 for o, t in zip(aL, y, strict=True)), sp.Integer(0)) / 2
        dC_da = aL - y
    elif loss == "cross_entropy":
        terms = (t * sp.log(o) + (1 - t) * sp.log(1 - o) for o, t in zip(aL, y, strict=True))
        C = -sum(terms, sp.Integer(0))
        dC_da = sp.Matrix(len(y), 1, lambda j, _: (aL[j] - y[j]) / (aL[j] * (1 - aL[j])))
    else:
        raise ValueError(
            f"symbolic.network: unknown loss {loss!r}; use 'half_squared' or 'cross_entropy'"
        )
    return Network(list(sizes), x, y, W, b, z, a, C, f, f_prime_of_a, dC_da)


def gradient(C: sp.Expr, M: sp.Matrix) -> sp.Matrix:
    """SymPy's derivatives dC/dm for every symbol m of ``M``, in a Matrix of M's shape."""
    return M.applyfunc(lambda m: sp.diff(C, m))


def _f_prime(net: Network, l: int) -> sp.Matrix:
    """f'(z^l) as a column: through a^l for named activations, else SymPy's f' at z^l."""
    if net.f_prime_of_a is not None:
        return net.a[l].applyfunc(net.f_prime_of_a)
    t = sp.Dummy("t")
    d = sp.diff(net.f(t), t)
    return net.z[l].applyfunc(lambda zj: d.subs(t, zj))


def delta_rule(net: Network) -> tuple[list, list]:
    """Gradients of C by the delta-rule recursion: ``(nabla_W, nabla_b)`` with
    nabla_W[l] = delta^l (a^{l-1})^T and nabla_b[l] = delta^l (index 0 is ``None``)."""
    L = net.L
    delta: list = [None] * (L + 1)
    delta[L] = net.dC_da.multiply_elementwise(_f_prime(net, L))
    for l in range(L - 1, 0, -1):
        delta[l] = (net.W[l + 1].T * delta[l + 1]).multiply_elementwise(_f_prime(net, l))
    nabla_W = [None] + [delta[l] * net.a[l - 1].T for l in range(1, L + 1)]
    return nabla_W, [None] + delta[1:]


def check_equal(expr1: sp.Expr | sp.MatrixBase, expr2: sp.Expr | sp.MatrixBase) -> None:
    """Assert that two SymPy expressions (or Matrices of one shape) are identically equal:
    each difference must expand, cancel or ``simplify`` to 0, else AssertionError."""
    m1 = expr1 if isinstance(expr1, sp.MatrixBase) else sp.Matrix([expr1])
    m2 = expr2 if isinstance(expr2, sp.MatrixBase) else sp.Matrix([expr2])
    if m1.shape != m2.shape:
        raise AssertionError(f"check_equal: shapes differ, {m1.shape} vs {m2.shape}")
    for idx in range(len(m1)):
        diff = m1[idx] - m2[idx]
        if diff == 0 or sp.expand(diff) == 0 or sp.cancel(sp.together(diff)) == 0:
            continue
        if sp.simplify(diff) != 0:
            raise AssertionError(f"check_equal: entry {idx} differs by {sp.simplify(diff)}")
