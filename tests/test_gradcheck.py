"""Tests of bpkit.gradcheck: it passes correct gradients and catches wrong ones, and says
where."""

import numpy as np
import pytest

import bpkit
from bpkit.ops import Primitive


def _broken_vjp(g, out, x):
    d = 2 * x
    d.flat[-1] *= 1.01  # 1% error at the last entry only
    return g * d


_broken_square = Primitive("broken_square", lambda x: x**2, (_broken_vjp,), (None,))


def broken_square(t):
    """x^2 with a deliberately wrong backward rule at one entry (the tests' fault injector)."""
    return _broken_square(t)


def test_passes_correct_gradient():
    rng = np.random.default_rng(0)
    rep = bpkit.gradcheck(
        lambda x, w: (x @ w).tanh().sum(), rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    )
    assert rep.ok and bool(rep) and rep.n_checked == 6 + 12
    assert rep.max_rel_error < 1e-6
    assert "ok" in repr(rep) and "worst relative error" in repr(rep)


def test_catches_wrong_gradient_and_locates_it():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    y = np.ones(4)
    rep = bpkit.gradcheck(lambda y, x: y.sum() + broken_square(x).sum(), y, x)
    assert not rep.ok and not bool(rep)
    assert rep.input == 1 and rep.index == (1, 2)
    assert rep.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-4)
    assert rep.analytic == pytest.approx(12 * 1.01) and rep.numeric == pytest.approx(12.0)
    assert "FAILED" in repr(rep) and "input 1 index (1, 2)" in repr(rep)


def test_tolerances_are_respected():
    x = np.arange(1.0, 4.0)
    assert bpkit.gradcheck(lambda x: broken_square(x).sum(), x, rtol=0.02).ok
    assert not bpkit.gradcheck(lambda x: broken_square(x).sum(), x, rtol=1e-3).ok


def test_non_scalar_output_is_checked_through_a_random_projection():
    x = np.arange(1.0, 4.0)
    assert bpkit.gradcheck(lambda x: x * x, x).ok
    assert not bpkit.gradcheck(broken_square, x).ok


def test_catches_a_nan_gradient():
    nan_grad = Primitive("nan_grad", lambda x: x * 2, (lambda g, out, x: g * np.nan,), (None,))

    def f(x):
        return nan_grad(x).sum()

    assert not bpkit.gradcheck(f, np.ones(2)).ok


def test_rejects_non_tensor_output():
    with pytest.raises(TypeError, match="gradcheck: f must return a Tensor"):
        bpkit.gradcheck(lambda x: 1.0, np.ones(2))


def test_a_nan_at_one_entry_is_not_hidden_by_later_good_entries():
    def vjp(g, out, x):  # d(2x)/dx = 2 everywhere, but the rule writes NaN at entry 0
        d = 2 * g
        d.flat[0] = np.nan
        return d

    nan_at_first = Primitive("nan_at_first", lambda x: x * 2, (vjp,), (None,))

    def f(x):
        return nan_at_first(x).sum()

    rep = bpkit.gradcheck(f, np.ones(3))
    assert not rep.ok and rep.index == (0,)
    assert np.isnan(rep.analytic) and np.isnan(rep.max_rel_error) and np.isnan(rep.max_abs_error)
