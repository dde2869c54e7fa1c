"""The LFW track: 100 real face photos from scikit-image, `--data lfw`, and RL fine-tuning for smiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from hrf.data.lfw import lfw_faces  # noqa: E402
from hrf.errors import HrfError  # noqa: E402
from hrf.training.pretrain import make_batch_fn  # noqa: E402


def test_faces_are_the_first_hundred_lfw_crops():
    from skimage.data import lfw_subset

    raw = lfw_subset()
    native = lfw_faces(25)
    assert native.shape == (100, 1, 25, 25)
    assert torch.allclose(native[:, 0], torch.from_numpy(raw[:100]).float() * 2 - 1, atol=1e-6)
    faces = lfw_faces()
    assert faces.shape == (100, 1, 32, 32) and faces.min() >= -1 and faces.max() <= 1
    # Resizing keeps each photo's brightness (bilinear interpolation is a local average).
    assert np.allclose(faces.mean((1, 2, 3)).numpy(), native.mean((1, 2, 3)).numpy(), atol=0.03)
    with pytest.raises(HrfError, match="too small"):
        lfw_faces(2)


def test_pretrain_draws_lfw_batches():
    batch = make_batch_fn("lfw", 32, 5)(3)
    pool = lfw_faces(32)
    assert batch.shape == (5, 1, 32, 32)
    assert (batch[:, None] == pool[None]).flatten(2).all(-1).any(1).all()  # every image is from the set
