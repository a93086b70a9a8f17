"""Tests of bpkit.symbolic: the delta rule equals SymPy's derivatives."""

# ruff: noqa: E741  (l is the layer index of the book's notation, W^l, z^l, delta^l)

import subprocess
import sys

import numpy as np
import pytest

sp = pytest.importorskip("sympy")

from bpkit.symbolic import (  # noqa: E402
    check_equal,
    delta_rule,
    gradient,
    logistic,
    network,
)


def test_logistic_derivative_in_exp_form():
    z = sp.Symbol("z", real=True)
    sigma_exp = 1 / (1 + sp.exp(-z))
    check_equal(sp.diff(logistic(z), z).rewrite(sp.exp), sp.diff(sigma_exp, z))
    assert logistic(0) == sp.Rational(1, 2)
    assert abs(float(logistic(z).subs(z, 1.5).evalf()) - 1 / (1 + np.exp(-1.5))) < 1e-14
    assert r"\sigma" in sp.latex(logistic(z))


def test_network_structure():
    net = network([2, 2, 1])
    assert net.L == 2
    assert net.W[1].shape == (2, 2) and net.W[2].shape == (1, 2)
    assert net.b[1].shape == (2, 1) and net.a[0] == net.x
    assert str(net.W[1][0, 1]) == "w^{1}_{12}"  # w^l_{jk}: into node j from node k
    assert len(net.parameters) == 2 * 2 + 2 + 2 + 1
    # z^1 = W^1 x + b^1, written out
    x1, x2 = net.x
    check_equal(net.z[1][1], net.W[1][1, 0] * x1 + net.W[1][1, 1] * x2 + net.b[1][1])


@pytest.mark.parametrize("loss", ["half_squared", "cross_entropy"])
def test_delta_rule_equals_sympy_2_2_1_sigmoid(loss):
    net = network([2, 2, 1], "sigmoid", loss)
    nabla_W, nabla_b = delta_rule(net)
    for l in (1, 2):
        check_equal(nabla_W[l], gradient(net.C, net.W[l]))
        check_equal(nabla_b[l], gradient(net.C, net.b[l]))


def test_delta_rule_equals_sympy_tanh_three_layers():
    net = network([2, 3, 2, 1], "tanh")
    nabla_W, nabla_b = delta_rule(net)
    for l in (1, 2, 3):
        check_equal(nabla_W[l], gradient(net.C, net.W[l]))
        check_equal(nabla_b[l], gradient(net.C, net.b[l]))


def test_delta_rule_with_logistic_written_in_exp_form():
    """With sigma spelled 1/(1+e^{-z}) SymPy finds sigma' itself: no shared derivative rule."""
    net = network([2, 2, 1], lambda z: 1 / (1 + sp.exp(-z)))
    nabla_W, nabla_b = delta_rule(net)
    check_equal(nabla_W[1], gradient(net.C, net.W[1]))
    check_equal(nabla_b[2], gradient(net.C, net.b[2]))


def test_delta_rule_matches_finite_differences_numerically():
    """Independent of SymPy's diff: evaluate the delta-rule gradient and difference C."""
    net = network([2, 2, 1])
    nabla_W, _ = delta_rule(net)
    rng = np.random.default_rng(0)
    syms = net.parameters + list(net.x) + list(net.y)
    point = dict(zip(syms, rng.uniform(-1, 1, len(syms)), strict=True))
    C = sp.lambdify(syms, net.C.rewrite(sp.exp))
    h = 1e-6
    for l in (1, 2):
        g = sp.lambdify(syms, nabla_W[l].applyfunc(lambda e: e.rewrite(sp.exp)))(*point.values())
        for idx, w in enumerate(net.W[l]):
            plus, minus = dict(point), dict(point)
            plus[w] += h
            minus[w] -= h
            fd = (C(*plus.values()) - C(*minus.values())) / (2 * h)
            assert abs(np.ravel(g)[idx] - fd) < 1e-8


def test_check_equal_detects_a_wrong_formula():
    net = network([2, 2, 1])
    nabla_W, _ = delta_rule(net)
    wrong = nabla_W[1] / net.a[1][0]  # drop part of f'(z^1)
    with pytest.raises(AssertionError, match="differs"):
        check_equal(wrong, gradient(net.C, net.W[1]))
    with pytest.raises(AssertionError, match="shapes"):
        check_equal(nabla_W[1], nabla_W[2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        network([2, 1], "softsign")
    with pytest.raises(ValueError, match="loss"):
        network([2, 1], loss="hinge")
    with pytest.raises(ValueError, match="sizes"):
        network([2])


def test_import_bpkit_does_not_import_sympy():
    code = "import sys, bpkit; assert 'sympy' not in sys.modules, 'sympy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
