"""The Inception Score (Salimans et al., 2016) of given class probabilities, for any classifier.

``IS = exp E_x KL(p(y|x) || p(y))`` per split, reported as mean and standard deviation over splits.
Which classifier produced the probabilities is the caller's to name: only Inception-v3 ImageNet
probabilities give "the" Inception Score; hrf reports e.g. "IS (EfficientNet-Lite0, ImageNet)".
"""

from __future__ import annotations

import numpy as np


def _kl_score(probs: np.ndarray) -> float:
    """exp of the mean KL divergence between each row and the mean row (0·log 0 = 0)."""
    marginal = probs.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * (np.log(probs) - np.log(marginal)), 0.0)
    return float(np.exp(terms.sum(axis=1).mean()))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """``(mean, std)`` of the Inception Score of ``probs`` (N, classes) over ``splits`` consecutive splits.

    Splits are as equal as possible (``numpy.array_split``), in the given order: samples drawn from
    independent noise need no shuffling. The std is the population std over splits (ddof = 0, as the
    original code and torch-fidelity); torchmetrics reports the ddof = 1 std after shuffling. One split
    gives std 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, classes), got {probs.shape}")
    if not 1 <= splits <= len(probs):
        raise ValueError(f"splits must lie in 1..{len(probs)} (the number of samples), got {splits}")
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("rows of probs must be probability vectors (non-negative, summing to 1)")
    scores = np.array([_kl_score(part) for part in np.array_split(probs, splits)])
    return float(scores.mean()), float(scores.std())


def joint_probs(probs_by_factor: dict[str, np.ndarray], factors: tuple[str, ...]) -> np.ndarray:
    """Probabilities over all combinations of ``factors`` (mixed radix, first factor most significant).

    The classifier's heads are treated as independent given the image, so p(combo|x) is the product of
    the heads' probabilities; the combination index order matches a mixed-radix code of the labels.
    """
    joint = np.ones((len(next(iter(probs_by_factor.values()))), 1))
    for name in factors:
        p = np.asarray(probs_by_factor[name], dtype=np.float64)
        joint = (joint[:, :, None] * p[:, None, :]).reshape(len(p), -1)
    return joint
