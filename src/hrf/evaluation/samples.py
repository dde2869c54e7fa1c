"""Model samples for evaluation: drawn from shared noise, cached on disk, and reference image sets.

A sample cache is one ``.npz`` (uint8 N×H×W×C plus its settings) per model. It is reused only when the
model spec, the model's weights, the number of samples, the noise seed, the number of steps, the noise
scheme (with the batch size when the images depend on it: ``sequential``) and the device type all match,
so a retrained model in the same directory is never mistaken for the old one, and images drawn from other
noise or computed on other hardware never stand in for fresh ones.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from hrf.atomic import atomic_path
from hrf.errors import HrfError
from hrf.sampling.noise import DEFAULT_NOISE, NoiseScheme


def weights_fingerprint(spec: str) -> str:
    """SHA-256 of a local model's UNet weights file ("" for a hub id: the hub pins its own revisions)."""
    from hrf.models import resolve_model_path

    path, subfolder = resolve_model_path(spec)
    folder = Path(path) / (subfolder or "")
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors")) or sorted(
        folder.glob("diffusion_pytorch_model*.bin")
    )
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest() if files else ""


def unique_slug(text: str, taken: set[str]) -> str:
    """A file-name-safe form of ``text`` not yet in ``taken`` (``_2``, ``_3``, … appended); added to ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "model"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}_{i}", i + 1
    taken.add(slug)
    return slug


def sample_or_load(
    spec: str,
    path: Path,
    num: int,
    seed: int,
    steps: int,
    batch_size: int = 64,
    progress: bool = False,
    *,
    noise: NoiseScheme = DEFAULT_NOISE,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Images of model ``spec`` from noise seeded with ``seed``, cached in ``path`` (.npz, uint8).

    Every model draws from the same noise of ``seed`` under the scheme ``noise`` (:mod:`hrf.sampling.noise`):
    ``per_sample`` (image i does not depend on ``batch_size``) or ``sequential`` (the scheme of caches and
    studies made before ``per_sample``; its images depend on ``batch_size``). The model runs on ``device``
    (:func:`hrf.models.resolve_device`). Images are returned on the CPU after the uint8 round trip, so fresh
    and cached runs give the same metrics.
    """
    from hrf.images import from_uint8_hwc, to_uint8_hwc
    from hrf.models import load_pipeline_parts, resolve_device
    from hrf.sampling import make_noise, noise_key, sample_images

    where = resolve_device(device)
    meta: dict[str, str | int] = {
        "spec": spec,
        "num": num,
        "seed": seed,
        "steps": steps,
        "weights": weights_fingerprint(spec),
        **noise_key(noise, batch_size),
        "device": where.type,
    }
    if path.is_file():
        with np.load(path) as cached:
            if all(k in cached and str(cached[k]) == str(v) for k, v in meta.items()):
                return from_uint8_hwc(cached["images"])
    unet, scheduler = load_pipeline_parts(spec, steps, device=where)
    images = sample_images(unet.eval(), scheduler, num, make_noise(noise, seed, num), batch_size, progress=progress)
    pixels = to_uint8_hwc(images)
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        # allow_pickle named: mypy matches **meta against it otherwise; str and int arrays never pickle
        np.savez_compressed(fh, images=pixels, allow_pickle=False, **meta)
    return from_uint8_hwc(pixels)


def _read_reference_image(path: Path) -> np.ndarray:
    """One reference image file as an array, or a one-line HrfError naming it (empty, truncated, not an image)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise HrfError(f"cannot read reference image '{path}': {exc}".splitlines()[0]) from None


def load_reference(spec: str, num: int, seed: int, data=None) -> tuple[torch.Tensor, str]:
    """The reference set: ``data`` (draws from a benchmark's data, ``data(num, seed)``) or a .npz / directory of images.

    Returns ``(images in [-1, 1] NCHW, description)``; at most ``num`` images are used.
    """
    from hrf.images import from_uint8_hwc

    if spec == "data":
        if data is None:
            raise HrfError("reference 'data' needs a benchmark with a data generator (e.g. --benchmark faces)")
        return data(num, seed)
    path = Path(spec)
    if path.is_dir() and (path / "samples.npz").is_file():
        path = path / "samples.npz"
    if path.is_file() and path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as arrays:
                if "images" not in arrays:
                    raise HrfError(
                        f"reference '{spec}' has no 'images' array (expected uint8 N×H×W×C, as hrf sample writes)"
                    )
                stored = arrays["images"]
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise HrfError(f"cannot read reference '{path}' as a .npz archive ({type(exc).__name__})") from None
        return from_uint8_hwc(stored[:num]), f"{path} (first {min(num, len(stored))} images)"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:num]
        if not files:
            raise HrfError(f"reference directory '{spec}' has no samples.npz and no .png/.jpg images")
        images = [_read_reference_image(f) for f in files]
        if len({a.shape for a in images}) > 1:
            raise HrfError(f"images in '{spec}' differ in size; the reference needs equal sizes")
        return from_uint8_hwc(np.stack(images)), f"{path} ({len(files)} images)"
    raise HrfError(f"reference '{spec}' is neither 'data', a .npz file nor a directory of images")
