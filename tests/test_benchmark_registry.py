"""The benchmark registry: which benchmark a model belongs to, and what it carries."""

from __future__ import annotations

import pytest

from hrf.benchmarks import benchmark_of_model, choose_benchmark, get_benchmark
from hrf.errors import HrfError


def test_faces_benchmark_says_what_the_faces_model_has():
    from hrf.data.faces import FACTORS, HIGH_LEVEL

    faces = get_benchmark("faces")
    assert benchmark_of_model("hrf:faces32") == faces and benchmark_of_model("runs/x/final") is None
    assert faces.n_combos == 576 and faces.high_level == HIGH_LEVEL
    assert faces.factors == {k: len(v) for k, v in FACTORS.items()}
    # the independent evaluator is another network than the domain classifier, with the same factor heads
    evaluator, domain = faces.evaluator(), faces.classifier()
    assert type(evaluator) is not type(domain)
    assert set(evaluator.probs(faces.data(2, 1)[0])) == set(FACTORS)
    images, text = faces.data(3, 0)
    assert images.shape == (3, 3, 32, 32) and "seed 0" in text


def test_choose_benchmark():
    assert choose_benchmark("auto", ["runs/x", "hrf:faces32"]).name == "faces"
    assert choose_benchmark("auto", ["runs/x"]) is None
    assert choose_benchmark("auto", ["runs/x"], reference="data").name == "faces"
    assert choose_benchmark("none", ["hrf:faces32"]) is None
    with pytest.raises(HrfError, match="unknown benchmark 'nope'; known: faces"):
        get_benchmark("nope")
