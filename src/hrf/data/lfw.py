"""100 real face photographs (Labeled Faces in the Wild), shipped offline by scikit-image.

``skimage.data.lfw_subset()`` holds 200 grey 25×25 crops: the first 100 are faces, the other 100 are
non-face patches (it is a face-detection toy set), so only the first 100 are used. With so few images a
diffusion model trained on them largely memorises them; the track exists to run hrf on real photographs
with a real learned reward (``smile``), not to learn a face distribution.
"""

from __future__ import annotations

import numpy as np
import torch

from hrf.data.images import resize_square
from hrf.errors import HrfError

NUM_FACES = 100
NATIVE_SIZE = 25


def _lfw_array() -> np.ndarray:
    """The 100 face crops as float (100, 25, 25) in [0, 1]."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise HrfError(
            "the LFW faces need scikit-image; run: pip install 'hrf[real]' (or pip install scikit-image)"
        ) from None
    return lfw_subset()[:NUM_FACES]


def lfw_faces(size: int = 32) -> torch.Tensor:
    """The 100 LFW faces as a (100, 1, size, size) float tensor in [-1, 1], resized from 25×25."""
    if size < 4:
        raise HrfError(f"LFW size {size} is too small; use at least 4 (the photographs are 25×25)")
    unit = torch.from_numpy(_lfw_array().astype(np.float32))[:, None]
    return resize_square(unit, size).clamp(0.0, 1.0) * 2.0 - 1.0
