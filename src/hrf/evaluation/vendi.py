"""The Vendi score (Friedman & Dieng, 2023) with a cosine kernel, fast for many samples.

With rows of ``X`` normalised to unit length, ``K = X Xᵀ`` has a unit diagonal and the eigenvalues of
``K / n`` are a probability vector; the Vendi score of order q is ``exp`` of their Rényi entropy (Shannon
for q = 1). ``K / n`` and ``Xᵀ X / n`` share their non-zero eigenvalues, so the smaller of the two is
decomposed: 10,000 × 2,048 embeddings cost one 2,048 × 2,048 eigendecomposition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in float64.

    An all-zero row (e.g. an all-black image in [0, 1] pixels) has no direction; it is mapped to the
    constant direction, the limit of a uniform image whose brightness goes to zero.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (samples × features), got shape {X.shape}")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    out = X / np.where(norms == 0, 1.0, norms)
    out[zero] = 1.0 / math.sqrt(X.shape[1])
    return out


def renyi_entropy(p: np.ndarray, q: float = 1.0) -> float:
    """Rényi entropy of order q of a probability vector (Shannon at q = 1, min-entropy at q = inf)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    p = p / p.sum()
    nz = p[p > 0]
    if q == 1:
        return float(-(nz * np.log(nz)).sum())
    if math.isinf(q):
        return float(-np.log(nz.max()))
    if q < 0:
        raise ValueError(f"the order q must be non-negative, got {q}")
    return float(np.log((nz**q).sum()) / (1 - q))


def similarity_eigenvalues(X: np.ndarray) -> np.ndarray:
    """Non-zero spectrum of ``K / n`` for the cosine kernel on rows of X (zeros may be dropped or added).

    With fewer features than samples the d × d matrix ``Xᵀ X / n`` is decomposed. Otherwise repeated rows
    (a collapsed model, a bootstrap resample) are merged first: m distinct unit rows u_i seen c_i times
    give the same non-zero eigenvalues as the Gram matrix of the rows sqrt(c_i / n)·u_i, and that m × m
    matrix or its d × d twin, whichever is smaller, is decomposed. (Merging cannot shrink the d × d
    matrix, so it is skipped there: sorting 10,000 rows cost half of a 10,000 × 2,048 score.)
    """
    Xn = normalize_rows(X)
    n, d = Xn.shape
    if d < n:
        Y = Xn / math.sqrt(n)
    else:
        unique, counts = np.unique(Xn, axis=0, return_counts=True)
        Y = unique * np.sqrt(counts / n)[:, None]
    gram = (Y.T @ Y) if d < len(Y) else (Y @ Y.T)
    w = scipy.linalg.eigvalsh(gram)
    # Below the numerical-rank tolerance an eigenvalue is rounding noise; for q < 1 it would still count.
    return np.where(w > w.max() * len(w) * np.finfo(np.float64).eps, w, 0.0)


def vendi_score(X: np.ndarray, q: float = 1.0) -> float:
    """Vendi score of order q of the rows of X with the cosine kernel: between 1 (identical) and n (orthogonal)."""
    if len(X) == 0:
        raise ValueError("the Vendi score needs at least one sample")
    return math.exp(renyi_entropy(similarity_eigenvalues(X), q))


def bootstrap_ci(
    fn: Callable[[np.ndarray], float],
    X: np.ndarray,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """``(1 − alpha)`` bootstrap interval of ``fn`` over rows of X, centred on ``fn(X)``.

    The percentile interval of ``fn`` over resamples with replacement is shifted by
    ``fn(X) − median(resampled values)``. For the Vendi score this matters: a resample repeats rows,
    and repeated rows count once, so every resample scores lower and the raw percentile interval could
    lie wholly below the score. The width (the sampling spread) is kept; for a statistic that resampling
    does not bias, such as a mean, the shift is negligible.
    """
    rng = np.random.default_rng(seed)
    X = np.asarray(X)
    n = len(X)
    values = np.array([fn(X[rng.integers(0, n, n)]) for _ in range(n_boot)])
    low, mid, high = np.quantile(values, [alpha / 2, 0.5, 1 - alpha / 2])
    shift = fn(X) - mid
    return float(low + shift), float(high + shift)


def incremental_vendi(X: np.ndarray, sizes: Sequence[int] | np.ndarray, q: float = 1.0) -> np.ndarray:
    """Vendi score of the first ``s`` rows of X for each ``s`` in ``sizes`` (the paper's Figure 7).

    The d×d Gram matrix is accumulated once over the rows in order, so each size costs one
    eigendecomposition of min(s, d) × min(s, d).
    """
    Xn = normalize_rows(X)
    n, d = Xn.shape
    sizes = [int(s) for s in sizes]
    if any(s < 1 or s > n for s in sizes):
        raise ValueError(f"sizes must lie in 1..{n}")
    order = np.argsort(sizes, kind="stable")
    out = np.empty(len(sizes))
    gram = np.zeros((d, d))
    done = 0
    for i in order:
        s = sizes[i]
        gram += Xn[done:s].T @ Xn[done:s]
        done = s
        small = (Xn[:s] @ Xn[:s].T) if s <= d else gram
        out[i] = math.exp(renyi_entropy(scipy.linalg.eigvalsh(small / s), q))
    return out
