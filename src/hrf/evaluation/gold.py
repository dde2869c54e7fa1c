"""Gold readings: the attribute a learned reward scores, read by a network that no reward uses.

A reward built on the benchmark's domain classifier (``faces_smile``: the domain classifier's
P(mouth = smile)) can be raised by images that fool that one network. The independent evaluator
(``hrf.data.classifier_b``: another architecture, seed and data draw) reads the same attribute; its
reading is the *gold* value. A method whose gold gain lags its reward gain is fooling the reward's
classifier rather than changing the faces. Rewards with no learned network behind them (JPEG size) have
no gold reading: their fidelity is read by the breakage check and the evaluator's confidence instead.
"""

from __future__ import annotations

import numpy as np

# reward name → (factor, value) whose evaluator probability is that reward's gold reading
GOLD_READINGS: dict[str, tuple[str, str]] = {"faces_smile": ("mouth", "smile")}


def gold_name(reward: str) -> str | None:
    """The metric key of ``reward``'s gold reading (``gold/mouth=smile``), or None if it has none."""
    if reward not in GOLD_READINGS:
        return None
    factor, value = GOLD_READINGS[reward]
    return f"gold/{factor}={value}"


def gold_values(reward: str, evaluator_probs: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per-sample gold reading of ``reward`` from the evaluator's ``{factor: (N, values)}`` probabilities."""
    from hrf.data.faces import FACTORS

    if reward not in GOLD_READINGS:
        return None
    factor, value = GOLD_READINGS[reward]
    return np.asarray(evaluator_probs[factor], dtype=np.float64)[:, FACTORS[factor].index(value)]
