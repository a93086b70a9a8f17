"""Tests of bpkit.nn (Module, Linear, MLP, Sequential, save/load): gradients against central
differences and HIPS autograd, never against bpkit itself."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences

import bpkit
from bpkit import F, Tensor, nn, optim

ACT_NP = {
    "relu": lambda z: anp.maximum(z, 0.0),
    "tanh": anp.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + anp.exp(-z)),
    "swish": lambda z: z / (1.0 + anp.exp(-z)),
    "mish": lambda z: z * anp.tanh(anp.log1p(anp.exp(z))),
}


def mlp_loss_np(params, X, y, act):
    """The same network and loss written independently in autograd.numpy."""
    a = X
    L = len(params) // 2
    for i in range(L):
        W, b = params[2 * i], params[2 * i + 1]
        z = anp.dot(a, W.T) + b
        a = ACT_NP[act](z) if i < L - 1 else z
    return anp.mean((a - y) ** 2)


def bpkit_grads(model, X, y):
    model.zero_grad()
    loss = F.mse_loss(model(X), y)
    loss.backward()
    return loss.item(), [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "swish", "mish"])
def test_mlp_gradients_match_autograd(act):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 2))
    model = nn.MLP([3, 4, 4, 2], activation=act, seed=2)
    loss, grads = bpkit_grads(model, X, y)
    params = [p.data.copy() for p in model.parameters()]
    ref_loss = mlp_loss_np(params, X, y, act)
    ref = autograd.grad(mlp_loss_np)(params, X, y, act)
    assert abs(loss - ref_loss) < 1e-12
    for g, r in zip(grads, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_mlp_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 2))
    y = rng.standard_normal((4, 1))
    model = nn.MLP([2, 3, 1], activation="tanh", output_activation="sigmoid", seed=0)
    _, grads = bpkit_grads(model, X, y)

    def C():
        with bpkit.no_grad():
            return F.mse_loss(model(X), y).item()

    numeric = central_differences(C, [p.data for p in model.parameters()])
    for g, n in zip(grads, numeric, strict=True):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-9)


def test_linear_shapes_notation_and_equation():
    layer = nn.Linear(3, 2, seed=0)
    assert layer.W.shape == (2, 3) and layer.b.shape == (2,)
    a = np.arange(6.0).reshape(2, 3)
    z = layer(a)
    # z^l = W^l a^{l-1} + b^l for each row, and w_{jk} connects input k to output j
    for n in range(2):
        np.testing.assert_allclose(z.data[n], layer.W.data @ a[n] + layer.b.data)
    np.testing.assert_allclose(z.data[0, 1], sum(layer.W.data[1, k] * a[0, k] for k in range(3)))
    assert nn.Linear(3, 2, bias=False).parameters()[0].shape == (2, 3)
    assert len(nn.Linear(3, 2, bias=False).parameters()) == 1


def test_linear_gradient_vs_finite_differences_float64():
    rng = np.random.default_rng(0)
    layer = nn.Linear(4, 3, init="xavier", seed=rng)
    a = rng.standard_normal((6, 4))
    r = rng.standard_normal((6, 3))
    (layer(a) * r).sum().backward()

    def C():
        return float(np.sum((a @ layer.W.data.T + layer.b.data) * r))

    gW, gb = central_differences(C, [layer.W.data, layer.b.data])
    np.testing.assert_allclose(layer.W.grad, gW, rtol=1e-7)
    np.testing.assert_allclose(layer.b.grad, gb, rtol=1e-7)
    # the closed forms dC/dW = delta^T a and dC/db = sum of delta, delta = r
    np.testing.assert_allclose(layer.W.grad, r.T @ a)


def test_linear_keeps_w_column_major_through_training_and_load(tmp_path):
    """W is stored column-major (so a @ W.T is a plain row-major GEMM); its gradient, an SGD
    step and a load keep that layout, and the layout changes no number."""
    model = nn.MLP([5, 4, 3], activation="relu", seed=2)
    X = np.random.default_rng(1).standard_normal((6, 5))
    W = model.layers[0].W
    assert W.data.flags.f_contiguous and not W.data.flags.c_contiguous
    F.mse_loss(model(X), np.zeros((6, 3))).backward()
    assert W.grad.flags.f_contiguous
    optim.SGD(model.parameters(), lr=0.1, momentum=0.5).step()
    assert W.data.flags.f_contiguous
    # the same network with row-major weights computes the same numbers
    a = X
    for layer, f in zip(model.layers, [np.maximum, None], strict=True):
        a = a @ np.ascontiguousarray(layer.W.data).T + layer.b.data
        a = f(a, 0) if f else a
    np.testing.assert_allclose(model(X).data, a, rtol=1e-14)
    model.save(tmp_path / "m.npz")
    other = nn.MLP([5, 4, 3], activation="relu", seed=3)
    other.load(tmp_path / "m.npz")
    assert other.layers[0].W.data.flags.f_contiguous
    np.testing.assert_array_equal(other(X).data, model(X).data)


def test_initialisation_named_and_seeded():
    n_in, n_out = 400, 300
    he = nn.Linear(n_in, n_out, init="he", seed=0).W.data
    assert abs(he.std() - np.sqrt(2 / n_in)) < 0.02 * np.sqrt(2 / n_in)
    xa = nn.Linear(n_in, n_out, init="xavier", seed=0).W.data
    r = np.sqrt(6 / (n_in + n_out))
    assert np.abs(xa).max() <= r and np.abs(xa).max() > 0.99 * r
    uni = nn.Linear(n_in, n_out, init="uniform", seed=0)
    assert np.abs(uni.W.data).max() <= 0.3 and np.abs(uni.W.data).max() > 0.299
    assert np.abs(uni.b.data).max() <= 0.3 and np.any(uni.b.data != 0)
    assert np.abs(nn.Linear(5, 5, init="uniform", scale=0.1, seed=0).W.data).max() <= 0.1
    np.testing.assert_array_equal(nn.Linear(4, 3, seed=7).W.data, nn.Linear(4, 3, seed=7).W.data)
    assert not np.array_equal(nn.Linear(4, 3, seed=7).W.data, nn.Linear(4, 3, seed=8).W.data)
    m1, m2 = nn.MLP([2, 3, 1], seed=5), nn.MLP([2, 3, 1], seed=5)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="orthogonal")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    model = nn.MLP([3, 5, 2], activation="tanh", seed=0, dtype=dtype)
    X = np.ones((4, 3))  # float64 array is cast to the model's dtype
    out = model(X)
    assert out.dtype == dtype
    F.mse_loss(out, np.zeros((4, 2), dtype=dtype)).backward()
    assert all(p.grad.dtype == dtype for p in model.parameters())
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match="dtype"):
        model(Tensor(np.ones((4, 3), dtype=other)))


def test_mlp_structure_and_parameter_order():
    model = nn.MLP([2, 3, 4, 1], activation="sigmoid", seed=0)
    ps = model.parameters()
    shapes = [p.shape for p in ps]
    assert shapes == [(3, 2), (3,), (4, 3), (4,), (1, 4), (1,)]
    assert ps[0] is model.layers[0].W and ps[5] is model.layers[2].b
    assert [n for n, _ in model.named_parameters()][:2] == ["layers.0.W", "layers.0.b"]
    # linear output by default; output_activation applied to the last layer only
    X = np.random.default_rng(0).standard_normal((3, 2)) * 10
    lin = model(X).data
    sig = nn.MLP([2, 3, 4, 1], activation="sigmoid", output_activation="sigmoid", seed=0)(X)
    np.testing.assert_allclose(sig.data, 1 / (1 + np.exp(-lin)))
    custom = nn.MLP([2, 3, 1], activation=lambda z: z * 2.0, seed=0)
    assert custom(X).shape == (3, 1)
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 1], activation="softsign")
    with pytest.raises(ValueError, match="n_in"):
        model(np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"Linear: sizes must be positive ints, .*n_out=3\.0"):
        nn.MLP([2, 3.0, 1])
    with pytest.raises(ValueError, match=r"Conv2d: channels must be positive ints"):
        nn.Conv2d(1, 2.0, 3)


def test_sequential_and_activation_modules():
    seq = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Tanh(), nn.Linear(4, 2, seed=1), nn.Sigmoid())
    assert len(seq) == 4 and isinstance(seq[1], nn.Tanh)
    assert len(seq.parameters()) == 4
    X = np.random.default_rng(0).standard_normal((5, 3))
    l1, l2 = seq[0], seq[2]
    expected = 1 / (1 + np.exp(-(np.tanh(X @ l1.W.data.T + l1.b.data) @ l2.W.data.T + l2.b.data)))
    np.testing.assert_allclose(seq(X).data, expected)
    np.testing.assert_allclose(nn.ReLU()(Tensor([-1.0, 2.0])).data, [0.0, 2.0])
    flat = nn.Flatten()(Tensor(np.zeros((2, 3, 4, 5))))
    assert flat.shape == (2, 60)
    with pytest.raises(TypeError, match="Sequential"):
        nn.Sequential(nn.Tanh(), np.tanh)


def test_zero_grad():
    model = nn.MLP([2, 2, 1], seed=0)
    F.mse_loss(model(np.ones((1, 2))), np.zeros((1, 1))).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_save_load_round_trip(tmp_path):
    model = nn.MLP([3, 4, 2], activation="tanh", seed=0)
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    other = nn.MLP([3, 4, 2], activation="tanh", seed=1)
    W_before = other.layers[0].W  # load writes in place: the same Tensor objects stay
    other.load(path)
    assert other.layers[0].W is W_before
    X = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(other(X).data, model(X).data)
    # a state dict is a copy
    sd = model.state_dict()
    sd["layers.0.W"][:] = 0
    assert np.any(model.layers[0].W.data != 0)


def test_save_writes_the_path_given_so_load_finds_it(tmp_path):
    model = nn.MLP([2, 3, 1], seed=0)
    path = tmp_path / "weights"  # no .npz suffix: np.savez alone would add one
    model.save(path)
    assert path.exists() and not (tmp_path / "weights.npz").exists()
    other = nn.MLP([2, 3, 1], seed=1)
    other.load(str(path))
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_mismatch_errors(tmp_path):
    path = tmp_path / "m.npz"
    nn.MLP([3, 4, 2], seed=0).save(path)
    with pytest.raises(ValueError, match=r"shape mismatch: layers.0.W: expected \(5, 3\)"):
        nn.MLP([3, 5, 2], seed=0).load(path)
    with pytest.raises(ValueError, match="missing.*layers.2.W"):
        nn.MLP([3, 4, 2, 1], seed=0).load(path)
    with pytest.raises(ValueError, match="unexpected"):
        nn.Linear(3, 4, seed=0).load(path)


def test_training_reduces_loss_on_xor():
    from bpkit import data, optim

    X, y = data.xor()
    model = nn.MLP([2, 4, 1], activation="tanh", output_activation="sigmoid", seed=0)
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.01 < first


def test_custom_module_finds_its_parameters():
    class Net(nn.Module):
        def __init__(self):
            self.hidden = nn.Linear(2, 3, seed=0)
            self.extra = [Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(2))]
            self.scale = Tensor(np.array(2.0), requires_grad=True)

        def forward(self, x):
            return (self.hidden(x) * self.extra[0]).tanh() * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["hidden.W", "hidden.b", "extra.0", "scale"]
    assert net(np.ones((4, 2))).shape == (4, 3)
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1.0)


def test_a_shared_layer_is_one_parameter_updated_once():
    """Tied weights: the same Linear used twice is listed once, and one SGD step moves it by
    -lr times the *sum* of both uses' gradients (the fan-out rule), not twice."""
    from bpkit.optim import SGD

    layer = nn.Linear(3, 3, seed=0)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert [name for name, _ in model.named_parameters()] == ["layers.0.W", "layers.0.b"]
    x = np.random.default_rng(1).normal(size=(4, 3))
    W0 = layer.W.data.copy()

    def loss_of(W):
        z1 = x @ W.T + layer.b.data
        z2 = np.tanh(z1) @ W.T + layer.b.data
        return (z2**2).sum()

    eps = 1e-6
    numeric = np.zeros_like(W0)
    for idx in np.ndindex(W0.shape):
        d = np.zeros_like(W0)
        d[idx] = eps
        numeric[idx] = (loss_of(W0 + d) - loss_of(W0 - d)) / (2 * eps)
    opt = SGD(model.parameters(), lr=0.1)
    loss = (model(Tensor(x)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(layer.W.data, W0 - 0.1 * numeric, rtol=1e-7, atol=1e-9)
