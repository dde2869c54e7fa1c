"""The procedural faces: deterministic, fast, and every label visibly true in the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrf.data import faces as F
from hrf.data.faces import FACTORS, HIGH_LEVEL, LOW_LEVEL, combo_ids, faces_tensor, generate_faces


@pytest.fixture(scope="module")
def data():
    return generate_faces(800, seed=11)


def _count(images: np.ndarray, colour) -> np.ndarray:
    """Pixels per image exactly equal to ``colour`` (one colour or one per image)."""
    colour = np.broadcast_to(np.asarray(colour, dtype=np.uint8), (len(images), 3))
    return (images == colour[:, None, None, :]).all(-1).sum((1, 2))


def test_deterministic_and_seed_dependent():
    a, la = generate_faces(32, seed=3)
    b, lb = generate_faces(32, seed=3)
    c, _ = generate_faces(32, seed=4)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 32, 3)
    assert np.array_equal(a, b) and all(np.array_equal(la[k], lb[k]) for k in FACTORS)
    assert not np.array_equal(a, c)


def test_api_shapes_and_factor_partition():
    assert set(HIGH_LEVEL) | set(LOW_LEVEL) == set(FACTORS) and not set(HIGH_LEVEL) & set(LOW_LEVEL)
    x, labels = faces_tensor(5, seed=0)
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert set(labels) == set(FACTORS) and all(v.shape == (5,) for v in labels.values())


def test_background_corners_have_the_labelled_colour(data):
    images, labels = data
    expected = F.BACKGROUND_RGB[labels["background"]]
    for y, x in [(0, 0), (0, 31), (31, 0), (31, 31)]:
        assert np.array_equal(images[:, y, x], expected)


def test_hair_pixels_match_the_style(data):
    images, labels = data
    hair = F.HAIR_RGB[labels["hair_color"]]
    total = _count(images, hair)
    bottom = _count(images[:, 28:], hair)
    style = labels["hair_style"]
    # Bald faces keep only their eyebrows (4 × 2 px each side) in the hair colour.
    assert np.all(total[style == 0] == 16)
    assert np.all(total[style != 0] > 25)
    assert np.all(bottom[style == 2] > 0) and np.all(bottom[style != 2] == 0)
    # Spikes reach higher than a short cap.
    top = np.array([np.nonzero((im == h).all(-1).any(1))[0].min() for im, h in zip(images, hair, strict=True)])
    assert top[style == 3].mean() < top[style == 1].mean() - 2


def test_skin_is_the_labelled_tone_only(data):
    images, labels = data
    for tone, rgb in enumerate(F.SKIN_RGB):
        n = _count(images, rgb)
        assert np.all(n[labels["skin_tone"] == tone] > 80) and np.all(n[labels["skin_tone"] != tone] == 0)


def test_head_shapes_are_measurably_different(data):
    images, labels = data
    keep = labels["hair_style"] != 2  # long hair hides the outline of the head
    aspect, fill = [], []
    for im, bg in zip(images[keep], F.BACKGROUND_RGB[labels["background"][keep]], strict=True):
        face = ~(im == bg).all(-1)
        bottom = np.nonzero(face.any(1))[0].max()
        width = face[17].sum()
        aspect.append((bottom - 16) / width)
        fill.append(face[17 : bottom + 1].sum() / ((bottom - 16) * width))
    aspect, fill, shape = np.array(aspect), np.array(fill), labels["head_shape"][keep]
    # Apart by whole rows and columns, not a pixel: the square fills ~0.99 of its box, the circle ~0.80.
    assert fill[shape == 2].mean() > max(fill[shape == 0].mean(), fill[shape == 1].mean()) + 0.15  # corners
    assert aspect[shape == 1].mean() > aspect[shape == 0].mean() + 0.25  # the oval is taller


def test_low_level_details_match_the_labels(data):
    images, labels = data
    white, dark = _count(images, F.WHITE_RGB), _count(images, F.DARK_RGB)
    eyes = labels["eyes"]
    assert np.all(white[eyes == 1] == 16) and np.all(white[eyes != 1] == 0)
    assert np.all(dark[eyes == 0] == 8) and np.all(dark[eyes == 1] == 2) and np.all(dark[eyes == 2] == 6)
    freckle = (F.SKIN_RGB[labels["skin_tone"]] * 0.62).astype(np.uint8)
    assert np.array_equal(_count(images, freckle), 6 * labels["freckles"])
    for im, mouth in zip(images, labels["mouth"], strict=True):
        ys, xs = np.nonzero((im == F.MOUTH_RGB).all(-1))
        corners = ys[(xs == xs.min()) | (xs == xs.max())].mean()
        centre = ys[xs == (xs.min() + xs.max()) // 2].mean()
        assert np.sign(corners - centre) == {0: -1, 1: 0, 2: 1}[mouth]  # y grows downwards


def test_all_values_appear_with_uniform_marginals():
    _, labels = generate_faces(6000, seed=0)
    for name, values in FACTORS.items():
        freq = np.bincount(labels[name], minlength=len(values)) / 6000
        assert len(freq) == len(values) and np.all(np.abs(freq - 1 / len(values)) < 0.03), name
    ids = combo_ids(labels)
    assert ids.min() >= 0 and ids.max() < F.num_combos() == 576
    assert len(np.unique(ids)) > 540  # 6000 draws of 576 equally likely combinations miss almost none


def test_combo_ids_is_a_bijection_on_high_level_factors():
    grids = np.meshgrid(*[np.arange(len(FACTORS[n])) for n in HIGH_LEVEL], indexing="ij")
    labels = {n: g.ravel() for n, g in zip(HIGH_LEVEL, grids, strict=True)}
    assert np.array_equal(np.sort(combo_ids(labels)), np.arange(576))
