"""Distances between two feature sets: Fréchet distance, KID, and precision/recall/density/coverage.

KID comes from torchmetrics (given an identity "feature network" over precomputed features, so any
embedder works); the Fréchet distance is computed here in closed form, exact and fast for high-dimensional
features, and checked against torchmetrics. They are called FID/KID only on Inception pool3 features; on
other features hrf names them "FD (embedder)" / "KD (embedder)".

Precision and recall follow Kynkäänniemi et al. (2019), density and coverage Naeem et al. (2020): each
point's k-NN radius within its own set defines an open ball, and a point of the other set counts when it
lies strictly closer than that radius to at least one ball's centre (a point exactly at the radius does not).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn


class _Precomputed(nn.Module):
    """An identity "feature extractor": torchmetrics receives features instead of images."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _as_features(a: np.ndarray, name: str) -> torch.Tensor:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name} must be a 2-D array with at least 2 rows, got shape {a.shape}")
    return torch.from_numpy(a)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½) of Gaussians fitted to two feature sets (float64).

    torchmetrics takes a general (non-symmetric) eigendecomposition of the d × d product Σ_r Σ_f, which is
    slow for pixel features (d in the thousands). With centred features A (n × d) and Σ = AᵀA / (n − 1),
    Tr (Σ_r Σ_f)^½ is the nuclear norm of A_f A_rᵀ / sqrt((n_r − 1)(n_f − 1)) — an n_f × n_r matrix —
    and equals Σ sqrt(eig(Σ_r^½ Σ_f Σ_r^½)) through symmetric d × d decompositions; the smaller
    problem is solved. The tests check both routes against torchmetrics and scipy's ``sqrtm``.
    """
    r, f = _as_features(real, "real").numpy(), _as_features(fake, "fake").numpy()
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: {r.shape[1]} vs {f.shape[1]}")
    mu_r, mu_f = r.mean(0), f.mean(0)
    a_r, a_f = r - mu_r, f - mu_f
    n_r, n_f, d = len(r), len(f), r.shape[1]
    traces = ((a_r**2).sum() / (n_r - 1)) + ((a_f**2).sum() / (n_f - 1))
    if min(n_r, n_f) <= d:
        cross = np.linalg.svd(a_f @ a_r.T, compute_uv=False).sum() / np.sqrt((n_r - 1) * (n_f - 1))
    else:
        w, v = scipy.linalg.eigh(a_r.T @ a_r / (n_r - 1))
        half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        inner = scipy.linalg.eigvalsh(half @ (a_f.T @ a_f / (n_f - 1)) @ half)
        cross = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu_r - mu_f) ** 2).sum() + traces - 2 * cross)


def kernel_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """``(mean, std)`` of the unbiased polynomial-kernel MMD² over random subsets (torchmetrics KID).

    ``subset_size`` is capped at half the smaller set (at least 2), so that subsets differ and the std
    says something; the subsets are drawn from the torch RNG seeded with ``seed`` (reproducible).
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    r, f = _as_features(real, "real"), _as_features(fake, "fake")
    size = min(subset_size, max(2, min(len(r), len(f)) // 2))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(r.shape[1]), subsets=subsets, subset_size=size)
    metric.update(r, real=True)
    metric.update(f, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _pairwise_dist(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distances between rows of a and b, computed in row chunks (float64)."""
    b_sq = (b**2).sum(1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        part = a[i : i + chunk]
        sq = (part**2).sum(1)[:, None] + b_sq[None, :] - 2 * part @ b.T
        out[i : i + chunk] = np.sqrt(np.clip(sq, 0, None))
    return out


def knn_radii(X: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of X to its k-th nearest other row."""
    if not 1 <= k < len(X):
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} samples, got {len(X)}")
    d = _pairwise_dist(X, X)
    # Column 0 of the sorted row is the point itself (distance 0).
    return np.partition(d, k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall (Kynkäänniemi 2019), density and coverage (Naeem 2020) with k-NN balls.

    precision = share of fake points inside some real ball; recall = share of real points inside some
    fake ball; density = (1 / kM) Σ_fake #real balls containing it; coverage = share of real balls that
    contain a fake point. Balls are open (``<``), as in Naeem et al.'s reference code (the ``prdc`` package);
    Kynkäänniemi et al. write ``≤``, which differs only on exact ties. Two identical sets give precision =
    recall = coverage = density = 1.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = _pairwise_dist(real, fake)  # (N_real, M_fake)
    inside_real = d < real_r[:, None]  # fake j inside the ball of real i
    inside_fake = d < fake_r[None, :]  # real i inside the ball of fake j
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float(inside_fake.any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * fake.shape[0])),
        "coverage": float(inside_real.any(axis=1).mean()),
    }
