"""BatchNorm1d, LayerNorm and the fused primitive standardize (chapter 12), against an
independent implementation of the formulas in HIPS autograd, the compact backward formula
written in NumPy, and central differences; training and evaluation modes, the running
statistics (PyTorch's semantics) and the state_dict round trip."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences, numeric_grad

import bpkit
from bpkit import F, Tensor, nn, ops


def ag_norm(x, gamma, beta, axis, eps):
    """y = gamma (x - mu) / sqrt(var + eps) + beta, written out in autograd.numpy."""
    mu = anp.mean(x, axis=axis, keepdims=True)
    var = anp.mean((x - mu) ** 2, axis=axis, keepdims=True)
    return gamma * (x - mu) / anp.sqrt(var + eps) + beta


def compact_backward(x, gamma, gy, axis, eps):
    """The book's formula: dC/dx = (g - mean g - xhat mean(g xhat)) / sigma, g = gamma gy."""
    mu = x.mean(axis=axis, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=axis, keepdims=True) + eps)
    xhat = (x - mu) / sigma
    g = gamma * gy
    return (g - g.mean(axis=axis, keepdims=True)
            - xhat * (g * xhat).mean(axis=axis, keepdims=True)) / sigma


def random_affine(layer, rng):
    layer.weight.assign(rng.uniform(0.5, 1.5, layer.n))
    layer.bias.assign(rng.standard_normal(layer.n))


@pytest.mark.parametrize("kind, axis", [("batch", 0), ("layer", -1)])
def test_gradients_match_autograd_and_compact_formula(kind, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)) * 3 + 1
    layer = nn.BatchNorm1d(4) if kind == "batch" else nn.LayerNorm(4)
    random_affine(layer, rng)
    R = rng.standard_normal((6, 4))
    xt = Tensor(x, requires_grad=True)
    y = layer(xt)
    (y * R).sum().backward()
    gamma, beta = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(y.data, ag_norm(x, gamma, beta, axis, 1e-5), rtol=1e-12,
                               atol=1e-12)

    def loss(x, gamma, beta):
        return anp.sum(ag_norm(x, gamma, beta, axis, 1e-5) * R)

    gx, gg, gb = autograd.grad(loss, argnum=(0, 1, 2))(x, gamma, beta)
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, gg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, gb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, compact_backward(x, gamma, R, axis, 1e-5),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["batch", "layer"])
def test_gradients_match_central_differences(kind):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    layer = nn.BatchNorm1d(3) if kind == "batch" else nn.LayerNorm(3)
    random_affine(layer, rng)
    R = rng.standard_normal((5, 3))
    xt = Tensor(x, requires_grad=True)
    (layer(xt).tanh() * R).sum().backward()
    gamma, beta = layer.weight.data.copy(), layer.bias.data.copy()
    axis = 0 if kind == "batch" else -1

    def C():
        return float(np.sum(np.tanh(ag_norm(x, gamma, beta, axis, 1e-5)) * R))

    num = central_differences(C, [x, gamma, beta])
    for ana, n in zip([xt.grad, layer.weight.grad, layer.bias.grad], num, strict=True):
        np.testing.assert_allclose(ana, n, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1)])
def test_fused_rule_equals_composed_graph(axes):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    R = rng.standard_normal((5, 4))
    a, b = Tensor(x, requires_grad=True), Tensor(x, requires_grad=True)
    fused = ops.standardize(a, axes=axes, eps=1e-3)
    d = b - b.mean(axis=axes, keepdims=True)
    composed = d / ((d * d).mean(axis=axes, keepdims=True) + 1e-3) ** 0.5
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-13, atol=1e-14)
    (fused * R).sum().backward()
    (composed * R).sum().backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-13)


def test_standardize_forward_mode_and_second_derivatives():
    rng = np.random.default_rng(3)
    x, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))

    def f(x):
        return (F.standardize(x, axis=0) ** 3).sum()

    def f_np(x):
        return float(np.sum(((x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)) ** 3))

    _, tangent = bpkit.jvp(f, x, v)
    h = 1e-6
    assert abs(tangent - (f_np(x + h * v) - f_np(x - h * v)) / (2 * h)) < 1e-6
    g = bpkit.grad(f)
    hv_fd = (g(x + h * v) - g(x - h * v)) / (2 * h)
    np.testing.assert_allclose(bpkit.hvp(f, x, v), hv_fd, rtol=1e-5, atol=1e-6)
    hv_ag = autograd.hessian_vector_product(
        lambda x: anp.sum(((x - anp.mean(x, 0)) / anp.sqrt(anp.var(x, 0) + 1e-5)) ** 3)
    )(x, v)
    np.testing.assert_allclose(bpkit.hvp(f, x, v), hv_ag, rtol=1e-9, atol=1e-10)


def test_standardize_gradient_numeric():
    x = np.random.default_rng(4).standard_normal((3, 5))
    R = np.random.default_rng(5).standard_normal((3, 5))
    xt = Tensor(x, requires_grad=True)
    (F.standardize(xt, axis=1) * R).sum().backward()

    def C(x):
        return float(np.sum((x - x.mean(1, keepdims=True))
                            / np.sqrt(x.var(1, keepdims=True) + 1e-5) * R))

    np.testing.assert_allclose(xt.grad, numeric_grad(C, x), rtol=1e-6, atol=1e-8)


def test_batchnorm_running_statistics_follow_pytorch():
    """running = (1 - m) running + m batch, with the unbiased variance; eval uses them."""
    rng = np.random.default_rng(6)
    bn = nn.BatchNorm1d(3, momentum=0.2)
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(4):
        x = rng.standard_normal((8, 3)) * [1, 2, 3] + [0, 1, -1]
        y = bn(x)
        mean = 0.8 * mean + 0.2 * x.mean(axis=0)
        var = 0.8 * var + 0.2 * x.var(axis=0) * 8 / 7
        biased = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)  # batch statistics, biased
        np.testing.assert_allclose(y.data, biased, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-12)
    bn.eval()
    x = rng.standard_normal((2, 3))
    before = bn.running_mean.copy()
    np.testing.assert_allclose(bn(x).data, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, before)  # eval does not update
    one = bn(x[:1])  # a single example is fine in eval mode
    assert one.shape == (1, 3)


def test_eval_mode_gradient_is_a_per_feature_scale():
    rng = np.random.default_rng(7)
    bn = nn.BatchNorm1d(3)
    bn.running_mean[:] = rng.standard_normal(3)
    bn.running_var[:] = rng.uniform(0.5, 2, 3)
    random_affine(bn, rng)
    bn.eval()
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    R = rng.standard_normal((4, 3))
    (bn(x) * R).sum().backward()
    scale = bn.weight.data / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(x.grad, R * scale, rtol=1e-12)


def test_train_eval_propagate_and_layernorm_ignores_mode():
    net = nn.Sequential(nn.Linear(3, 4, seed=0), nn.BatchNorm1d(4), nn.ReLU(),
                        nn.Sequential(nn.Linear(4, 2, seed=1), nn.LayerNorm(2)))
    assert all(m.training for _, m in net.named_modules())
    assert net.eval() is net
    assert not any(m.training for _, m in net.named_modules())
    net.train()
    assert all(m.training for _, m in net.named_modules())
    ln = nn.LayerNorm(4)
    x = np.random.default_rng(8).standard_normal((3, 4))
    y_train = ln(x).data
    np.testing.assert_array_equal(ln.eval()(x).data, y_train)
    # also on extra leading axes
    assert ln(np.zeros((2, 3, 4)) + np.arange(4)).shape == (2, 3, 4)


def test_state_dict_round_trip_with_buffers(tmp_path):
    rng = np.random.default_rng(9)
    net = nn.Sequential(nn.Linear(3, 4, seed=0), nn.BatchNorm1d(4), nn.ReLU(),
                        nn.Linear(4, 2, seed=1), nn.LayerNorm(2))
    for _ in range(3):
        net(rng.standard_normal((6, 3)))
    state = net.state_dict()
    assert list(state) == [
        "layers.0.W", "layers.0.b", "layers.1.weight", "layers.1.bias", "layers.3.W",
        "layers.3.b", "layers.4.weight", "layers.4.bias", "layers.1.running_mean",
        "layers.1.running_var",
    ]
    # buffers are state, not parameters: the optimisers never see them
    params = dict(net.named_parameters())
    assert "layers.1.running_mean" not in params and len(net.parameters()) == 8
    assert not np.allclose(state["layers.1.running_var"], 1)
    net.save(tmp_path / "net.npz")
    other = nn.Sequential(nn.Linear(3, 4, seed=5), nn.BatchNorm1d(4), nn.ReLU(),
                          nn.Linear(4, 2, seed=6), nn.LayerNorm(2))
    other.load(tmp_path / "net.npz")
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    x = rng.standard_normal((5, 3))
    np.testing.assert_array_equal(other.eval()(x).data, net.eval()(x).data)
    # the state is a copy, and a wrong buffer shape changes nothing
    state["layers.1.running_mean"][:] = 99
    assert not np.any(net[1].running_mean == 99)
    bad = dict(state)
    bad["layers.1.running_var"] = np.ones(5)
    before = other.state_dict()
    with pytest.raises(ValueError, match="running_var"):
        other.load_state_dict(bad)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    missing = {k: v for k, v in state.items() if k != "layers.1.running_mean"}
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict(missing)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    for layer in (nn.BatchNorm1d(3, dtype=dtype), nn.LayerNorm(3, dtype=dtype)):
        x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(dtype),
                   requires_grad=True)
        y = layer(x)
        assert y.dtype == dtype
        y.sum().backward()
        assert x.grad.dtype == layer.weight.grad.dtype == dtype
    assert nn.BatchNorm1d(3, dtype=dtype).running_var.dtype == dtype


def test_errors():
    with pytest.raises(ValueError, match="more than one example"):
        nn.BatchNorm1d(3)(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"expected input \(N, 3\)"):
        nn.BatchNorm1d(3)(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 3\)"):
        nn.LayerNorm(3)(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="positive int"):
        nn.LayerNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm1d(3, eps=0)
    with pytest.raises(ValueError, match="axis"):
        F.standardize(np.zeros((2, 3)), axis=2)


def test_repr():
    assert repr(nn.BatchNorm1d(4)) == "BatchNorm1d(4, eps=1e-05, momentum=0.1)"
    assert repr(nn.LayerNorm(4, eps=1e-6)) == "LayerNorm(4, eps=1e-06)"
