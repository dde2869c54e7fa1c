"""CLIP image embeddings of model-space images: the one preprocessing shared by every CLIP user.

Images in [-1, 1] (grey repeated to RGB) are mapped to [0, 1], resized bicubically to CLIP's input size
(antialiased when shrinking, as CLIP's own image processor does), normalised with CLIP's mean and
standard deviation, embedded, and L2-normalised.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from hrf.images import to_unit

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixel_values(images: torch.Tensor, size: int) -> torch.Tensor:
    """Model-space images (N, 1 or 3, H, W) as CLIP's normalised ``pixel_values`` of ``size`` × ``size``."""
    x = to_unit(images.float())
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=x.shape[-1] > size)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_image_embeddings(clip, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised CLIP image embeddings (N, d) of model-space images; differentiable in the images."""
    features = clip.get_image_features(pixel_values=clip_pixel_values(images, clip.config.vision_config.image_size))
    if not isinstance(features, torch.Tensor):  # transformers ≥ 5 may return an output object
        features = features.pooler_output
    return F.normalize(features, dim=-1)
