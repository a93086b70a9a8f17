"""Tests of Conv2d, im2col and pooling against a naive loop convolution, central differences
and an independent convolution written in HIPS autograd."""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from finite_differences import central_differences

import bpkit
from bpkit import Tensor, nn

CASES = [  # (N, C, H, W, K, k, stride, padding)
    (2, 1, 8, 8, 3, 3, 1, 0),
    (2, 2, 8, 8, 4, 5, 2, 2),  # LeNet-1989-like: 5x5 kernels, stride 2, padded
    (1, 3, 7, 6, 2, (3, 2), (2, 1), (1, 0)),
    (2, 1, 8, 8, 3, 3, 2, 1),  # the convolutions of chapter 10 and neighbours
    (2, 3, 4, 4, 4, 3, 2, 1),
    (2, 2, 7, 7, 2, 3, 2, 0),
    (2, 1, 6, 6, 2, 2, 2, 0),
]


def pair(v):
    return (v, v) if isinstance(v, int) else v


def naive_conv(x, W, b, stride, padding):
    """out[n,k,i,j] = b_k + sum_{c,u,v} W[k,c,u,v] x_pad[n,c,i*s+u,j*s+v], with plain loops."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C, H, Wd = x.shape
    K, _, kh, kw = W.shape
    xp = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw), dtype=x.dtype)
    xp[:, :, ph : ph + H, pw : pw + Wd] = x
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    out = np.zeros((N, K, Ho, Wo))
    for n in range(N):
        for k in range(K):
            for i in range(Ho):
                for j in range(Wo):
                    s = b[k]
                    for c in range(C):
                        for u in range(kh):
                            for v in range(kw):
                                s += W[k, c, u, v] * xp[n, c, i * sh + u, j * sw + v]
                    out[n, k, i, j] = s
    return out


def autograd_conv_loss(x, W, b, R, stride, padding):
    """sum(conv(x) * R), the convolution written with slicing in autograd.numpy."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C, H, Wd = x.shape
    K, _, kh, kw = W.shape
    if pw:
        z = anp.zeros((N, C, H, pw))
        x = anp.concatenate([z, x, z], axis=3)
    if ph:
        z = anp.zeros((N, C, ph, Wd + 2 * pw))
        x = anp.concatenate([z, x, z], axis=2)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    total = 0.0
    for i in range(Ho):
        for j in range(Wo):
            patch = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]  # (N, C, kh, kw)
            out_ij = anp.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3])) + b  # (N, K)
            total = total + anp.sum(out_ij * R[:, :, i, j])
    return total


def make_case(case, seed=0, dtype=np.float64):
    N, C, H, Wd, K, k, stride, padding = case
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(C, K, k, stride=stride, padding=padding, seed=rng, dtype=dtype)
    conv.b.data[:] = rng.standard_normal(K)  # non-zero bias
    x = rng.standard_normal((N, C, H, Wd)).astype(dtype)
    return conv, x, stride, padding


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_naive_loops(case):
    conv, x, stride, padding = make_case(case)
    out = conv(x)
    ref = naive_conv(x, conv.W.data, conv.b.data, stride, padding)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.data, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_gradients_match_autograd(case):
    conv, x, stride, padding = make_case(case, seed=1)
    xt = Tensor(x, requires_grad=True)
    out = conv(xt)
    R = np.random.default_rng(2).standard_normal(out.shape)
    (out * R).sum().backward()
    gx, gW, gb = autograd.grad(autograd_conv_loss, argnum=(0, 1, 2))(
        x, conv.W.data, conv.b.data, R, stride, padding
    )
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.W.grad, gW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.b.grad, gb, rtol=1e-10, atol=1e-12)


def test_gradients_match_finite_differences():
    conv, x, stride, padding = make_case(CASES[1], seed=3)
    x = x[:1].copy()
    xt = Tensor(x, requires_grad=True)
    R = np.random.default_rng(4).standard_normal(conv(x).shape)
    (conv(xt) * R).sum().backward()
    with bpkit.no_grad():
        gx, gW = central_differences(lambda: float((conv(x) * R).sum()), [x, conv.W.data])
    np.testing.assert_allclose(xt.grad, gx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(conv.W.grad, gW, rtol=1e-6, atol=1e-7)


def test_weight_gradient_is_sum_over_positions():
    """dC/dW[k,c,u,v] = sum over n, i, j of delta[n,k,i,j] x_pad[n,c,i*s+u,j*s+v]."""
    conv, x, stride, padding = make_case(CASES[1], seed=6)
    out = conv(x)
    delta = np.random.default_rng(7).standard_normal(out.shape)
    (out * delta).sum().backward()
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    kh, kw = conv.kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gW = np.zeros_like(conv.W.data)
    N, K, Ho, Wo = out.shape
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[n, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                gW += delta[n, :, i, j][:, None, None, None] * patch[None]
    np.testing.assert_allclose(conv.W.grad, gW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.b.grad, delta.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    conv, x, _, _ = make_case(CASES[1], dtype=dtype)
    xt = Tensor(x, requires_grad=True)
    out = conv(xt)
    assert out.dtype == dtype
    out.sum().backward()
    assert xt.grad.dtype == conv.W.grad.dtype == dtype


def test_im2col_layout_and_shapes():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    cols = nn.im2col(Tensor(x), 2, stride=2)
    assert cols.shape == (2 * 2 * 2, 4)
    np.testing.assert_array_equal(cols.data[0], [0, 1, 4, 5])
    np.testing.assert_array_equal(cols.data[3], [10, 11, 14, 15])
    # backward of im2col (col2im): each pixel gets one per patch that covers it
    xt = Tensor(x, requires_grad=True)
    nn.im2col(xt, 3, stride=1).sum().backward()
    counts = np.outer([1, 2, 2, 1], [1, 2, 2, 1])  # 3x3 patches of a 4x4 image
    np.testing.assert_array_equal(xt.grad[0, 0], counts)


def test_bad_input_errors():
    conv = nn.Conv2d(2, 3, 3, seed=0)
    with pytest.raises(ValueError, match=r"expected input \(N, 2, H, W\)"):
        conv(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv(np.zeros((1, 2, 2, 8)))
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match=r"Conv2d: stride must be .* >= 1, got 0"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be .* >= 1"):
        nn.Conv2d(1, 1, (0, 2))
    with pytest.raises(ValueError, match=r"MaxPool2d: stride must be .* >= 1"):
        nn.MaxPool2d(2, stride=0)
    with pytest.raises(ValueError, match=r"AvgPool2d: kernel_size must be .* >= 1"):
        nn.AvgPool2d(0)
    with pytest.raises(ValueError, match=r"im2col: stride must be .* >= 1"):
        nn.im2col(Tensor(np.ones((1, 1, 3, 3))), 2, stride=0)


def naive_pool(x, k, reduce):
    N, C, H, W = x.shape
    out = np.zeros((N, C, H // k, W // k))
    for i in range(H // k):
        for j in range(W // k):
            out[:, :, i, j] = reduce(x[:, :, i * k : (i + 1) * k, j * k : (j + 1) * k], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,H,W", [(2, 4, 6), (2, 5, 5), (3, 6, 6)])
def test_pooling_forward_and_gradients(k, H, W):
    rng = np.random.default_rng(10 * k + H)
    x = rng.standard_normal((2, 3, H, W))  # continuous: no ties
    R = rng.standard_normal((2, 3, H // k, W // k))
    for pool, reduce in [(nn.AvgPool2d(k), np.mean), (nn.MaxPool2d(k), np.max)]:
        xt = Tensor(x, requires_grad=True)
        out = pool(xt)
        np.testing.assert_allclose(out.data, naive_pool(x, k, reduce))
        (out * R).sum().backward()
        fn = anp.mean if reduce is np.mean else anp.max

        def loss(x, fn=fn):
            total = 0.0
            for i in range(H // k):
                for j in range(W // k):
                    w = x[:, :, k * i : k * i + k, k * j : k * j + k]
                    total = total + anp.sum(fn(w, axis=(2, 3)) * R[:, :, i, j])
            return total

        np.testing.assert_allclose(xt.grad, autograd.grad(loss)(x), rtol=1e-12)


def test_lenet_like_net_trains_on_digits():
    """A small strided tanh conv net on the 8x8 digits: the loss falls, gradients flow."""
    from bpkit import F, data, optim

    X, labels = data.digits("train", seed=0)
    X, labels = X[:256].reshape(-1, 1, 8, 8), labels[:256]
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1, init="xavier", seed=0),  # -> 4 x 4 x 4
        nn.Tanh(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1, init="xavier", seed=1),  # -> 8 x 2 x 2
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(32, 10, init="xavier", seed=2),
    )
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses = []
    with bpkit.debug():
        for _ in range(30):
            opt.zero_grad()
            loss = F.cross_entropy(net(X), labels)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def flipped_full_correlation(delta, W, x_shape, stride, padding):
    """dC/dx of a convolution, by loops: dilate the error map (s - 1 zeros between
    entries), pad it by k - 1 zeros (plus the rows no window reads), correlate it with
    the kernel flipped in both directions, input and output channels exchanged, and cut
    the padding off."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, K, Ho, Wo = delta.shape
    _, C, kh, kw = W.shape
    Hp, Wp = x_shape[2] + 2 * ph, x_shape[3] + 2 * pw
    full = np.zeros((N, K, Hp + kh - 1, Wp + kw - 1))
    for i in range(Ho):
        for j in range(Wo):
            full[:, :, kh - 1 + i * sh, kw - 1 + j * sw] = delta[:, :, i, j]
    flipped = W[:, :, ::-1, ::-1]
    gp = np.zeros((N, C, Hp, Wp))
    for r in range(Hp):
        for t in range(Wp):
            for u in range(kh):
                for v in range(kw):
                    gp[:, :, r, t] += full[:, :, r + u, t + v] @ flipped[:, :, u, v]
    return gp[:, :, ph : ph + x_shape[2], pw : pw + x_shape[3]]


INPUT_GRAD_CASES = CASES + [
    (2, 2, 8, 8, 3, 3, 2, 0),  # stride 2 leaves row and column 7 unread
    (1, 2, 6, 7, 2, (2, 3), (1, 3), (2, 1)),  # padding wider than half the kernel
]


@pytest.mark.parametrize("case", INPUT_GRAD_CASES)
def test_input_gradient_is_full_correlation_with_flipped_kernel(case):
    """Conv2d's input gradient (matmul rule, then col2im) equals the transposed
    convolution written independently with loops (chapter 12)."""
    conv, x, stride, padding = make_case(case, seed=8)
    xt = Tensor(x, requires_grad=True)
    out = conv(xt)
    delta = np.random.default_rng(9).standard_normal(out.shape)
    out.backward(delta)
    ref = flipped_full_correlation(delta, conv.W.data, x.shape, stride, padding)
    np.testing.assert_allclose(xt.grad, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", INPUT_GRAD_CASES[-2:])
def test_input_gradient_matches_central_differences_everywhere(case):
    """Every entry of the input gradient, including the unread border rows (exactly 0)."""
    conv, x, stride, padding = make_case(case, seed=10)
    x = x[:1]
    xt = Tensor(x, requires_grad=True)
    R = np.random.default_rng(11).standard_normal(conv(x).shape)
    (conv(xt) * R).sum().backward()
    W, b = conv.W.data, conv.b.data
    (num,) = central_differences(
        lambda: float(np.sum(naive_conv(x, W, b, stride, padding) * R)), [x]
    )
    np.testing.assert_allclose(xt.grad, num, rtol=1e-6, atol=1e-8)
    if case == INPUT_GRAD_CASES[-2]:
        assert np.all(xt.grad[:, :, 7, :] == 0) and np.all(xt.grad[:, :, :, 7] == 0)
