"""An independent evaluator of the faces' factors: a second classifier that no reward ever reads.

The domain classifier (:mod:`hrf.data.classifier`) scores the ``faces_smile`` reward, embeds the domain and
reads the factor metrics, so a model fine-tuned against it can learn to please it. This one reads the same
factors through a different architecture (an MLP-mixer on 4×4 patches: no convolution pyramid, no max
pooling, tokens averaged into the feature vector) from a different initialisation seed and different
training faces. Where this one is unsure, or the two disagree, a sample is likely off the face manifold the
data defines, not only hard for one network. The base model's own T = 10 samples already lower both
scores on the small details (mouth, freckles, eyes): compare fine-tuned samples with them, not with 1.

``python -m hrf.data.classifier_b`` retrains it, rewrites ``hrf/assets/classifier_b/`` and measures it on
the base model's samples and on data faces; ``--measure-only`` re-measures the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hrf.atomic import write_text_atomic
from hrf.data.benchmark import CONFIDENCE
from hrf.data.classifier import (
    HELD_OUT_SEED,
    INFO,
    FactorReader,
    _assets_dir,
    accuracy,
    fit_factor_classifier,
    load_face_classifier,
    read_face_classifier,
    save_face_classifier,
)
from hrf.data.faces import FACTORS, HIGH_LEVEL, LOW_LEVEL, faces_tensor
from hrf.errors import HrfError

ASSETS = "classifier_b"
# Seeds of the shipped weights; the domain classifier used 0 for both.
INIT_SEED = 1
DATA_SEED = 7  # training faces are seeded 7·10⁶ + step, disjoint from the domain classifier's 0 .. 1,499
AUGMENT_SEED = HELD_OUT_SEED + 1  # the held-out faces again, through the training augmentation
# The measurement written into the JSON: the base model as the faces presets sample it, and data faces.
EVAL_MODEL = "hrf:faces32"
EVAL_STEPS = 10  # T of configs/faces32/*.toml
EVAL_NOISE_SEED = 12345
EVAL_BATCH = 64  # the batch `hrf evaluate` samples in, so its noise (and images) are the same
EVAL_DATA_SEED = 2_024_113_012  # data faces for the comparison; no training seed of either classifier


class _MixerBlock(nn.Module):
    """Pre-norm residual MLPs: one across the tokens (per channel), one across the channels (per token)."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.token_norm = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class MixerClassifier(FactorReader):
    """32×32 RGB faces → a logit vector per factor and a ``dim``-vector of features: non-overlapping
    ``patch``×``patch`` patches embedded linearly, ``depth`` mixer blocks, the tokens' mean."""

    retrain = "python -m hrf.data.classifier_b"

    def __init__(
        self, patch: int = 4, dim: int = 64, depth: int = 4, token_hidden: int = 128, channel_hidden: int = 128
    ):
        super().__init__()
        if 32 % patch:
            raise HrfError(f"the patch size must divide 32; got {patch}")
        self.config = {
            "patch": patch,
            "dim": dim,
            "depth": depth,
            "token_hidden": token_hidden,
            "channel_hidden": channel_hidden,
        }
        tokens = (32 // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)  # a linear map of each patch, nothing wider
        self.blocks = nn.Sequential(*(_MixerBlock(tokens, dim, token_hidden, channel_hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, len(values)) for name, values in FACTORS.items()})

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = self.embed(images).flatten(2).transpose(1, 2)
        feats = self.norm(self.blocks(tokens)).mean(1)
        return feats, {name: head(feats) for name, head in self.heads.items()}


def train_evaluator_classifier(
    steps: int = 4000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = INIT_SEED,
    data_seed: int = DATA_SEED,
    progress: bool = True,
) -> MixerClassifier:
    """A :class:`MixerClassifier` initialised from ``seed`` and trained on faces of ``data_seed``."""
    torch.manual_seed(seed)
    return fit_factor_classifier(MixerClassifier(), steps, batch_size, lr, data_seed, progress)


@lru_cache(maxsize=1)
def load_evaluator_classifier() -> MixerClassifier:
    """The independent evaluator shipped with hrf (loaded once, eval mode, no gradients). Never a reward."""
    return read_face_classifier(_assets_dir(ASSETS), MixerClassifier)


def sample_confidence(probs: dict[str, np.ndarray]) -> np.ndarray:
    """Per sample, the least certain factor's top probability: ``min over factors of max over values``.

    1 when every factor is read with certainty; a sample with any factor the classifier cannot place
    (a washed-out mouth, a background between two colours) scores low, whatever the other factors.
    """
    if not probs:
        raise HrfError("no factor probabilities given")
    arrays = {name: np.asarray(p, dtype=np.float64) for name, p in probs.items()}
    sizes = {p.shape[0] if p.ndim == 2 else -1 for p in arrays.values()}
    if len(sizes) != 1 or -1 in sizes or 0 in sizes:
        raise HrfError(
            "factor probabilities must be non-empty (N, num_values) arrays with one N for every factor; "
            f"got shapes {[p.shape for p in arrays.values()]}"
        )
    return np.min(np.stack([p.max(axis=1) for p in arrays.values()]), axis=0)


def evaluator_confidence(probs: dict[str, np.ndarray]) -> float:
    """The "on-manifold" score: the mean over samples of :func:`sample_confidence`. It is 1 when every factor
    of every sample is read with certainty. The shipped evaluator gives 1,000 data faces 0.998 and uniform
    noise far less, and off-manifold samples (reward hacking, a broken denoiser) should score lower."""
    return float(sample_confidence(probs).mean())


def agreement(pred_a: dict[str, np.ndarray], pred_b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per factor of ``pred_a``, the share of samples on which the two predicted labels agree."""
    missing = set(pred_a) - set(pred_b)
    if missing:
        raise HrfError(f"predictions lack factor(s) {sorted(missing)}")
    out = {}
    for name, a in pred_a.items():
        a, b = np.asarray(a), np.asarray(pred_b[name])
        if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
            raise HrfError(
                f"'{name}': predictions must be two non-empty 1-D arrays of one length; got {a.shape} and {b.shape}"
            )
        out[name] = float(np.mean(a == b))
    return out


def compare_classifiers(
    evaluator: FactorReader, domain: FactorReader, images: torch.Tensor, labels: dict[str, np.ndarray] | None = None
) -> dict:
    """The ``evaluator``'s confidence and its agreement with the ``domain`` classifier on ``images`` (and,
    given the true ``labels``, both classifiers' accuracy)."""
    probs = {
        who: {k: p.numpy() for k, p in model.probs(images).items()}
        for who, model in (("evaluator", evaluator), ("domain", domain))
    }
    pred = {who: {k: p.argmax(1) for k, p in ps.items()} for who, ps in probs.items()}
    agrees = agreement(pred["evaluator"], pred["domain"])
    report: dict[str, object] = {
        "num_images": len(images),
        "evaluator_confidence": evaluator_confidence(probs["evaluator"]),
        "evaluator_confident_fraction": float(np.mean(sample_confidence(probs["evaluator"]) >= CONFIDENCE)),
        "evaluator_top_probability": {k: float(p.max(1).mean()) for k, p in probs["evaluator"].items()},
        "domain_confidence": evaluator_confidence(probs["domain"]),
        "agreement_with_domain": agrees,
        "agreement_with_domain_mean": float(np.mean(list(agrees.values()))),
    }
    if labels is not None:
        report["accuracy"] = {who: agreement(p, labels) for who, p in pred.items()}
    return report


def measure(evaluator: FactorReader, num: int = 1000, progress: bool = True) -> dict:
    """:func:`compare_classifiers` (against the shipped domain classifier) on ``num`` base-model samples and
    on ``num`` data faces."""
    from hrf.models import load_pipeline_parts
    from hrf.sampling import sample_images

    started = time.monotonic()
    unet, scheduler = load_pipeline_parts(EVAL_MODEL, EVAL_STEPS)
    samples = sample_images(
        unet.eval(),
        scheduler,
        num,
        torch.Generator().manual_seed(EVAL_NOISE_SEED),
        EVAL_BATCH,
        eta=1.0,
        progress=progress,
    )
    data, labels = faces_tensor(num, EVAL_DATA_SEED)
    domain = load_face_classifier()
    return {
        "base_samples": {
            "model": EVAL_MODEL,
            "ddim_steps": EVAL_STEPS,
            "eta": 1.0,
            "noise_seed": EVAL_NOISE_SEED,
            "batch_size": EVAL_BATCH,
            **compare_classifiers(evaluator, domain, samples),
        },
        "data_faces": {"seed": EVAL_DATA_SEED, **compare_classifiers(evaluator, domain, data, labels)},
        "confidence_definition": "mean over images of (min over all factors of the top class probability); "
        "confident_fraction: share of images with that minimum >= "
        f"{CONFIDENCE}; "
        "top_probability: per factor, the mean over images of the top class probability",
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def training_report(model: MixerClassifier, settings: dict, wall_seconds: float) -> dict:
    """The JSON record of a trained evaluator: ``settings`` (the :func:`main` options steps, batch_size,
    lr, seed, data_seed, threads), the command that retrains it, and its held-out accuracy, clean and
    through the training augmentation."""
    command = "python -m hrf.data.classifier_b " + " ".join(
        f"--{k.replace('_', '-')} {settings[k]}" for k in ("steps", "batch_size", "lr", "seed", "data_seed", "threads")
    )
    return {
        "architecture": "MLP-mixer: 4×4 patches linearly embedded, mixer blocks (token MLP, channel MLP, "
        "pre-LayerNorm, GELU), mean over tokens → features → one linear head per factor",
        "training": {
            "steps": settings["steps"],
            "batch_size": settings["batch_size"],
            "lr": settings["lr"],
            "init_seed": settings["seed"],
            "data_seed": settings["data_seed"],
            "threads": settings["threads"],
            "command": command,
            "augmentation": "hrf.data.classifier.augment, as for the domain classifier",
            "wall_seconds": round(wall_seconds, 1),
        },
        "held_out": {
            "seed": HELD_OUT_SEED,
            "num_images": 2000,
            "accuracy": accuracy(model),
            "augment_seed": AUGMENT_SEED,
            "accuracy_augmented": accuracy(model, augment_seed=AUGMENT_SEED),
        },
        "high_level": list(HIGH_LEVEL),
        "low_level": list(LOW_LEVEL),
        "factors": {k: list(v) for k, v in FACTORS.items()},
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hrf.data.classifier_b",
        description="retrain the independent evaluator classifier, rewrite its shipped "
        "weights and measure it on base-model samples and data faces",
    )
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=INIT_SEED, help="initialisation seed")
    parser.add_argument("--data-seed", type=int, default=DATA_SEED, help="training faces are seeded data_seed·10⁶+step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-eval", type=int, default=1000, help="base-model samples and data faces to measure on")
    parser.add_argument("--measure-only", action="store_true", help="keep the weights in --out, re-measure them")
    parser.add_argument("--out", default=str(_assets_dir(ASSETS)), help="directory for the weights and JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if not args.measure_only:
        started = time.monotonic()
        model = train_evaluator_classifier(args.steps, args.batch_size, args.lr, args.seed, args.data_seed)
        save_face_classifier(model, out, training_report(model, vars(args), time.monotonic() - started))
    elif not (out / INFO).is_file():
        raise HrfError(f"no evaluator classifier in '{out}' to measure; train it first")
    info = json.loads((out / INFO).read_text())
    info["evaluation"] = measure(read_face_classifier(out, MixerClassifier), args.num_eval)
    write_text_atomic(out / INFO, json.dumps(info, indent=2))  # an interrupted write keeps the old report
    print(json.dumps({"held_out": info["held_out"], "evaluation": info["evaluation"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
