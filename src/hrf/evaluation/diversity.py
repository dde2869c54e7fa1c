"""Ground-truth diversity on a benchmark with known factors: entropy and coverage of factor combinations.

``labels`` is one integer code per image naming its combination of high-level factors (e.g.
``hrf.data.faces.mixed_radix_codes`` of the classifier's predictions), in ``0 .. n_combos − 1``.
"""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np


class Entropy(TypedDict):
    """Entropy of the combinations: ``nats`` and, when ``n_combos`` is given, ``fraction`` of log(n_combos)."""

    nats: float
    fraction: float | None


def _codes(labels: np.ndarray, n_combos: int | None = None) -> np.ndarray:
    codes = np.asarray(labels)
    if codes.ndim != 1 or len(codes) == 0 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError("labels must be a non-empty 1-D array of integer combination codes")
    if codes.min() < 0 or (n_combos is not None and codes.max() >= n_combos):
        raise ValueError(f"combination codes must lie in 0..{n_combos - 1 if n_combos else 'n'}")
    return codes


def factor_entropy(labels: np.ndarray, n_combos: int | None = None) -> Entropy:
    """Shannon entropy of the empirical combination distribution, in nats and as a fraction of log(n_combos).

    ``fraction`` is 1 for a uniform spread over all combinations and 0 when every image has the same
    combination; it is ``None`` when ``n_combos`` is not given. The plug-in estimate is biased low when
    the number of images is not much larger than ``n_combos``: compare models at equal sample sizes.
    """
    codes = _codes(labels, n_combos)
    counts = np.bincount(codes)
    p = counts[counts > 0] / len(codes)
    nats = float(-(p * np.log(p)).sum())
    fraction = nats / math.log(n_combos) if n_combos and n_combos > 1 else None
    return {"nats": nats, "fraction": fraction}


def combo_coverage(labels: np.ndarray, n_combos: int) -> float:
    """Share of the ``n_combos`` combinations that occur at least once among the images."""
    codes = _codes(labels, n_combos)
    return float(len(np.unique(codes)) / n_combos)
