"""A small CNN that reads every factor of a procedural face: the oracle of hrf's benchmark world.

One softmax head per factor of :data:`hrf.data.faces.FACTORS` on a shared trunk; the penultimate layer
(:meth:`FaceClassifier.features`) is the embedding used for feature-space diversity. It is trained on
freshly generated faces with mild noise, blur and colour-shift augmentation, so that it stays reliable on
the slightly imperfect samples of a diffusion model. The shipped weights live in
``hrf/assets/classifier/``; ``python -m hrf.data.classifier`` retrains them and rewrites the weights and
the JSON with the held-out accuracy per factor.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hrf.data.faces import FACTORS, HIGH_LEVEL, LOW_LEVEL, faces_tensor
from hrf.errors import HrfError

WEIGHTS = "face_classifier.safetensors"
INFO = "face_classifier.json"
HELD_OUT_SEED = 2_024_112_401  # never used for training (training seeds are seed·10⁶ + step)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class FactorReader(nn.Module):
    """The reading interface of every factor classifier. A subclass's ``forward`` maps 32×32 RGB faces in
    model space ([-1, 1], NCHW) to ``(features, {factor: logits})``; ``config`` holds its constructor
    arguments (saved with the weights) and ``retrain`` the command that rebuilds its shipped weights."""

    config: dict
    retrain = "python -m hrf.data.classifier"

    def _batched(self, images: torch.Tensor, chunk: int = 512):
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, 32, 32):
            raise HrfError(f"the face classifier reads 3×32×32 images in [-1, 1]; got shape {tuple(images.shape)}")
        device = next(self.parameters()).device
        with torch.no_grad():
            for i in range(0, len(images), chunk):
                yield self(images[i : i + chunk].to(device=device, dtype=torch.float32))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embeddings ``(N, feature_dim)``."""
        return torch.cat([f for f, _ in self._batched(images)])

    def logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{factor: (N, num_values)}`` logits."""
        parts = [lg for _, lg in self._batched(images)]
        return {name: torch.cat([p[name] for p in parts]) for name in FACTORS}

    def probs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{factor: (N, num_values)}`` softmax probabilities."""
        return {name: lg.softmax(-1) for name, lg in self.logits(images).items()}

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{factor: (N,) LongTensor}`` most likely value index of each factor."""
        return {name: lg.argmax(-1) for name, lg in self.logits(images).items()}


class FaceClassifier(FactorReader):
    """The domain classifier: 32×32 RGB faces → a logit vector per factor and a feature vector. A conv
    pyramid max-pooled down to 4×4 and flattened, so positions reach the feature vector."""

    def __init__(self, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.config = {"width": width, "feature_dim": feature_dim}
        w = width
        self.trunk = nn.Sequential(
            _block(3, w),
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # 16×16
            _block(2 * w, 4 * w),
            nn.MaxPool2d(2),  # 8×8
            _block(4 * w, 4 * w),
            nn.MaxPool2d(2),  # 4×4: positions still matter (mouth curve, hair length)
            nn.Flatten(),
            nn.Linear(4 * w * 16, feature_dim),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, len(values)) for name, values in FACTORS.items()})

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.trunk(images)
        return feats, {name: head(feats) for name, head in self.heads.items()}


def _blur(images: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :]) / 16.0
    weight = kernel.expand(3, 1, 3, 3).contiguous()
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), weight, groups=3)


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild, sample-like corruption: partial blur, a small per-channel colour shift, Gaussian noise."""
    n = images.shape[0]
    amount = torch.rand(n, 1, 1, 1, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    out = images + amount * (_blur(images) - images)
    out = out + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.12
    sigma = torch.rand(n, 1, 1, 1, generator=gen) * 0.15
    return (out + sigma * torch.randn(images.shape, generator=gen)).clamp(-1.0, 1.0)


def accuracy(
    model: FactorReader, n: int = 2000, seed: int = HELD_OUT_SEED, augment_seed: int | None = None
) -> dict[str, float]:
    """Per-factor accuracy on ``n`` fresh faces drawn with ``seed``: clean, or through :func:`augment` with
    a generator seeded by ``augment_seed``."""
    images, labels = faces_tensor(n, seed)
    if augment_seed is not None:
        images = augment(images, torch.Generator().manual_seed(augment_seed))
    pred = model.predict(images)
    return {name: float((pred[name].numpy() == labels[name]).mean()) for name in FACTORS}


def train_face_classifier(
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    width: int = 16,
    feature_dim: int = 128,
    progress: bool = True,
) -> FaceClassifier:
    """Train a :class:`FaceClassifier` initialised from ``seed`` on faces of data seed ``seed``."""
    torch.manual_seed(seed)
    return fit_factor_classifier(FaceClassifier(width, feature_dim), steps, batch_size, lr, seed, progress)


def fit_factor_classifier(
    model: FactorReader, steps: int, batch_size: int, lr: float, data_seed: int, progress: bool = True
) -> FactorReader:
    """Train ``model`` on fresh augmented faces each step (faces and augmentation seeded by
    ``data_seed``·10⁶ + step; Adam, one-cycle cosine lr), the summed cross-entropy over the factors."""
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    bar = tqdm(range(steps), desc=type(model).__name__, disable=not progress, unit="step")
    for step in bar:
        images, labels = faces_tensor(batch_size, data_seed * 1_000_000 + step)
        x = augment(images, torch.Generator().manual_seed(data_seed * 1_000_000 + step))
        _, logits = model(x)
        loss = sum(F.cross_entropy(logits[k], torch.from_numpy(labels[k])) for k in FACTORS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    return model.eval()


def _assets_dir(name: str = "classifier") -> Path:
    return Path(str(resources.files("hrf") / "assets" / name))


def save_face_classifier(model: FactorReader, directory: str | Path, info: dict) -> Path:
    """Write the weights (safetensors) and ``info`` + the model config as JSON into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    (directory / INFO).write_text(json.dumps({"config": model.config, **info}, indent=2))
    return directory


def read_face_classifier(directory: str | Path, cls: type[FactorReader] = FaceClassifier) -> FactorReader:
    """Load a ``cls`` written by :func:`save_face_classifier`, in eval mode, without gradients."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / WEIGHTS).is_file():
        raise HrfError(f"no face classifier in '{directory}'; retrain it with '{cls.retrain}'")
    config = json.loads((directory / INFO).read_text())["config"]
    model = cls(**config)
    model.load_state_dict(load_file(directory / WEIGHTS))
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def load_face_classifier() -> FaceClassifier:
    """The classifier shipped with hrf (loaded once, eval mode, no gradients)."""
    return read_face_classifier(_assets_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hrf.data.classifier",
        description="retrain the face-factor classifier and rewrite its shipped weights",
    )
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(_assets_dir()), help="directory for the weights and JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    model = train_face_classifier(args.steps, args.batch_size, args.lr, args.seed)
    acc = accuracy(model)
    info = {
        "training": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "augmentation": "blur (p=0.5, random strength), colour shift ±0.06, Gaussian noise σ≤0.15",
            "wall_seconds": round(time.monotonic() - started, 1),
        },
        "held_out": {"seed": HELD_OUT_SEED, "num_images": 2000, "accuracy": acc},
        "high_level": list(HIGH_LEVEL),
        "low_level": list(LOW_LEVEL),
        "factors": {k: list(v) for k, v in FACTORS.items()},
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    save_face_classifier(model, args.out, info)
    print(json.dumps(acc, indent=2))
    low = [k for k in HIGH_LEVEL if acc[k] < 0.98]
    if low:
        print(f"WARNING: held-out accuracy below 0.98 on {', '.join(low)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
