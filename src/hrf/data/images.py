"""A user's own images for ``hrf pretrain --data PATH``, and the one square resize every data set uses.

PATH is a folder of PNG/JPEG files (searched recursively, any size: centre-cropped to a square, then
resized) or a ``.npz`` file holding ``images``, an (N, H, W, C) uint8 array with C = 1 or 3. Either way
the result is an (N, C, size, size) uint8 tensor; anything unusable is one ``HrfError`` line that names it.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrf.errors import HrfError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# PIL modes read as one grey channel; every other mode is converted to RGB (an alpha channel is dropped).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def resize_square(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize float NCHW images to ``size``×``size`` (antialiased when shrinking; unchanged at that size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(
        images, size=(size, size), mode=mode, align_corners=False, antialias=size < max(images.shape[-2:])
    )


def center_square(images: np.ndarray) -> np.ndarray:
    """The largest centred square of (..., H, W, C) images."""
    h, w = images.shape[-3:-1]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side, :]


def to_size(images: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, C) uint8 images, centre-cropped and resized, as an (N, C, size, size) uint8 tensor."""
    crop = np.array(center_square(images))  # a writable copy: torch refuses to share a read-only array
    unit = torch.from_numpy(crop).permute(0, 3, 1, 2).float() / 255.0
    return (resize_square(unit, size).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def _read_image(path: Path) -> np.ndarray:
    """One image file as (H, W, C) uint8 with C = 1 (grey modes) or 3."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            pixels = np.asarray(img.convert("L" if img.mode in GREY_MODES else "RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise HrfError(f"cannot read image '{path}': {exc}") from None
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def image_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files under ``folder`` (recursively, hidden files skipped), in a fixed order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_folder(folder: Path, size: int) -> torch.Tensor:
    """Every image under ``folder`` as (N, C, size, size) uint8; one channel count for all, or an error."""
    files = image_files(folder)
    if not files:
        raise HrfError(f"'{folder}' holds no PNG or JPEG images")
    images: list[torch.Tensor] = []
    first: dict[int, Path] = {}  # channel count -> the first file that has it
    for path in files:
        pixels = _read_image(path)
        channels = pixels.shape[-1]
        first.setdefault(channels, path)
        if len(first) > 1:
            grey, colour = first[1], first[3]
            raise HrfError(f"'{folder}' mixes grey ('{grey}') and colour ('{colour}') images; convert them to one kind")
        images.append(to_size(pixels[None], size))
    return torch.cat(images)


def load_npz(path: Path, size: int) -> torch.Tensor:
    """The ``images`` array of a .npz file, (N, H, W, C) uint8 with C = 1 or 3, as (N, C, size, size) uint8."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise HrfError(f"'{path}' has no 'images' array (it holds: {', '.join(archive.files) or 'nothing'})")
            images = archive["images"]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:  # EOFError: an empty file
        raise HrfError(f"cannot read '{path}' as a .npz file: {exc}".splitlines()[0]) from None
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8 or not images.size:
        raise HrfError(
            f"'{path}': 'images' must be a non-empty (N, H, W, C) uint8 array with C = 1 or 3, got shape "
            f"{images.shape} and dtype {images.dtype}"
        )
    return to_size(images, size)


def load_images(path: str | Path, size: int) -> torch.Tensor:
    """A folder of images or a .npz file as an (N, C, size, size) uint8 tensor."""
    path = Path(path)
    if path.is_dir():
        return load_folder(path, size)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, size)
    raise HrfError(f"'{path}' is neither a folder of images nor a .npz file")


def fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the pixels and their shape: whether a resumed run still trains on the same images."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()
