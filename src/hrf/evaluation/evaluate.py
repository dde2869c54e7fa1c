"""Sample several models from the same noise and compute every metric: ``evaluate_images`` and its helpers.

Every metric is stored as ``{"value", "err", "ci"}`` under a key such as ``vendi/pixels``; ``labels``
gives each key the honest name used in reports (which network computed it). On the faces benchmark the
factor classifier also gives the Inception Score over high-level factor combinations (the classifier's
heads multiplied, treated as independent), one IS per high-level factor, and the entropy and coverage
of the predicted high-level combinations.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hrf.errors import HrfError
from hrf.evaluation.diversity import combo_coverage, factor_entropy, mixed_radix_codes
from hrf.evaluation.embedders import Embedder, make_embedder
from hrf.evaluation.fid import frechet_distance, kernel_distance, prdc
from hrf.evaluation.inception import inception_score, joint_probs
from hrf.evaluation.vendi import bootstrap_ci, vendi_score

REFERENCE = "reference"
LEGEND = ("Rewards: mean ± standard error. Vendi: score [95% bootstrap interval, centred on the score]. IS: mean ± std "
          "over splits.")
# Said only under a table that has such columns.
LEGEND_DISTANCE = (" KD/KID: mean ± std over random subsets. FD/KD on features other than Inception pool3 are not "
                   "FID/KID values.")
LEGEND_FACTORS = " Factor metrics use the domain classifier's predicted high-level factors."
PRDC_K = 5


def _entry(value: float, err: float | None = None, ci: tuple[float, float] | None = None, detail: bool = False):
    return {"value": float(value), "err": None if err is None else float(err),
            "ci": None if ci is None else [float(ci[0]), float(ci[1])], "detail": detail}


def reward_values(images: torch.Tensor, reward_fns: dict, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Each reward of every image (float64), computed in batches."""
    from hrf.rewards import validate_rewards

    return {name: torch.cat([validate_rewards(fn(images[i : i + batch_size]), len(images[i : i + batch_size]), name)
                             for i in range(0, len(images), batch_size)]).double().numpy()
            for name, fn in reward_fns.items()}


def mean_sem(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN error for a single value)."""
    sem = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(sem)


def _distance_labels(emb: Embedder) -> tuple[str, str]:
    if emb.name == "fid_inception":
        return "FID (Inception pool3)", "KID (Inception pool3)"
    return f"FD ({emb.label})", f"KD ({emb.label})"


def faces_factors() -> tuple[dict[str, int], tuple[str, ...]]:
    """``(cardinality of every factor, high-level factor names)`` of the faces benchmark."""
    from hrf.data.faces import FACTORS, HIGH_LEVEL

    return {name: len(values) for name, values in FACTORS.items()}, tuple(HIGH_LEVEL)


def benchmark_metrics(probs: dict[str, np.ndarray], is_splits: int) -> tuple[dict[str, dict], dict]:
    """Factor metrics from the domain classifier's probabilities: IS, entropy, coverage, marginals."""
    sizes, high = faces_factors()
    missing = [f for f in high if f not in probs]
    if missing:
        raise HrfError(f"the domain classifier has no head for the high-level factor(s) {missing}")
    n = len(probs[high[0]])
    splits = min(is_splits, n)
    out = {"is/domain": _entry(*inception_score(joint_probs(probs, high), splits))}
    for f in high:
        out[f"is/domain/{f}"] = _entry(*inception_score(probs[f], splits), detail=True)
    predicted = {f: probs[f].argmax(axis=1) for f in probs}
    codes = mixed_radix_codes(predicted, {f: sizes[f] for f in high})
    n_combos = int(np.prod([sizes[f] for f in high]))
    ent = factor_entropy(codes, n_combos)
    out["factors/entropy"] = _entry(ent["nats"])
    out["factors/entropy_fraction"] = _entry(ent["fraction"])
    out["factors/coverage"] = _entry(combo_coverage(codes, n_combos))
    marginals = {f: (np.bincount(v, minlength=probs[f].shape[1]) / len(v)).tolist() for f, v in predicted.items()}
    return out, {"factor_marginals": marginals, "n_combos": n_combos}


def _labels(embs: Sequence[Embedder], rewards: Sequence[str], benchmark: bool) -> dict[str, str]:
    labels = {f"reward/{r}": r for r in rewards}
    for emb in embs:
        labels[f"vendi/{emb.name}"] = f"Vendi ({emb.label})"
    for emb in embs:
        if emb.name == "efficientnet_lite0":
            labels["is/efficientnet_lite0"] = "IS (EfficientNet-Lite0, ImageNet)"
    if benchmark:
        labels["is/domain"] = "IS (domain classifier, high-level combos)"
        labels["factors/entropy"] = "factor entropy (nats)"
        labels["factors/entropy_fraction"] = "factor entropy / log #combos"
        labels["factors/coverage"] = "combo coverage"
        for f in faces_factors()[1]:
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
    rewards: Sequence[str] | dict = (),
    embedders: Sequence[str | Embedder] = ("pixels",),
    reference: torch.Tensor | None = None,
    benchmark: bool = False,
    n_boot: int = 100,
    is_splits: int = 10,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    return_arrays: bool = False,
) -> dict:
    """All metrics of each image set (model space, [-1, 1] NCHW), and of ``reference`` when given.

    ``rewards`` are registered reward names (or a dict name → reward fn); ``embedders`` are names for
    :func:`make_embedder` or built embedders (``domain`` is added on the ``benchmark``). With a
    reference, each model also gets Fréchet/kernel distances and precision/recall/density/coverage
    against it, per embedder, and the reference gets its own row (the diversity of real data, beside
    the base model's, which the paper's "closer to baseline" refers to). Returns ``{"models": {name: {key: entry}},
    "labels": {key: name}, "extra": {name: {...}}, "config": {...}}``; with ``return_arrays`` also
    ``"arrays": {"rewards": {set: {reward: values}}, "features": {embedder: {set: features}}}`` (not JSON).
    """
    if REFERENCE in images_by_model:
        raise HrfError(f"'{REFERENCE}' is reserved for the reference set; rename that model")
    embs = [e if isinstance(e, Embedder) else make_embedder(e, device) for e in embedders]
    if benchmark and "domain" not in {e.name for e in embs}:
        embs.append(make_embedder("domain", device))
    if len({e.name for e in embs}) < len(embs):
        raise HrfError("each embedder may be named once (one clip:DIR at a time)")
    specs = [e.name for e in embs]
    from hrf.rewards import make_reward

    reward_fns = dict(rewards) if isinstance(rewards, dict) else {r: make_reward(r) for r in rewards}
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
                vendi_score(feats), ci=bootstrap_ci(vendi_score, feats, n_boot, 0.05, seed) if n_boot else None)
            if emb.name == "efficientnet_lite0":
                imagenet_is = inception_score(probs["imagenet"], min(is_splits, len(feats)))
                results[name]["is/efficientnet_lite0"] = _entry(*imagenet_is)
            if emb.name == "domain" and benchmark:
                metrics, info = benchmark_metrics(probs, is_splits)
                results[name].update(metrics)
                extra[name].update(info)
            if name == REFERENCE:
                ref_feats = feats
            elif ref_feats is not None:
                results[name].update(_distances(emb, ref_feats, feats, seed))
            bar.update()
    bar.close()
    labels = _labels(embs, list(reward_fns), benchmark)
    config = {"rewards": list(reward_fns), "embedders": specs, "embedder_labels": {e.name: e.label for e in embs},
              "benchmark": benchmark, "n_boot": n_boot,
              "is_splits": is_splits, "seed": seed, "reference": reference is not None}
    report = {"models": results, "labels": labels, "extra": extra, "config": config}
    return report | ({"arrays": arrays} if return_arrays else {})


def _distances(emb: Embedder, real: np.ndarray, fake: np.ndarray, seed: int) -> dict[str, dict]:
    out = {f"fd/{emb.name}": _entry(frechet_distance(real, fake)),
           f"kid/{emb.name}": _entry(*kernel_distance(real, fake, seed=seed))}
    if min(len(real), len(fake)) > PRDC_K:
        for m, v in prdc(real, fake, PRDC_K).items():
            out[f"{m}/{emb.name}"] = _entry(v)
    return out


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    v = entry["value"]
    text = f"{v:.4g}"
    if entry["err"] is not None and not math.isnan(entry["err"]):
        text += f" ± {entry['err']:.2g}"
    if entry["ci"] is not None:
        text += f" [{entry['ci'][0]:.4g}, {entry['ci'][1]:.4g}]"
    return text


DISTANCE_PREFIXES = ("fd/", "kid/", "precision/", "recall/", "density/", "coverage/")


def _table(report: dict, keys: list[str], rows: list[str]) -> list[str]:
    lines = ["| model | n | " + " | ".join(report["labels"][k] for k in keys) + " |",
             "| --- | --- |" + " --- |" * len(keys)]
    for name in rows:
        cells = " | ".join(_cell(report["models"][name].get(k)) for k in keys)
        lines.append(f"| {name} | {report['extra'][name]['n']} | {cells} |")
    return lines


def metrics_markdown(report: dict, include_detail: bool = False) -> str:
    """The report as markdown, one row per image set: rewards and diversity, then distances to the reference."""
    present = [k for k in report["labels"]
               if any(k in m and (include_detail or not m[k]["detail"]) for m in report["models"].values())]
    own = [k for k in present if not k.startswith(DISTANCE_PREFIXES)]
    lines = ["## Rewards and diversity", "", *_table(report, own, list(report["models"]))]
    distance = [k for k in present if k.startswith(DISTANCE_PREFIXES)]
    if distance:
        rows = [m for m in report["models"] if m != REFERENCE]
        lines += ["", "## Distance to the reference set", "", *_table(report, distance, rows)]
    legend = LEGEND + (LEGEND_DISTANCE if distance else "")
    legend += LEGEND_FACTORS if any(k.startswith("factors/") for k in present) else ""
    return "\n".join(lines) + "\n\n" + legend + "\n"


def split_label(text: str) -> tuple[str | None, str]:
    """``LABEL=SPEC`` → ``(LABEL, SPEC)``; a bare spec (or an existing path containing "=") → ``(None, text)``."""
    if "=" not in text or text.startswith("hrf:") or Path(text).exists():
        return None, text
    label, spec = text.split("=", 1)
    if not label or not spec:
        raise HrfError(f"model '{text}': write LABEL=SPEC with both parts, or just SPEC")
    return label, spec


def model_slug(spec: str, taken: set[str]) -> str:
    """A file-name-safe, unique short name for a model spec (``hrf:faces32`` → ``hrf_faces32``)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec.rstrip("/")).name if not spec.startswith("hrf:") else spec)
    base = base.strip("_.") or "model"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}_{i}", i + 1
    taken.add(slug)
    return slug


def weights_fingerprint(spec: str) -> str:
    """SHA-256 of a local model's UNet weights file ("" for a hub id: the hub pins its own revisions)."""
    import hashlib

    from hrf.models import resolve_model_path

    path, subfolder = resolve_model_path(spec)
    folder = Path(path) / (subfolder or "")
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors")) or sorted(folder.glob("diffusion_pytorch_model*.bin"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest() if files else ""


def sample_or_load(
    spec: str, path: Path, num: int, seed: int, steps: int, batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    """Images of model ``spec`` from noise seeded with ``seed``, cached in ``path`` (.npz, uint8).

    A cache written for the same spec, weights, number, seed and steps is reused; anything else is
    resampled, so a retrained model in the same directory is not mistaken for the old one.
    Every model draws from a generator seeded identically, so all models start from the same noise.
    Images are returned after the uint8 round trip, so fresh and cached runs give the same metrics.
    """
    from hrf.images import from_uint8_hwc, to_uint8_hwc
    from hrf.models import load_pipeline_parts
    from hrf.sampling import sample_images

    meta = {"spec": spec, "num": num, "seed": seed, "steps": steps, "weights": weights_fingerprint(spec)}
    if path.is_file():
        with np.load(path) as cached:
            if all(k in cached and str(cached[k]) == str(v) for k, v in meta.items()):
                return from_uint8_hwc(cached["images"])
    unet, scheduler = load_pipeline_parts(spec, steps)
    images = sample_images(unet.eval(), scheduler, num, torch.Generator().manual_seed(seed), batch_size,
                           progress=progress)
    pixels = to_uint8_hwc(images)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=pixels, **meta)
    tmp.replace(path)
    return from_uint8_hwc(pixels)


def load_reference(spec: str, num: int, seed: int) -> tuple[torch.Tensor, str]:
    """The reference set: ``data`` (the faces benchmark generator) or a .npz / directory of images.

    Returns ``(images in [-1, 1] NCHW, description)``; at most ``num`` images are used.
    """
    from hrf.images import from_uint8_hwc

    if spec == "data":
        from hrf.data.faces import faces_tensor

        images, _ = faces_tensor(num, seed)
        return images.float(), f"faces benchmark generator, {num} images, seed {seed}"
    path = Path(spec)
    if path.is_dir() and (path / "samples.npz").is_file():
        path = path / "samples.npz"
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            if "images" not in data:
                raise HrfError(f"reference '{spec}' has no 'images' array (expected uint8 N×H×W×C, as hrf sample writes)")
            return from_uint8_hwc(data["images"][:num]), f"{path} (first {min(num, len(data['images']))} images)"
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:num]
        if not files:
            raise HrfError(f"reference directory '{spec}' has no samples.npz and no .png/.jpg images")
        arrays = [np.asarray(Image.open(f)) for f in files]
        if len({a.shape for a in arrays}) > 1:
            raise HrfError(f"images in '{spec}' differ in size; the reference needs equal sizes")
        return from_uint8_hwc(np.stack(arrays)), f"{path} ({len(files)} images)"
    raise HrfError(f"reference '{spec}' is neither 'data', a .npz file nor a directory of images")


def report_figures(report: dict, images_by_set: dict[str, torch.Tensor], out_dir: Path) -> list[Path]:
    """Sample grids, and from a report made with ``return_arrays``: Figures 1, 5 and 7 as PNGs.

    Figure 1 projects the first embedder's features of the first and last model, marking the first
    model's best sample under the first reward; Figure 5 plots the first reward against the first
    embedder's Vendi score (sets named GROUP/NAME share a colour per GROUP); Figure 7 the Vendi score of
    growing prefixes of each set.
    """
    from hrf.evaluation.plots import figure_embeddings, figure_incremental_vendi, figure_reward_vs_vendi, sample_grids
    from hrf.evaluation.vendi import incremental_vendi

    paths = sample_grids(images_by_set, out_dir)
    arrays = report["arrays"]
    emb = next(iter(arrays["features"]))
    emb_label = report["config"]["embedder_labels"][emb]
    feats = arrays["features"][emb]
    models = [m for m in feats if m != REFERENCE]
    rewards = list(arrays["rewards"][models[0]])
    with_reference = list(feats)
    if rewards:
        first, last = models[0], models[-1]
        best = int(np.argmax(arrays["rewards"][first][rewards[0]]))
        chosen = {first: feats[first]} | ({last: feats[last]} if last != first else {})
        paths.append(figure_embeddings(chosen, out_dir / "figure1_embeddings.png", best=(first, best),
                                       title=f"PCA of {emb_label} features; star: best {rewards[0]}"))
        points = []
        for m in with_reference:
            entry_r, entry_v = report["models"][m][f"reward/{rewards[0]}"], report["models"][m][f"vendi/{emb}"]
            ci = entry_v["ci"] or [entry_v["value"]] * 2
            points.append({"label": m, "group": m.split("/")[0], "reward": entry_r["value"], "reward_err": entry_r["err"],
                           "vendi": entry_v["value"], "vendi_err": (max(entry_v["value"] - ci[0], 0.0), max(ci[1] - entry_v["value"], 0.0))})
        paths.append(figure_reward_vs_vendi(points, out_dir / "figure5_reward_vs_vendi.png", rewards[0], emb_label))
    n = min(len(f) for f in feats.values())
    sizes = np.unique(np.linspace(min(2, n), n, num=min(n - 1, 40) if n > 2 else 1).astype(int))
    curves = {m: incremental_vendi(f[:n], sizes) for m, f in feats.items()}
    paths.append(figure_incremental_vendi(sizes, curves, out_dir / "figure7_incremental_vendi.png", label=emb_label))
    return paths
