"""Small data sets for the book: generated (and seeded) or bundled, never downloaded.

Every function returns NumPy arrays: inputs ``X`` with one example per row (the row
vectors a^0 = x that :class:`bpkit.nn.Linear` takes) and targets ``y``.

- :func:`xor`, :func:`mirror_symmetry` and :func:`encoder` are the tasks of Rumelhart,
  Hinton & Williams (1986);
- :func:`two_moons` is a 2-D toy classification problem;
- :func:`digits` is the UCI 8x8 handwritten-digit set (Alpaydin & Kaynak, 1998; CC BY 4.0),
  bundled in ``bpkit/datasets/digits.npz``.
"""

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
    """The four XOR patterns: ``X`` of shape (4, 2) and targets ``y`` of shape (4, 1).

    y = 1 exactly when the two inputs differ.
    """
    dt = _float_dtype(dtype)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dt)
    y = np.array([[0], [1], [1], [0]], dtype=dt)
    return X, y


def mirror_symmetry(
    n_bits: int = 6, dtype: type | np.dtype = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n binary patterns of ``n_bits`` bits and whether each is a palindrome.

    Returns ``X`` of shape (2^n, n) (row i is i written in binary, most significant bit
    first) and ``y`` of shape (2^n, 1) with y = 1 iff the pattern is symmetric about its
    centre. With n = 6 this is the symmetry task of Rumelhart, Hinton & Williams (1986).
    """
    if not isinstance(n_bits, (int, np.integer)) or not 1 <= n_bits <= 20:
        raise ValueError(f"mirror_symmetry: n_bits must be an int in 1..20, got {n_bits!r}")
    dt = _float_dtype(dtype)
    i = np.arange(2**n_bits)[:, None]
    shifts = np.arange(n_bits - 1, -1, -1)[None, :]
    bits = (i >> shifts) & 1
    symmetric = np.all(bits == bits[:, ::-1], axis=1, keepdims=True)
    return bits.astype(dt), symmetric.astype(dt)


def encoder(n: int = 8, dtype: type | np.dtype = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The n-(log2 n)-n encoder problem: n one-hot patterns, input and target equal.

    Returns ``(X, y)``, both the n x n identity matrix.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"encoder: n must be a positive int, got {n!r}")
    X = np.eye(n, dtype=_float_dtype(dtype))
    return X, X.copy()


def two_moons(
    n: int = 200, noise: float = 0.1, seed: int = 0, dtype: type | np.dtype = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in the plane, with Gaussian noise of std ``noise``.

    Returns ``X`` of shape (n, 2) and integer labels of shape (n,): label 0 on the upper
    moon (cos t, sin t), label 1 on the lower one (1 - cos t, 1/2 - sin t), t in [0, pi].
    Seeded: the same arguments give the same arrays.
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"two_moons: n must be an int >= 2, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"two_moons: noise must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    labels = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    order = rng.permutation(n)
    return X[order].astype(_float_dtype(dtype)), labels[order]


def digits(
    split: Literal["train", "test"] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    flatten: bool = True,
    dtype: type | np.dtype = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 UCI 8x8 handwritten digits, pixels scaled from 0..16 to [0, 1].

    Source: UCI ML Repository, "Optical Recognition of Handwritten Digits" (E. Alpaydin and
    C. Kaynak, 1998; the copy scikit-learn ships), licence CC BY 4.0; see
    ``bpkit/datasets/README.md``.

    ``split=None`` returns all images in the stored order. ``"train"``/``"test"`` return a
    stratified split: in each class a ``seed``-ed permutation puts
    ``round(test_fraction * count)`` images in the test set; each part keeps the stored
    order, so the split is the same on every call with the same ``seed``.

    Returns ``X`` of shape (n, 64) (or (n, 8, 8) with ``flatten=False``) and labels
    (int64, 0..9) of shape (n,).
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"digits: split must be 'train', 'test' or None, got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
    dt = _float_dtype(dtype)
    with np.load(_DIGITS_PATH, allow_pickle=False) as f:
        images = f["images"]
        labels = f["labels"].astype(np.int64)
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
    if flatten:
        X = X.reshape(len(X), 64)
    return X, labels
