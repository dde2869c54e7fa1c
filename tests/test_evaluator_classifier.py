"""The independent evaluator classifier (hrf.data.classifier_b): shipped weights, accuracy, independence from
the domain classifier, and the confidence/agreement functions on inputs with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hrf.data.classifier import (
    INFO,
    WEIGHTS,
    FaceClassifier,
    _assets_dir,
    accuracy,
    load_face_classifier,
    read_face_classifier,
)
from hrf.data.classifier_b import (
    ASSETS,
    MixerClassifier,
    agreement,
    compare_classifiers,
    evaluator_confidence,
    load_evaluator_classifier,
    main,
    sample_confidence,
)
from hrf.data.faces import FACTORS, faces_tensor
from hrf.errors import HrfError


@pytest.fixture(scope="module")
def clf():
    return load_evaluator_classifier()


@pytest.fixture(scope="module")
def info():
    return json.loads((_assets_dir(ASSETS) / INFO).read_text())


def test_loads_once_with_the_domain_classifiers_interface(clf):
    x, _ = faces_tensor(5, seed=3)
    assert load_evaluator_classifier() is clf and not clf.training
    assert not any(p.requires_grad for p in clf.parameters())
    probs, pred, feats = clf.probs(x), clf.predict(x), clf.features(x)
    assert set(probs) == set(pred) == set(FACTORS)
    for name, values in FACTORS.items():
        assert probs[name].shape == (5, len(values)) and pred[name].shape == (5,) and pred[name].dtype == torch.long
        assert torch.allclose(probs[name].sum(-1), torch.ones(5))
    assert feats.shape == (5, clf.config["dim"])
    with pytest.raises(HrfError, match="3×32×32"):
        clf.probs(torch.zeros(2, 3, 28, 28))


def test_reads_500_held_out_faces_clean_and_augmented(clf):
    # 777_003: neither a training seed of either classifier nor a seed recorded in the JSON.
    clean = accuracy(clf, n=500, seed=777_003)
    assert all(v >= 0.99 for v in clean.values()), clean
    noisy = accuracy(clf, n=500, seed=777_003, augment_seed=5)
    assert all(v >= 0.99 for v in noisy.values()), noisy


def test_an_untrained_mixer_cannot_read_the_faces():
    # The accuracy test above must be able to fail.
    torch.manual_seed(0)
    acc = accuracy(MixerClassifier().eval(), n=300, seed=5)
    assert acc["mouth"] < 0.6 and acc["hair_style"] < 0.6


def test_architecture_and_seeds_differ_from_the_domain_classifier(clf, info):
    domain = load_face_classifier()
    assert not isinstance(clf, FaceClassifier) and not isinstance(domain, MixerClassifier)
    kinds = {type(m) for m in clf.modules()}
    # No max pooling, no batch norm, no 3×3 convolutions: only the patch embedding is a convolution.
    assert not kinds & {nn.MaxPool2d, nn.BatchNorm2d}
    convs = [m for m in clf.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == convs[0].stride == (clf.config["patch"],) * 2
    shapes_b = {tuple(p.shape) for p in clf.parameters() if p.ndim > 1}
    shapes_a = {tuple(p.shape) for p in domain.parameters() if p.ndim > 1}
    assert not shapes_b & shapes_a
    domain_training = json.loads((_assets_dir() / INFO).read_text())["training"]
    assert info["training"]["init_seed"] != domain_training["seed"]
    assert info["training"]["data_seed"] != domain_training["seed"]


def test_shipped_report_is_small_and_complete(clf, info):
    assert (_assets_dir(ASSETS) / WEIGHTS).stat().st_size < 2_000_000
    assert info["config"] == clf.config
    assert info["num_parameters"] == sum(p.numel() for p in clf.parameters())
    for key in ("accuracy", "accuracy_augmented"):
        assert set(info["held_out"][key]) == set(FACTORS) and min(info["held_out"][key].values()) >= 0.99
    assert info["training"]["command"].startswith("python -m hrf.data.classifier_b")
    ev = info["evaluation"]
    for part in ("base_samples", "data_faces"):
        assert ev[part]["num_images"] == 1000 and set(ev[part]["agreement_with_domain"]) == set(FACTORS)
        assert 0 < ev[part]["evaluator_confidence"] <= 1
    assert ev["base_samples"]["ddim_steps"] == 10 and ev["base_samples"]["noise_seed"] == 12345


def test_confidence_and_agreement_known_values():
    probs = {"a": np.array([[0.9, 0.1], [0.5, 0.5]]), "b": np.array([[0.2, 0.7, 0.1], [1.0, 0.0, 0.0]])}
    np.testing.assert_allclose(sample_confidence(probs), [0.7, 0.5])
    assert evaluator_confidence(probs) == pytest.approx(0.6)
    assert evaluator_confidence({"a": np.full((4, 4), 0.25)}) == pytest.approx(0.25)
    got = agreement(
        {"a": np.array([0, 1, 1, 2]), "b": np.array([1, 1])},
        {"a": np.array([0, 1, 2, 2]), "b": np.array([0, 1]), "c": np.array([3])},
    )
    assert got == {"a": 0.75, "b": 0.5}


@pytest.mark.parametrize(
    "probs", [{}, {"a": np.zeros((0, 2))}, {"a": np.ones(3)}, {"a": np.ones((3, 2)) / 2, "b": np.ones((4, 2)) / 2}]
)
def test_confidence_rejects_malformed_probabilities(probs):
    with pytest.raises(HrfError):
        evaluator_confidence(probs)


def test_agreement_rejects_missing_factors_and_length_mismatch():
    with pytest.raises(HrfError, match="lack"):
        agreement({"a": np.array([0])}, {"b": np.array([0])})
    with pytest.raises(HrfError, match="one length"):
        agreement({"a": np.array([0, 1])}, {"a": np.array([0])})


def test_compare_classifiers_against_itself_and_on_noise(clf):
    images, labels = faces_tensor(200, seed=61)
    same = compare_classifiers(clf, clf, images, labels)
    assert set(same["agreement_with_domain"].values()) == {1.0}
    assert same["evaluator_confidence"] == pytest.approx(same["domain_confidence"])
    assert min(same["accuracy"]["evaluator"].values()) >= 0.97
    both = compare_classifiers(clf, load_face_classifier(), images, labels)
    assert both["evaluator_confidence"] > 0.95 and both["agreement_with_domain_mean"] > 0.97
    # Off the face manifold the evaluator is unsure: uniform noise images score far below data faces.
    noise = compare_classifiers(clf, load_face_classifier(), torch.rand(200, 3, 32, 32) * 2 - 1)
    assert noise["evaluator_confidence"] < both["evaluator_confidence"] - 0.2


def test_no_reward_reads_the_evaluator():
    import hrf.rewards

    for path in Path(hrf.rewards.__file__).parent.rglob("*.py"):
        text = path.read_text()
        assert "classifier_b" not in text and "load_evaluator_classifier" not in text, path


@pytest.mark.slow
def test_main_retrains_and_measures_into_a_directory(tmp_path):
    assert main(["--steps", "3", "--num-eval", "8", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / INFO).read_text())
    assert written["training"]["steps"] == 3 and written["evaluation"]["base_samples"]["num_images"] == 8
    assert main(["--measure-only", "--num-eval", "4", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / INFO).read_text())["evaluation"]["data_faces"]["num_images"] == 4
    with pytest.raises(HrfError, match="train it first"):
        main(["--measure-only", "--out", str(tmp_path / "missing")])
    with pytest.raises(HrfError, match="python -m hrf.data.classifier_b"):
        read_face_classifier(tmp_path / "missing", MixerClassifier)
