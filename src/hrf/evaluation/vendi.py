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
    return _spectrum((Y.T @ Y) if d < len(Y) else (Y @ Y.T))


def _spectrum(gram: np.ndarray) -> np.ndarray:
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
    return _centred_interval(values, fn(X), alpha)


def _centred_interval(values: np.ndarray, score: float, alpha: float) -> tuple[float, float]:
    low, mid, high = np.quantile(values, [alpha / 2, 0.5, 1 - alpha / 2])
    return float(low + score - mid), float(high + score - mid)


def vendi_bootstrap_ci(
    X: np.ndarray, n_boot: int = 200, alpha: float = 0.05, seed: int = 0, q: float = 1.0
) -> tuple[float, float]:
    """``bootstrap_ci(lambda Y: vendi_score(Y, q), X, n_boot, alpha, seed)``: the same resamples and interval,
    equal up to rounding, in a fraction of the time.

    A resample is its distinct rows u_i (of X, normalised once) drawn c_i times each, which is what
    :func:`similarity_eigenvalues` merges them into: the weighted Gram matrix ``sqrt(c_i c_j) / n · K_ij``
    on those rows, with ``K`` the cosine kernel of X computed once, or its d × d twin ``Σ c_i u_i u_iᵀ / n``
    when X has fewer features than rows. Merging every resample's rows with ``np.unique`` instead cost most
    of an evaluation of 512 samples.
    """
    rng = np.random.default_rng(seed)
    Xn = normalize_rows(X)
    n, d = Xn.shape
    K = Xn @ Xn.T if d >= n else None
    values = np.empty(n_boot)
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        drawn = np.flatnonzero(counts)
        weight = counts[drawn] / n
        if K is None:
            gram = (Xn[drawn] * weight[:, None]).T @ Xn[drawn]
        else:
            root = np.sqrt(weight)
            gram = K[np.ix_(drawn, drawn)] * np.outer(root, root)
        values[b] = math.exp(renyi_entropy(_spectrum(gram), q))
    return _centred_interval(values, vendi_score(X, q), alpha)


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
        if s <= d:
            small = Xn[:s] @ Xn[:s].T
        else:
            # only sizes past d need the d × d matrix: accumulating it for 3,072 pixel features cost more
            # than all the s × s decompositions of 512 samples
            gram += Xn[done:s].T @ Xn[done:s]
            done = s
            small = gram
        out[i] = math.exp(renyi_entropy(scipy.linalg.eigvalsh(small / s), q))
    return out
