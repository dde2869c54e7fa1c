"""Conditional faces: a class id fixes the values of some factors (a partial specification, the "prompt");
the other factors stay free, so the diversity a prompt should keep is known.

With ``factors = ("hair_color", "background")`` there are 4 × 4 = 16 classes; class ``c`` is the mixed-radix
code of its values (first factor most significant) and class 16 is the null class of classifier-free
guidance. Metrics of a prompt's samples, read by a classifier (the independent evaluator in reports):
prompt fidelity (the share whose specified factors all read as the prompt's) and the coverage of the free
high-level factor combinations, next to the coverage of the same number of true faces of that prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from hrf.data.faces import FACTORS, HIGH_LEVEL, generate_faces, mixed_radix_codes
from hrf.errors import HrfError


def parse_condition(text: str) -> tuple[str, ...]:
    """Factor names of a ``--condition`` value such as ``hair_color,background`` (validated)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FACTORS]
    if not names or unknown or len(set(names)) != len(names):
        raise HrfError(
            f"--condition '{text}' must name distinct faces factors separated by commas (known: {', '.join(FACTORS)})"
        )
    return names


def num_classes(factors: Sequence[str]) -> int:
    """Classes of a condition: the product of its factors' numbers of values (the null class not counted)."""
    return int(np.prod([len(FACTORS[f]) for f in factors]))


def class_labels(labels: dict[str, np.ndarray], factors: Sequence[str]) -> np.ndarray:
    """The class id of each face: the mixed-radix code of its values of ``factors``."""
    return mixed_radix_codes({f: labels[f] for f in factors}, {f: len(FACTORS[f]) for f in factors})


def class_values(class_id: int, factors: Sequence[str]) -> dict[str, int]:
    """The factor values class ``class_id`` specifies (inverse of :func:`class_labels`)."""
    out = {}
    for f in reversed(factors):
        class_id, out[f] = divmod(class_id, len(FACTORS[f]))
    return {f: out[f] for f in factors}


def class_name(class_id: int, factors: Sequence[str]) -> str:
    """A readable prompt, e.g. ``hair_color=blonde, background=mint``."""
    return ", ".join(f"{f}={FACTORS[f][v]}" for f, v in class_values(class_id, factors).items())


def faces_of_class(n: int, class_id: int, factors: Sequence[str], seed: int) -> tuple[torch.Tensor, dict]:
    """``n`` true faces of class ``class_id`` (drawn from the generator and kept when they match), and labels."""
    from hrf.images import from_uint8_hwc

    kept_images: list[np.ndarray] = []
    kept_labels: list[dict[str, np.ndarray]] = []
    draw = 0
    while sum(len(x) for x in kept_images) < n:
        images, labels = generate_faces(4 * n * num_classes(factors), seed * 1000 + draw)
        mine = class_labels(labels, factors) == class_id
        kept_images.append(images[mine])
        kept_labels.append({k: v[mine] for k, v in labels.items()})
        draw += 1
    labels = {k: np.concatenate([d[k] for d in kept_labels])[:n] for k in FACTORS}
    return from_uint8_hwc(np.concatenate(kept_images)[:n]), labels


def prompt_fidelity(predicted: dict[str, np.ndarray], class_id: int, factors: Sequence[str]) -> float:
    """The share of samples whose predicted values of every specified factor are the prompt's."""
    ok = np.ones(len(next(iter(predicted.values()))), dtype=bool)
    for f, v in class_values(class_id, factors).items():
        ok &= np.asarray(predicted[f]) == v
    return float(ok.mean())


def free_coverage(predicted: dict[str, np.ndarray], factors: Sequence[str]) -> float:
    """The share of the free high-level factors' combinations that some sample shows."""
    free = [f for f in HIGH_LEVEL if f not in factors]
    codes = mixed_radix_codes({f: predicted[f] for f in free}, {f: len(FACTORS[f]) for f in free})
    return len(np.unique(codes)) / int(np.prod([len(FACTORS[f]) for f in free]))


def prompt_metrics_fn(reader, factors: Sequence[str], seed: int = 0) -> Callable[[str, torch.Tensor], dict]:
    """``fn(prompt, images) -> metrics`` for :func:`hrf.evaluation.prompted.evaluate_per_prompt`.

    ``reader`` (a factor classifier with ``.predict``) reads the samples and as many true faces of the
    prompt; ``free_coverage_ratio`` is the samples' free coverage over the true faces'.
    """

    def metrics(prompt: str, images: torch.Tensor) -> dict[str, float]:
        class_id = int(prompt)
        pred = {k: v.numpy() for k, v in reader.predict(images).items()}
        real, _ = faces_of_class(len(images), class_id, factors, seed)
        real_pred = {k: v.numpy() for k, v in reader.predict(real).items()}
        cov, cov_data = free_coverage(pred, factors), free_coverage(real_pred, factors)
        return {
            "prompt_fidelity": prompt_fidelity(pred, class_id, factors),
            "free_coverage": cov,
            "free_coverage_data": cov_data,
            "free_coverage_ratio": cov / cov_data if cov_data else float("nan"),
        }

    return metrics
