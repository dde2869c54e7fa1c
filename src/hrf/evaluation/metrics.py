"""Every metric of sets of images: ``evaluate_images`` and its helpers.

Every metric is stored as ``{"value", "err", "ci"}`` under a key such as ``vendi/pixels``; ``labels``
gives each key the honest name used in reports (which network computed it). On a benchmark with a
factor classifier (:mod:`hrf.benchmarks`) the classifier also gives the Inception Score over high-level
factor combinations (the classifier's heads multiplied, treated as independent), one IS per high-level
factor, and the entropy and coverage of the predicted high-level combinations; its independent evaluator
classifier, where it has one, gives ``vendi/evaluator`` (diversity judged by a network no reward is built
on) and ``confidence/evaluator`` (how surely it reads every factor: low off the face manifold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from hrf.data.classifier_b import evaluator_confidence
from hrf.data.faces import mixed_radix_codes
from hrf.errors import HrfError
from hrf.evaluation.diversity import combo_coverage, factor_entropy
from hrf.evaluation.embedders import Embedder, classifier_embedder, make_embedder
from hrf.evaluation.fid import frechet_distance, kernel_distance, prdc
from hrf.evaluation.inception import inception_score, joint_probs
from hrf.evaluation.vendi import vendi_bootstrap_ci, vendi_score

if TYPE_CHECKING:
    from hrf.benchmarks import Benchmark

REFERENCE = "reference"
PRDC_K = 5
EVALUATOR = "evaluator"  # the embedder name of a benchmark's independent evaluator classifier


def _entry(value: float, err: float | None = None, ci: tuple[float, float] | None = None, detail: bool = False):
    return {
        "value": float(value),
        "err": None if err is None else float(err),
        "ci": None if ci is None else [float(ci[0]), float(ci[1])],
        "detail": detail,
    }


def build_rewards(rewards: Sequence | Mapping, device: torch.device | str | None = None) -> dict:
    """Reward functions by name, from registered names, reward configs (anything with ``.name`` and
    ``.options``, as a training config's ``[reward]``), or an already built ``{name: fn}``; a reward whose
    factory takes a ``device`` runs on ``device`` unless its options name one."""
    from hrf.rewards import make_reward

    if isinstance(rewards, Mapping):
        return dict(rewards)
    built = {}
    for r in rewards:
        name, options = (r, {}) if isinstance(r, str) else (r.name, dict(r.options))
        built[name] = make_reward(name, default_device=device, **options)
    return built


def reward_values(images: torch.Tensor, reward_fns: dict, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Each reward of every image (float64), computed in batches."""
    from hrf.rewards import validate_rewards

    return {
        name: torch.cat(
            [
                validate_rewards(fn(images[i : i + batch_size]), len(images[i : i + batch_size]), name)
                for i in range(0, len(images), batch_size)
            ]
        )
        .double()
        .numpy()
        for name, fn in reward_fns.items()
    }


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN error for a single value)."""
    sem = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(sem)


def _distance_labels(emb: Embedder) -> tuple[str, str]:
    if emb.name == "fid_inception":
        return "FID (Inception pool3)", "KID (Inception pool3)"
    return f"FD ({emb.label})", f"KD ({emb.label})"


def factor_metrics(probs: dict[str, np.ndarray], is_splits: int, bench: Benchmark) -> tuple[dict[str, dict], dict]:
    """Factor metrics from the domain classifier's probabilities: IS, entropy, coverage, marginals."""
    high = bench.high_level
    missing = [f for f in high if f not in probs]
    if missing:
        raise HrfError(f"the domain classifier has no head for the high-level factor(s) {missing}")
    n = len(probs[high[0]])
    splits = min(is_splits, n)
    out = {"is/domain": _entry(*inception_score(joint_probs(probs, high), splits))}
    for f in high:
        out[f"is/domain/{f}"] = _entry(*inception_score(probs[f], splits), detail=True)
    predicted = {f: probs[f].argmax(axis=1) for f in probs}
    codes = mixed_radix_codes(predicted, {f: bench.factors[f] for f in high})
    ent = factor_entropy(codes, bench.n_combos)
    if ent["fraction"] is None:
        raise HrfError(
            f"benchmark '{bench.name}' has {bench.n_combos} high-level combination(s); the factor metrics "
            "need at least 2"
        )
    out["factors/entropy"] = _entry(ent["nats"])
    out["factors/entropy_fraction"] = _entry(ent["fraction"])
    out["factors/coverage"] = _entry(combo_coverage(codes, bench.n_combos))
    marginals = {f: (np.bincount(v, minlength=probs[f].shape[1]) / len(v)).tolist() for f, v in predicted.items()}
    return out, {"factor_marginals": marginals, "n_combos": bench.n_combos}


def _labels(embs: Sequence[Embedder], rewards: Sequence[str], benchmark: Benchmark | None) -> dict[str, str]:
    labels = {f"reward/{r}": r for r in rewards}
    for emb in embs:
        labels[f"vendi/{emb.name}"] = f"Vendi ({emb.label})"
    for emb in embs:
        if emb.name == "efficientnet_lite0":
            labels["is/efficientnet_lite0"] = "IS (EfficientNet-Lite0, ImageNet)"
    if any(e.name == EVALUATOR for e in embs):
        labels[f"confidence/{EVALUATOR}"] = "evaluator confidence (least-sure factor)"
    if benchmark is not None:
        labels["is/domain"] = "IS (domain classifier, high-level combos)"
        labels["factors/entropy"] = "factor entropy (nats)"
        labels["factors/entropy_fraction"] = "factor entropy / log #combos"
        labels["factors/coverage"] = "combo coverage"
        for f in benchmark.high_level:
            labels[f"is/domain/{f}"] = f"IS (domain classifier, {f})"
    for emb in embs:
        fd, kd = _distance_labels(emb)
        labels[f"fd/{emb.name}"] = fd
        labels[f"kid/{emb.name}"] = kd
        for m in ("precision", "recall", "density", "coverage"):
            labels[f"{m}/{emb.name}"] = f"{m} ({emb.label}, k={PRDC_K})"
    return labels


def evaluate_images(
    images_by_model: dict[str, torch.Tensor],
    *,
    rewards: Sequence | Mapping = (),
    embedders: Sequence[str | Embedder] = ("pixels",),
    reference: torch.Tensor | None = None,
    benchmark: Benchmark | None = None,
    n_boot: int = 100,
    is_splits: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    return_arrays: bool = False,
) -> dict:
    """All metrics of each image set (model space, [-1, 1] NCHW), and of ``reference`` when given.

    ``rewards`` as for :func:`build_rewards`; ``embedders`` are names for :func:`make_embedder` or built
    embedders (the ``benchmark``'s classifier is added as ``domain``, with its factor metrics). With a
    reference, each model also gets Fréchet/kernel distances and precision/recall/density/coverage
    against it, per embedder, and the reference gets its own row (the diversity of real data, beside
    the base model's, which the paper's "closer to baseline" refers to). Returns ``{"models": {name: {key: entry}},
    "labels": {key: name}, "extra": {name: {...}}, "config": {...}}``; with ``return_arrays`` also
    ``"arrays": {"rewards": {set: {reward: values}}, "features": {embedder: {set: features}}}`` (not JSON).
    """
    if REFERENCE in images_by_model:
        raise HrfError(f"'{REFERENCE}' is reserved for the reference set; rename that model")
    embs = [e if isinstance(e, Embedder) else make_embedder(e, device) for e in embedders]
    if benchmark is not None and "domain" not in {e.name for e in embs}:
        embs.append(classifier_embedder(benchmark.classifier(), device))
    if benchmark is not None and benchmark.evaluator is not None and EVALUATOR not in {e.name for e in embs}:
        embs.append(classifier_embedder(benchmark.evaluator(), device, EVALUATOR, "independent evaluator classifier"))
    if len({e.name for e in embs}) < len(embs):
        raise HrfError("each embedder may be named once (one clip:DIR at a time)")
    specs = [e.name for e in embs]
    reward_fns = build_rewards(rewards, device)
    sets = ({REFERENCE: reference} if reference is not None else {}) | dict(images_by_model)
    results: dict[str, dict] = {name: {} for name in sets}
    extra: dict[str, dict] = {name: {"n": len(images)} for name, images in sets.items()}

    arrays: dict[str, dict] = {"rewards": {}, "features": {e.name: {} for e in embs}}
    for name, images in sets.items():
        arrays["rewards"][name] = reward_values(images, reward_fns)
        for r, values in arrays["rewards"][name].items():
            results[name][f"reward/{r}"] = _entry(*mean_sem(values))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(embs) * len(sets), desc="metrics", unit="set", disable=not progress)
    for emb in embs:
        ref_feats = None
        for name, images in sets.items():
            bar.set_postfix_str(f"{emb.name} · {name}")
            feats, probs = emb.embed(images, progress)
            if return_arrays:
                arrays["features"][emb.name][name] = feats
            results[name][f"vendi/{emb.name}"] = _entry(
                vendi_score(feats), ci=vendi_bootstrap_ci(feats, n_boot, 0.05, seed) if n_boot else None
            )
            if emb.name == "efficientnet_lite0":
                imagenet_is = inception_score(probs["imagenet"], min(is_splits, len(feats)))
                results[name]["is/efficientnet_lite0"] = _entry(*imagenet_is)
            if emb.name == "domain" and benchmark is not None:
                metrics, info = factor_metrics(probs, is_splits, benchmark)
                results[name].update(metrics)
                extra[name].update(info)
            if emb.name == EVALUATOR:
                # reward hacking leaves the face manifold, where the independent evaluator grows unsure
                results[name][f"confidence/{EVALUATOR}"] = _entry(evaluator_confidence(probs))
            if name == REFERENCE:
                ref_feats = feats
            elif ref_feats is not None:
                results[name].update(_distances(emb, ref_feats, feats, seed))
            bar.update()
    bar.close()
    labels = _labels(embs, list(reward_fns), benchmark)
    config = {
        "rewards": list(reward_fns),
        "embedders": specs,
        "embedder_labels": {e.name: e.label for e in embs},
        "benchmark": benchmark is not None,
        "n_boot": n_boot,
        "is_splits": is_splits,
        "seed": seed,
        "reference": reference is not None,
        "device": str(device),
    }
    report = {"models": results, "labels": labels, "extra": extra, "config": config}
    return report | ({"arrays": arrays} if return_arrays else {})


def _distances(emb: Embedder, real: np.ndarray, fake: np.ndarray, seed: int) -> dict[str, dict]:
    out = {
        f"fd/{emb.name}": _entry(frechet_distance(real, fake)),
        f"kid/{emb.name}": _entry(*kernel_distance(real, fake, seed=seed)),
    }
    if min(len(real), len(fake)) > PRDC_K:
        for m, v in prdc(real, fake, PRDC_K).items():
            out[f"{m}/{emb.name}"] = _entry(v)
    return out
