"""Tests of bpkit.data: shapes, values and determinism, checked independently."""

import itertools

import numpy as np
import pytest

from bpkit import data


def test_xor_values():
    X, y = data.xor()
    assert X.shape == (4, 2) and y.shape == (4, 1)
    for x, t in zip(X, y, strict=True):
        assert t[0] == float(int(x[0]) != int(x[1]))


def test_mirror_symmetry_all_64_patterns():
    X, y = data.mirror_symmetry()
    assert X.shape == (64, 6) and y.shape == (64, 1)
    # every binary pattern appears exactly once
    rows = {tuple(int(v) for v in r) for r in X}
    assert rows == set(itertools.product([0, 1], repeat=6))
    for pattern, t in zip(X, y, strict=True):
        symmetric = all(pattern[i] == pattern[5 - i] for i in range(3))
        assert t[0] == float(symmetric)
    assert y.sum() == 8  # 2^3 palindromes of length 6


@pytest.mark.parametrize("n_bits", [1, 3, 5])
def test_mirror_symmetry_other_sizes(n_bits):
    X, y = data.mirror_symmetry(n_bits)
    assert X.shape == (2**n_bits, n_bits)
    expected = [float(list(p) == list(p[::-1])) for p in X]
    np.testing.assert_array_equal(y[:, 0], expected)


def test_encoder():
    X, y = data.encoder(8)
    assert X.shape == y.shape == (8, 8)
    assert np.all(X.sum(axis=1) == 1) and np.all(X.argmax(axis=1) == np.arange(8))
    np.testing.assert_array_equal(X, y)
    assert X is not y


def test_float32_requested():
    sets = [data.xor(np.float32), data.encoder(4, np.float32), data.mirror_symmetry(4, np.float32)]
    for X, y in sets:
        assert X.dtype == y.dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        data.xor(np.int32)


def test_two_moons_seeded():
    X, labels = data.two_moons(n=101, noise=0.1, seed=3)
    assert X.shape == (101, 2) and labels.shape == (101,)
    assert labels.dtype.kind == "i" and set(labels.tolist()) == {0, 1}
    assert np.sum(labels == 0) == 50
    X2, labels2 = data.two_moons(n=101, noise=0.1, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    X3, _ = data.two_moons(n=101, noise=0.1, seed=4)
    assert not np.allclose(X, X3)
    # without noise the points lie on the two unit half circles
    X0, l0 = data.two_moons(n=40, noise=0.0)
    up, low = X0[l0 == 0], X0[l0 == 1]
    np.testing.assert_allclose(np.hypot(up[:, 0], up[:, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(low[:, 0] - 1.0, low[:, 1] - 0.5), 1.0)
    assert np.all(up[:, 1] >= 0) and np.all(low[:, 1] <= 0.5 + 1e-12)


def test_digits_all():
    X, labels = data.digits()
    assert X.shape == (1797, 64) and labels.shape == (1797,)
    assert X.dtype == np.float64 and 0.0 <= X.min() and X.max() == 1.0
    assert labels.min() == 0 and labels.max() == 9
    assert np.all(np.bincount(labels) > 170)
    # 0..16 counts scaled by 1/16
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    img, _ = data.digits(flatten=False, dtype=np.float32)
    assert img.shape == (1797, 8, 8) and img.dtype == np.float32


def test_digits_split_deterministic_and_stratified():
    Xtr, ytr = data.digits("train", test_fraction=0.25, seed=0)
    Xte, yte = data.digits("test", test_fraction=0.25, seed=0)
    assert len(ytr) + len(yte) == 1797
    assert abs(len(yte) - 0.25 * 1797) < 10
    # stratified: every class is split in about the same proportion
    frac = np.bincount(yte, minlength=10) / np.bincount(data.digits()[1], minlength=10)
    assert np.all(np.abs(frac - 0.25) < 0.01)
    # the two parts are disjoint and together give back the whole set
    Xall, yall = data.digits()
    rows = lambda A: {a.tobytes() for a in A}  # noqa: E731
    assert len(rows(Xtr) & rows(Xte)) < 5  # only exact duplicate images could repeat
    assert sorted(np.concatenate([ytr, yte]).tolist()) == sorted(yall.tolist())
    # determinism
    Xte2, yte2 = data.digits("test", test_fraction=0.25, seed=0)
    np.testing.assert_array_equal(Xte, Xte2)
    np.testing.assert_array_equal(yte, yte2)
    Xte3, _ = data.digits("test", test_fraction=0.25, seed=1)
    assert Xte3.shape != Xte.shape or not np.array_equal(Xte, Xte3)


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.digits("validation")
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits("test", test_fraction=1.5)
