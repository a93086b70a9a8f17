"""Tests of bpkit.Tensor: gradients vs central differences, dtype, broadcasting, no_grad."""

import numpy as np

import bpkit
from bpkit import Tensor


def test_smoke_linear_layer_gradient():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    rep = bpkit.gradcheck(lambda x, W, b: (x @ W.T + b).tanh().sum(), x, W, b)
    assert rep.ok, rep


def test_float32_preserved():
    t = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = (t * 2.0 + 1).exp().sum()
    y.backward()
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
