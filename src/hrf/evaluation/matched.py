"""Comparing methods at matched reward: reading curves at a reward level, and the tests over seeds.

A fine-tuning run traced at checkpoints gives a curve of (reward, diversity) points, epoch 0 being the base
model. Two methods are compared where they reach the same reward, never at their endpoints: each seed's
curve is read at a pre-declared reward level by linear interpolation between the two checkpoints that
straddle the level's first crossing; a seed whose curve never reaches the level has no value there (it is
counted, not imputed). The per-seed values of two methods are compared with Welch's t-test, and a family
of such contrasts is corrected with Holm's step-down procedure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def value_at_reward(rewards: Sequence[float], values: Sequence[float], level: float) -> float | None:
    """``values`` linearly interpolated at the first point where the ``rewards`` curve reaches ``level``.

    The curves are ordered by training time. Returns ``values[0]`` when the first point already reaches the
    level and ``None`` when no point does.
    """
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if r.shape != v.shape or r.ndim != 1 or len(r) == 0:
        raise ValueError("rewards and values must be equal-length, non-empty 1-D sequences")
    reached = np.nonzero(r >= level)[0]
    if len(reached) == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return float(v[0])
    w = (level - r[i - 1]) / (r[i] - r[i - 1])  # r[i-1] < level <= r[i], so 0 < w <= 1
    return float(v[i - 1] + w * (v[i] - v[i - 1]))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its Student-t confidence interval (``None`` with fewer than two values)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None
    sem = float(x.std(ddof=1) / math.sqrt(len(x)))
    return mean, float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * sem)


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float | int | list[float]]:
    """Welch's two-sample t-test of mean(a) − mean(b): the difference, its standard error, the
    Welch–Satterthwaite degrees of freedom, t, the two-sided p-value and the ``level`` interval."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("Welch's test needs at least two values in each group")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    diff, se = float(x.mean() - y.mean()), math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se > 0 else float("inf")
    t = diff / se if se > 0 else math.copysign(math.inf, diff) if diff else 0.0
    p = float(2 * stats.t.sf(abs(t), df)) if se > 0 else (0.0 if diff else 1.0)
    half = float(stats.t.ppf(0.5 + level / 2, df) * se) if se > 0 else 0.0
    return {
        "diff": diff,
        "se": se,
        "df": float(df),
        "t": float(t),
        "p": p,
        "ci": [diff - half, diff + half],
        "n_a": len(x),
        "n_b": len(y),
    }


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (family-wise error control)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def verdict(diff: float, p_adjusted: float | None, alpha: float = 0.05) -> str:
    """The pre-declared reading of one primary contrast HRF − DDPO_IS of a diversity metric."""
    if p_adjusted is None:
        return "not measurable"
    if p_adjusted < alpha:
        return "confirmed" if diff > 0 else "refuted"
    return "inconclusive"
