"""The one place where model-space images ([-1, 1], NCHW float) are converted and compared for rewards and metrics."""

from __future__ import annotations

import numpy as np
import torch


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − cosine similarity of images flattened over their last three dimensions (float64, clipped to ≥ 0)."""
    cos = torch.nn.functional.cosine_similarity(a.flatten(-3).double(), b.flatten(-3).double(), dim=-1)
    return (1 - cos).clamp(min=0)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Map model-space images in [-1, 1] to [0, 1] (clamped), keeping NCHW and the dtype."""
    return ((images + 1.0) / 2.0).clamp(0.0, 1.0)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """Map model-space images in [-1, 1] to uint8 NHWC (grey images keep one channel).

    ``(x + 1) / 2`` comes first: clipping [-1, 1] straight to uint8 would turn every negative pixel black.
    """
    unit = to_unit(images.detach().float().cpu())
    return (unit * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def from_uint8_hwc(array: np.ndarray) -> torch.Tensor:
    """Inverse of :func:`to_uint8_hwc`: uint8 NHWC (or NHW for grey) to [-1, 1] float NCHW."""
    if array.ndim == 3:
        array = array[..., None]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float()
    return tensor / 127.5 - 1.0


def make_grid(images: torch.Tensor, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile model-space images into one uint8 HWC (or HW1) picture, ``ncols`` wide (square by default)."""
    pixels = to_uint8_hwc(images)
    n, h, w, c = pixels.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = pixels[i]
    return grid


def save_grid(images: torch.Tensor, path, ncols: int | None = None, scale: int = 1) -> None:
    """Write :func:`make_grid` as a PNG, optionally enlarged ``scale`` times with nearest-neighbour."""
    from PIL import Image

    grid = make_grid(images, ncols)
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
