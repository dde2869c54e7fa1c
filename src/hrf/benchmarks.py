"""The benchmark registry: what hrf knows about a model's domain, said once.

A :class:`Benchmark` names the models that belong to it, their training presets, the data they were
trained on (the reference set of ``--reference data``), the domain classifier (rewards, the ``domain``
embedding, factor metrics) and the factors that classifier predicts. ``evaluator`` is a second,
independently trained classifier (another architecture, seed and data draw) used only to measure
diversity, so that a reward built on the domain classifier is not also its own judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hrf.errors import HrfError

if TYPE_CHECKING:  # annotations only: `hrf --help` lists the benchmarks without importing torch
    import torch


@dataclass(frozen=True)
class Benchmark:
    """One benchmark world: its models, presets, data and classifiers."""

    name: str
    models: tuple[str, ...]  # model specs trained on this benchmark's data, e.g. "hrf:faces32"
    presets: str  # the folder of its training presets under configs/
    factors: dict[str, int]  # number of values of every factor the domain classifier predicts
    high_level: tuple[str, ...]  # the factors whose combinations the diversity metrics count
    data: Callable[[int, int], tuple[torch.Tensor, str]]  # (n, seed) → (images in [-1, 1] NCHW, description)
    classifier: Callable[[], object]  # loads the domain classifier (.probs / .features of model-space images)
    evaluator: Callable[[], object] | None = None  # loads the independent diversity evaluator, if any

    @property
    def n_combos(self) -> int:
        """Number of distinct high-level factor combinations."""
        n = 1
        for f in self.high_level:
            n *= self.factors[f]
        return n


def _faces_data(n: int, seed: int) -> tuple[torch.Tensor, str]:
    from hrf.data.faces import faces_tensor

    images, _ = faces_tensor(n, seed)
    return images.float(), f"faces benchmark generator, {n} images, seed {seed}"


def _faces_classifier():
    from hrf.data.classifier import load_face_classifier

    return load_face_classifier()


def _faces_evaluator():
    from hrf.data.classifier_b import load_evaluator_classifier

    return load_evaluator_classifier()


def _faces() -> Benchmark:
    from hrf.data.faces import FACTORS, HIGH_LEVEL

    return Benchmark(
        name="faces",
        models=("hrf:faces32", "hrf:faces32-cond"),
        presets="faces32",
        factors={name: len(values) for name, values in FACTORS.items()},
        high_level=tuple(HIGH_LEVEL),
        data=_faces_data,
        classifier=_faces_classifier,
        evaluator=_faces_evaluator,
    )


# name → a builder, so importing the registry loads no data module.
BENCHMARKS: dict[str, Callable[[], Benchmark]] = {"faces": _faces}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a one-line HrfError naming the known ones."""
    if name not in BENCHMARKS:
        raise HrfError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]()


def benchmark_of_model(spec: str) -> Benchmark | None:
    """The benchmark whose models include ``spec``, or None (e.g. a user's model directory)."""
    for build in BENCHMARKS.values():
        bench = build()
        if spec in bench.models:
            return bench
    return None


def choose_benchmark(choice: str, specs, reference: str | None = None) -> Benchmark | None:
    """The benchmark of a command's ``--benchmark`` choice: a name, ``none``, or ``auto`` (the benchmark of the
    first model that has one; with ``--reference data`` the first benchmark)."""
    if choice == "none":
        return None
    if choice != "auto":
        return get_benchmark(choice)
    found = next((b for b in map(benchmark_of_model, specs) if b is not None), None)
    if found is None and reference == "data":
        return get_benchmark(next(iter(BENCHMARKS)))
    return found
