"""Small data sets, generated (seeded) or bundled, never downloaded, as NumPy arrays: inputs
``X`` with one example per row (the row vectors a^0 = x of :class:`bpkit.nn.Linear`) and
targets ``y``. XOR, mirror symmetry and the encoder are tasks of Rumelhart, Hinton & Williams
(1986); the UCI 8x8 digits (Alpaydin & Kaynak, 1998; CC BY 4.0) are bundled."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["xor", "mirror_symmetry", "encoder", "two_moons", "digits"]

_DIGITS_PATH = Path(__file__).parent / "datasets" / "digits.npz"


def _float_dtype(dtype: type | np.dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"data: dtype must be float32 or float64, got {dt}")
    return dt


def xor(dtype: type | np.dtype = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR patterns ``X`` (4, 2) and targets ``y`` (4, 1), 1 where they differ."""
    dt = _float_dtype(dtype)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dt)
    return X, np.array([[0], [1], [1], [0]], dtype=dt)


def mirror_symmetry(
    n_bits: int = 6, dtype: type | np.dtype = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n patterns ``X`` (2^n, n) of ``n_bits`` bits (row i is i in binary, most
    significant bit first) and ``y`` (2^n, 1), 1 iff the pattern is a palindrome; n = 6 is
    the symmetry task of Rumelhart, Hinton & Williams (1986)."""
    if not isinstance(n_bits, (int, np.integer)) or not 1 <= n_bits <= 20:
        raise ValueError(f"mirror_symmetry: n_bits must be an int in 1..20, got {n_bits!r}")
    dt = _float_dtype(dtype)
    i = np.arange(2**n_bits)[:, None]
    bits = (i >> np.arange(n_bits - 1, -1, -1)[None, :]) & 1
    symmetric = np.all(bits == bits[:, ::-1], axis=1, keepdims=True)
    return bits.astype(dt), symmetric.astype(dt)


def encoder(n: int = 8, dtype: type | np.dtype = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The n-(log2 n)-n encoder problem: ``X`` and ``y`` both the n x n identity (one-hot)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"encoder: n must be a positive int, got {n!r}")
    X = np.eye(n, dtype=_float_dtype(dtype))
    return X, X.copy()


def two_moons(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: type | np.dtype = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points ``X`` (n, 2) on two interleaving half circles plus Gaussian noise of std
    ``noise``, and int labels (n,): 0 on (cos t, sin t), 1 on (1 - cos t, 1/2 - sin t),
    t in [0, pi]. Seeded: the same arguments give the same arrays."""
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"two_moons: n must be an int >= 2, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"two_moons: noise must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n0, n1 = n // 2, n - n // 2
    t0, t1 = np.linspace(0.0, np.pi, n0), np.linspace(0.0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    labels = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    order = rng.permutation(n)
    return X[order].astype(_float_dtype(dtype)), labels[order]


def digits(
    split: Literal["train", "test"] | None = None, test_fraction: float = 0.25,
    seed: int = 0, flatten: bool = True, dtype: type | np.dtype = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 UCI 8x8 digits (``bpkit/datasets/README.md``), pixels scaled to [0, 1]:
    ``X`` (n, 64), or (n, 8, 8) if not ``flatten``, and int64 labels 0..9 of shape (n,).
    ``split=None`` gives all; "train"/"test" put ``round(test_fraction * count)`` images of
    each class, drawn with ``seed``, in the test set, each part in the stored order."""
    if split not in (None, "train", "test"):
        raise ValueError(f"digits: split must be 'train', 'test' or None, got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
    dt = _float_dtype(dtype)
    with np.load(_DIGITS_PATH, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    if split is not None:
        rng = np.random.default_rng(seed)
        is_test = np.zeros(len(labels), dtype=bool)
        for c in range(10):
            idx = np.flatnonzero(labels == c)
            n_test = int(round(test_fraction * len(idx)))
            is_test[rng.permutation(idx)[:n_test]] = True
        keep = is_test if split == "test" else ~is_test
        images, labels = images[keep], labels[keep]
    X = images.astype(dt) / dt.type(16)
    return (X.reshape(len(X), 64) if flatten else X), labels
