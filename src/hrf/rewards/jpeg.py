"""DDPO's JPEG tasks: the size of each image's JPEG file in kB (quality 95, as DDPO)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from hrf.images import to_uint8_hwc
from hrf.rewards.registry import register_reward


def jpeg_sizes_kb(images: torch.Tensor, quality: int = 95) -> np.ndarray:
    """JPEG file size of each model-space image in kB (1 kB = 1000 bytes), via one shared conversion."""
    pixels = to_uint8_hwc(images)
    sizes = np.empty(len(pixels))
    for i, p in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p).save(buffer, format="JPEG", quality=quality)
        sizes[i] = buffer.tell() / 1000.0
    return sizes


@register_reward("jpeg_compressibility")
def jpeg_compressibility(quality: int = 95):
    """Reward = −(JPEG size in kB): smaller files score higher."""

    def fn(images: torch.Tensor):
        kb = jpeg_sizes_kb(images, quality)
        return torch.from_numpy(-kb).float(), {"jpeg_kb": kb}

    return fn


@register_reward("jpeg_incompressibility")
def jpeg_incompressibility(quality: int = 95):
    """Reward = JPEG size in kB: larger files score higher."""

    def fn(images: torch.Tensor):
        kb = jpeg_sizes_kb(images, quality)
        return torch.from_numpy(kb).float(), {"jpeg_kb": kb}

    return fn
