"""How face-like and how diverse a batch of generated faces is, read through the factor classifier.

:func:`faceness_report` compares model samples with data draws on the high-level factors: the share of
samples the classifier reads confidently (a proxy for "is a well-formed face"), how many distinct
high-level combinations they cover, and how far each factor's distribution is from the data's.
``python -m hrf.data.benchmark`` measures the shipped base model and rewrites its ``faceness.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hrf.data.faces import FACTORS, HIGH_LEVEL, LOW_LEVEL, combo_ids, generate_faces, num_combos

CONFIDENCE = 0.9
# What a shipped base model should reach (1,000 samples): well-formed faces, data-like coverage.
REQUIREMENTS = {"confident_fraction": 0.9, "coverage_ratio": 0.9}


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0 = identical, 1 = disjoint) between two histograms."""
    p, q = np.asarray(p, float) / np.sum(p), np.asarray(q, float) / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def expected_coverage(n: int, k: int | None = None) -> float:
    """Expected number of distinct values among ``n`` uniform draws from ``k`` (all 576 combinations)."""
    k = k or num_combos()
    return k * (1.0 - (1.0 - 1.0 / k) ** n)


def _histogram(values: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(np.asarray(values, dtype=np.int64), minlength=size)


def faceness_report(images: torch.Tensor, labels_reference: dict[str, np.ndarray]) -> dict:
    """Classifier-based quality and diversity of ``images`` (model space, (N, 3, 32, 32)) against data.

    ``labels_reference`` are the labels of data draws (e.g. ``generate_faces(N, seed)[1]``); coverage is
    compared with its first N rows, factor distributions with all of them. Keys of the result:

    - ``confident_fraction``: share of samples whose classifier max-probability is ≥ 0.9 on every
      high-level factor;
    - ``coverage_samples`` / ``coverage_data``: distinct high-level combinations (of 576) among the
      samples' predicted labels / among the same number of data draws; ``coverage_ratio`` their quotient;
    - ``js_bits``: Jensen–Shannon divergence (bits) per high-level factor between the predicted labels'
      histogram and the data's, and ``js_bits_mean``;
    - ``sample_marginals`` / ``data_marginals``: value frequencies of every factor (low-level too).
    """
    from hrf.data.classifier import load_face_classifier

    probs = load_face_classifier().probs(images)
    n = len(images)
    pred = {k: p.argmax(-1).numpy() for k, p in probs.items()}
    confident = np.ones(n, dtype=bool)
    for k in HIGH_LEVEL:
        confident &= probs[k].max(-1).values.numpy() >= CONFIDENCE
    ref = {k: np.asarray(v) for k, v in labels_reference.items()}
    ids_samples = combo_ids(pred)
    ids_data = combo_ids({k: ref[k][:n] for k in HIGH_LEVEL})
    js = {
        k: js_divergence(_histogram(pred[k], len(FACTORS[k])), _histogram(ref[k], len(FACTORS[k]))) for k in HIGH_LEVEL
    }
    cov_s, cov_d = len(np.unique(ids_samples)), len(np.unique(ids_data))

    def marginals(labels: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        names = [k for k in (*HIGH_LEVEL, *LOW_LEVEL) if k in labels]
        shares = {k: (_histogram(labels[k], len(FACTORS[k])) / len(labels[k])).round(4).tolist() for k in names}
        return {k: dict(zip(FACTORS[k], shares[k], strict=True)) for k in names}

    return {
        "num_samples": n,
        "num_data": len(ref[HIGH_LEVEL[0]]),
        "confidence_threshold": CONFIDENCE,
        "confident_fraction": float(confident.mean()),
        "coverage_samples": cov_s,
        "coverage_confident_samples": len(np.unique(ids_samples[confident])),
        "coverage_data": cov_d,
        "coverage_ratio": cov_s / cov_d,
        "coverage_expected_uniform": round(expected_coverage(n), 1),
        "num_combinations": num_combos(),
        "js_bits": js,
        "js_bits_mean": float(np.mean(list(js.values()))),
        "sample_marginals": marginals(pred),
        "data_marginals": marginals(ref),
    }


def measure_model(
    model: str = "hrf:faces32",
    num: int = 1000,
    seed: int = 0,
    steps: int = 40,
    batch_size: int = 125,
    progress: bool = True,
) -> dict:
    """Sample ``num`` images (DDIM, ``steps`` steps, eta = 1, noise seed ``seed``) and report on them."""
    from hrf.models import load_pipeline_parts
    from hrf.sampling import sample_images

    unet, scheduler = load_pipeline_parts(model, steps)
    started = time.monotonic()
    images = sample_images(
        unet.eval(), scheduler, num, torch.Generator().manual_seed(seed), batch_size, progress=progress
    )
    report = faceness_report(images, generate_faces(num, seed)[1])
    report["sampling"] = {
        "model": model,
        "num": num,
        "seed": seed,
        "ddim_steps": steps,
        "eta": 1.0,
        "data_seed": seed,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    from hrf.models import resolve_model_path

    parser = argparse.ArgumentParser(
        prog="python -m hrf.data.benchmark", description="measure a faces model's faceness and coverage"
    )
    parser.add_argument("--model", default="hrf:faces32")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON path (default: faceness.json in the model directory)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = measure_model(args.model, args.num, args.seed, args.steps)
    report["requirements"] = {k: {"min": v, "met": report[k] >= v} for k, v in REQUIREMENTS.items()}
    out = Path(args.out) if args.out else Path(resolve_model_path(args.model)[0]) / "faceness.json"
    out.write_text(json.dumps(report, indent=2))
    keys = ("confident_fraction", "coverage_samples", "coverage_data", "js_bits_mean")
    print(json.dumps({k: report[k] for k in keys}, indent=2), f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
