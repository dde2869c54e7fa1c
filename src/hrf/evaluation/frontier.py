"""The KL-optimal reward–diversity frontier of a base model, measured by reweighting its own samples.

Among all distributions q with expected reward R, the one closest to the base model p (least KL(q‖p)) is
the tilted distribution q_β(x) = p(x)·exp(β·r(x)) / Z(β), with β set so that E_q[r] = R. It keeps the base
model's own variety, only reweighted toward the reward, so its diversity at each reward is the yardstick
of a fine-tuning method: a method below it lost diversity it did not have to lose; a method above it makes
images the base model does not make.

With N base samples x_i and rewards r_i, q_β is estimated by self-normalised weights
w_i = exp(β·r_i) / Σ_j exp(β·r_j), and E_q[f] ≈ Σ_i w_i·f(x_i). The estimate is only as good as the
effective sample size 1 / Σ w_i²: a level whose ESS falls below ``MIN_ESS`` lies beyond the base model's
support (it almost never makes such images) and is reported as such, never as a frontier value.

Diversity under the weights (docs/MATH.md, "The frontier"):

- Vendi (order 1, cosine kernel): with unit-norm features f_i, the non-zero eigenvalues of
  W^{1/2} K W^{1/2} equal those of the d×d matrix Σ_i w_i f_i f_iᵀ; Vendi = exp(−Σ λ log λ). Uniform
  weights give the ordinary Vendi; integer weights equal duplicating samples.
- Factor entropy: the entropy of the weighted combination frequencies; coverage: the expected share of
  combinations that ``draws`` samples of q_β cover, Σ_c [1 − (1 − q_c)^draws] / n_combos, so that it
  compares with a model's coverage over ``draws`` samples.
- KL(q_β‖p) ≈ Σ_i w_i·log(N·w_i).

A class-conditional model's frontier is computed within each class (the tilt of p(x | c)): its own samples,
weights and ESS per class, on the same code path with the class as an optional argument, then averaged over
the classes that reach each gain (:func:`average_frontiers`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from hrf.errors import HrfError
from hrf.evaluation.vendi import normalize_rows, renyi_entropy

MIN_ESS = 1000.0  # below this effective sample size a reweighted estimate is noise: the level is off-support
DENSE_FEATURE_DIM = 512  # features up to this size are measured at every grid point; larger ones at levels only


def tilted_weights(rewards: np.ndarray, beta: float) -> np.ndarray:
    """Self-normalised weights of q_β ∝ p·exp(β·r) on samples of p with rewards ``rewards`` (float64)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError("rewards must be a non-empty 1-D array")
    if not np.all(np.isfinite(r)):
        raise HrfError("the frontier needs finite rewards; some base samples have NaN or inf rewards")
    logits = beta * (r - (r.max() if beta >= 0 else r.min()))  # the largest exponent is 0: no overflow
    w = np.exp(logits)
    return w / w.sum()


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size 1 / Σ w² of normalised weights (N for uniform weights, 1 for one-hot)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(1.0 / np.square(w / w.sum()).sum())


def tilted_kl(weights: np.ndarray) -> float:
    """KL(q‖p) in nats of the reweighted distribution against the sample distribution: Σ w·log(N·w)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    nz = w[w > 0]
    return float((nz * np.log(len(w) * nz)).sum())


def weighted_vendi_score(X: np.ndarray, weights: np.ndarray, q: float = 1.0) -> float:
    """Vendi score of order q (cosine kernel) of the distribution putting mass ``weights`` on the rows of X."""
    return _vendi_of_unit_rows(normalize_rows(X), weights, q)


def _vendi_of_unit_rows(Xn: np.ndarray, weights: np.ndarray, q: float = 1.0) -> float:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(Xn),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per row of X, with a positive sum")
    w = w / w.sum()
    keep = w > 0
    Y = Xn[keep] * np.sqrt(w[keep])[:, None].astype(Xn.dtype)
    gram = np.asarray((Y.T @ Y) if Y.shape[1] < len(Y) else (Y @ Y.T), dtype=np.float64)
    lam = scipy.linalg.eigvalsh(gram)
    lam = np.where(lam > lam.max() * len(lam) * np.finfo(np.float64).eps, lam, 0.0)
    return math.exp(renyi_entropy(lam, q))


def weighted_combo_probs(codes: np.ndarray, weights: np.ndarray, n_combos: int) -> np.ndarray:
    """Probability of each factor combination under the weights (codes in 0..n_combos − 1)."""
    codes = np.asarray(codes)
    if codes.shape != np.shape(weights) or codes.min() < 0 or codes.max() >= n_combos:
        raise ValueError(f"codes must be one per weight, in 0..{n_combos - 1}")
    p = np.bincount(codes, weights=np.asarray(weights, dtype=np.float64), minlength=n_combos)
    return p / p.sum()


def weighted_entropy(codes: np.ndarray, weights: np.ndarray, n_combos: int) -> float:
    """Shannon entropy in nats of the weighted factor-combination frequencies."""
    p = weighted_combo_probs(codes, weights, n_combos)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def expected_coverage(codes: np.ndarray, weights: np.ndarray, n_combos: int, draws: int) -> float:
    """Expected share of the ``n_combos`` combinations seen at least once among ``draws`` samples of q."""
    p = weighted_combo_probs(codes, weights, n_combos)
    return float(np.mean(1.0 - np.power(1.0 - p, draws)))


@dataclass
class FrontierSamples:
    """What the frontier needs of N base samples: rewards, features and optional factor codes and gold."""

    rewards: np.ndarray  # (N,) the reward of every sample
    features: dict[str, np.ndarray]  # name → (N, d) features whose Vendi is measured
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # name → (N,) high-level combination codes
    n_combos: int = 0  # number of combinations the codes range over
    gold: np.ndarray | None = None  # (N,) the gold reading of the reward (hrf.evaluation.gold), if any
    unit: dict[str, np.ndarray] = field(init=False, repr=False)  # the features' rows scaled to unit length

    def __post_init__(self) -> None:
        n = len(self.rewards)
        arrays = [*self.features.values(), *self.codes.values(), *([] if self.gold is None else [self.gold])]
        if any(len(a) != n for a in arrays):
            raise ValueError("every array of FrontierSamples needs one row per sample")
        if self.codes and self.n_combos < 1:
            raise ValueError("codes need n_combos")
        # unit rows once, not per β; wide features (pixels) stay float32: 50,000 × 3,072 is 0.6 GB so
        self.unit = {
            k: normalize_rows(v).astype(np.float32 if v.shape[1] > DENSE_FEATURE_DIM else np.float64)
            for k, v in self.features.items()
        }


def frontier_point(
    samples: FrontierSamples, beta: float, draws: int = 1000, dense_only: bool = False, base: dict | None = None
) -> dict:
    """Every reading of q_β: reward, gold, ESS, KL, Vendi per feature set, factor entropy and coverage.

    With ``base`` (the point at β = 0) each diversity value also gets its fraction of the base's
    (``frac/...``). ``dense_only`` skips features larger than ``DENSE_FEATURE_DIM`` (costly per β).
    """
    w = tilted_weights(samples.rewards, beta)
    ess = effective_sample_size(w)
    point: dict = {
        "beta": float(beta),
        "ess": ess,
        "reached": ess >= MIN_ESS,
        "kl": tilted_kl(w),
        "reward": float(w @ samples.rewards),
    }
    if samples.gold is not None:
        point["gold"] = float(w @ samples.gold)
    for name, X in samples.features.items():
        if dense_only and X.shape[1] > DENSE_FEATURE_DIM:
            continue
        point[f"vendi/{name}"] = _vendi_of_unit_rows(samples.unit[name], w)
    for name, codes in samples.codes.items():
        point[f"entropy/{name}"] = weighted_entropy(codes, w, samples.n_combos)
        point[f"coverage/{name}"] = expected_coverage(codes, w, samples.n_combos, draws)
    if base is not None:
        point["gain"] = point["reward"] - base["reward"]
        if "gold" in point:
            point["gold_gain"] = point["gold"] - base["gold"]
        for key in [k for k in point if k.split("/")[0] in ("vendi", "entropy", "coverage")]:
            point[f"frac/{key}"] = point[key] / base[key] if base.get(key) else None
    return point


def beta_grid(rewards: np.ndarray, points: int = 48, beyond: int = 8, floor_ess: float = 50.0) -> np.ndarray:
    """β values whose tilted gains are evenly spaced from 0 to the largest reachable gain (``points`` of them,
    so the curve is as fine where the reward is flat as where it is steep), then ``beyond`` off-support
    values up to where the ESS falls to ``floor_ess``."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.std() == 0:
        raise HrfError("every base sample has the same reward: the frontier is a single point")
    limit = reachable_beta(r)
    top_gain = float(tilted_weights(r, limit) @ r - r.mean())
    betas = [b for g in np.linspace(0.0, top_gain, points) if (b := beta_for_gain(r, float(g))) is not None]
    top = max(limit, 1.0 / float(r.std()))
    while effective_sample_size(tilted_weights(r, top)) > floor_ess and top < 1e6 / float(r.std()):
        top *= 2.0
    return np.unique(np.concatenate([betas, [limit], np.geomspace(max(limit, 1e-12), top, beyond + 1)[1:]]))


def beta_for_gain(rewards: np.ndarray, gain: float, tol: float = 1e-10) -> float | None:
    """The β ≥ 0 whose tilted mean reward exceeds the base mean by ``gain`` (bisection; E_q[r] rises with β),
    or None if no β reaches it (the gain exceeds max r − mean r)."""
    r = np.asarray(rewards, dtype=np.float64)
    target = r.mean() + gain
    if gain <= 0:
        return 0.0
    if target >= r.max():
        return None
    lo, hi = 0.0, 1.0 / max(float(r.std()), 1e-300)
    while float(tilted_weights(r, hi) @ r) < target:
        lo, hi = hi, hi * 2.0
    while hi - lo > tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(tilted_weights(r, mid) @ r) < target else (lo, mid)
    return 0.5 * (lo + hi)


def frontier_curve(
    samples: FrontierSamples,
    gains: Sequence[float] = (),
    points: int = 48,
    draws: int = 1000,
    progress: bool = False,
) -> dict:
    """The frontier: a β grid with the cheap readings, and every reading at the requested reward ``gains``.

    Returns ``{"base", "curve", "levels", "largest_reachable_gain", "min_ess"}``. A level whose β has
    ESS < ``MIN_ESS`` (or that no β reaches) is marked ``reached: False`` with the reason.
    """
    from tqdm.auto import tqdm

    base = frontier_point(samples, 0.0, draws)
    base_full = frontier_point(samples, 0.0, draws, base=base)
    limit = reachable_beta(samples.rewards)
    betas = beta_grid(samples.rewards, points)  # holds the reachable limit: the reached curve ends exactly there
    curve = [
        frontier_point(samples, float(b), draws, dense_only=True, base=base)
        for b in tqdm(betas, desc="frontier β grid", disable=not progress)
    ]
    reached = [p for p in curve if p["reached"]]
    levels = []
    for g in gains:
        beta = beta_for_gain(samples.rewards, g)
        if beta is None:
            levels.append({"gain_target": g, "reached": False, "why": "no β reaches it: above the best base sample"})
            continue
        point = frontier_point(samples, beta, draws, base=base) | {"gain_target": g}
        if not point["reached"]:
            point["why"] = f"off the base model's support: ESS {point['ess']:.0f} < {MIN_ESS:.0f}"
        levels.append(point)
    return {
        "base": base_full,
        "curve": curve,
        "levels": levels,
        "largest_reachable_gain": max((p["gain"] for p in reached), default=0.0),
        "largest_reachable_beta": limit,
        "min_ess": MIN_ESS,
    }


def reachable_beta(rewards: np.ndarray) -> float:
    """The largest β whose tilted estimate keeps ESS ≥ ``MIN_ESS`` (bisection; ESS falls as β grows), 0 when
    there are fewer than ``MIN_ESS`` samples."""
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) < MIN_ESS or r.std() == 0:
        return 0.0
    lo, hi = 0.0, 1.0 / float(r.std())
    while effective_sample_size(tilted_weights(r, hi)) >= MIN_ESS:
        lo, hi = hi, hi * 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if effective_sample_size(tilted_weights(r, mid)) >= MIN_ESS else (lo, mid)
    return lo


def read_frontier(frontier: Mapping, gain: float, key: str) -> float | None:
    """``key`` of the frontier at reward ``gain``, interpolated linearly in gain along the reached grid points;
    None where the frontier is off-support (beyond its largest reachable gain) or lacks ``key``."""
    pts = [p for p in frontier["curve"] if p["reached"] and p.get(key) is not None]
    g = np.array([p["gain"] for p in pts])
    if not pts or gain > g.max() or gain < g.min():
        return None
    order = np.argsort(g)
    return float(np.interp(gain, g[order], np.array([p[key] for p in pts])[order]))


# ---------------------------------------------------------------- base samples, chunked and cached

CHUNK = 500  # base samples per cached chunk: one UNet batch, so its images depend on (seed, index, class) only


def chunk_seed(seed: int, index: int, condition: int | None = None) -> int:
    """The noise seed of chunk ``index`` (of class ``condition``, if given): an independent stream per
    (seed, condition, index), whatever the chunk count or the other prompts asked for."""
    # the class rides in the spawn key, so the unconditional seeds stay what they were and a class's stream
    # is a child no other (seed, index) reaches
    spawn = () if condition is None else (int(condition),)
    return int(np.random.SeedSequence([seed, index], spawn_key=spawn).generate_state(1, dtype=np.uint64)[0] >> 1)


def measure_base(
    spec: str,
    rewards: Mapping,
    num: int,
    seed: int,
    steps: int,
    work,
    benchmark=None,
    embedders: Sequence = (),
    device: str = "cpu",
    progress: bool = False,
    condition: int | None = None,
    guidance_scale: float = 1.0,
    null_class: int = -1,
) -> dict[str, np.ndarray]:
    """Sample ``num`` images of ``spec`` at ``steps`` DDIM steps (η = 1) and read what the frontier needs.

    Returns ``reward/NAME``, ``gold/NAME`` (rewards with a gold reading), ``features/NAME`` (the
    benchmark's ``evaluator`` and ``domain`` classifiers, then each embedder) and ``codes/NAME`` (the
    high-level combination each classifier reads), one row per sample. Samples come in chunks of ``CHUNK``,
    each drawn in one batch from its own CPU generator (``chunk_seed``) and cached in ``work/chunks`` with
    everything read from it, keyed on the model's weights and the settings, so a killed run resumes at its
    first missing chunk and a larger ``num`` only samples the new chunks.

    With ``condition`` (a class id of a class-conditional model) every sample is drawn under that class with
    classifier-free guidance ``guidance_scale`` (``null_class`` the unconditional label, -1 the last); the
    class and the guidance enter the chunk seeds and the cache key, so give each class its own ``work``.
    """
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from hrf.atomic import atomic_path
    from hrf.data.faces import mixed_radix_codes
    from hrf.evaluation.gold import gold_values
    from hrf.evaluation.metrics import reward_values
    from hrf.evaluation.samples import weights_fingerprint
    from hrf.images import from_uint8_hwc, to_uint8_hwc
    from hrf.models import load_pipeline_parts
    from hrf.sampling import sample_images

    work = Path(work) / "chunks"
    work.mkdir(parents=True, exist_ok=True)
    classifiers = {}
    if benchmark is not None:
        from hrf.evaluation.embedders import on_device

        classifiers["domain"] = on_device(benchmark.classifier(), device)
        if benchmark.evaluator is not None:
            classifiers["evaluator"] = on_device(benchmark.evaluator(), device)
    names = sorted(rewards)
    key = {
        "spec": spec,
        "weights": weights_fingerprint(spec),
        "steps": steps,
        "seed": seed,
        "chunk": CHUNK,
        "rewards": ",".join(names),
        "readers": ",".join([*classifiers, *(e.name for e in embedders)]),
    }
    if condition is not None:  # only then: unconditional caches written before these fields stay valid
        key |= {"condition": condition, "guidance_scale": guidance_scale, "null_class": null_class}
    unet = scheduler = cond = None
    parts: list[dict[str, np.ndarray]] = []
    n_chunks = math.ceil(num / CHUNK)
    for i in tqdm(range(n_chunks), desc=f"frontier: base samples ({CHUNK} a chunk)", disable=not progress):
        path = work / f"chunk{i:05d}.npz"
        if path.is_file():
            with np.load(path) as z:
                stored = {k[4:]: str(z[k]) for k in z.files if k.startswith("key_")}
                if stored == {k: str(v) for k, v in key.items()} and int(z["index"]) == i:
                    parts.append({k: z[k] for k in z.files if not k.startswith("key_")})
                    continue
        if unet is None:
            unet, scheduler = load_pipeline_parts(spec, steps, device=device)
            unet = unet.eval()
            if condition is not None:
                from hrf.training.prompts import make_conditioner

                conditioner = make_conditioner([condition], unet, None, null_class, f"model '{spec}'")
                cond = conditioner(torch.zeros(CHUNK, dtype=torch.long))
        gen = torch.Generator().manual_seed(chunk_seed(seed, i, condition))
        drawn = sample_images(unet, scheduler, CHUNK, gen, batch_size=CHUNK, cond=cond, guidance_scale=guidance_scale)
        pixels = to_uint8_hwc(drawn)
        images = from_uint8_hwc(pixels)  # read after the uint8 round trip, as every evaluation does
        got: dict[str, np.ndarray] = {"images": pixels, "index": np.array(i)}
        for name, values in reward_values(images, {n: rewards[n] for n in names}).items():
            got[f"reward/{name}"] = values
        for tag, clf in classifiers.items():
            probs = {k: v.float().cpu().numpy() for k, v in clf.probs(images).items()}
            got[f"features/{tag}"] = clf.features(images).float().cpu().numpy()
            got[f"codes/{tag}"] = mixed_radix_codes(
                {f: probs[f].argmax(-1) for f in benchmark.high_level},
                {f: benchmark.factors[f] for f in benchmark.high_level},
            )
            if tag == "evaluator":
                for name in names:
                    if (gold := gold_values(name, probs)) is not None:
                        got[f"gold/{name}"] = gold
        for emb in embedders:
            got[f"features/{emb.name}"] = emb.embed(images)[0]
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            # allow_pickle named: mypy matches **arrays against it otherwise; these arrays never pickle
            np.savez(fh, allow_pickle=False, **got, **{f"key_{k}": np.array(str(v)) for k, v in key.items()})
        parts.append(got)
    return {k: np.concatenate([p[k] for p in parts])[:num] for k in parts[0] if k != "index"}


def frontier_samples(measured: Mapping[str, np.ndarray], reward: str, n_combos: int = 0) -> FrontierSamples:
    """The :class:`FrontierSamples` of one reward from :func:`measure_base`'s arrays (pixels read in [0, 1])."""
    features = {k.split("/", 1)[1]: v for k, v in measured.items() if k.startswith("features/")}
    if "images" in measured:
        features["pixels"] = measured["images"].reshape(len(measured["images"]), -1).astype(np.float32) / 255.0
    return FrontierSamples(
        rewards=measured[f"reward/{reward}"],
        features=features,
        codes={k.split("/", 1)[1]: v for k, v in measured.items() if k.startswith("codes/")},
        n_combos=n_combos,
        gold=measured.get(f"gold/{reward}"),
    )


# ---------------------------------------------------------------- the command's work: files and the shipped curves

FRONTIER_SEED = 2_026_120_301  # default base-sample noise of the frontier, used by nothing else
NOISE_SCHEME = f"chunked/{CHUNK}: chunk i is one batch from a CPU generator seeded chunk_seed(seed, i)"
CLASS_NOISE_SCHEME = (
    f"chunked/{CHUNK}: chunk i of class c is one batch from a CPU generator seeded chunk_seed(seed, i, c)"
)
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # default levels, as fractions of the largest reachable gain


def frontier_key(
    spec: str,
    reward,
    num: int,
    seed: int,
    steps: int,
    readers: Sequence[str],
    condition: int | None = None,
    guidance_scale: float = 1.0,
    null_class: int = -1,
) -> dict:
    """What a frontier was computed from: a stored one is reused only for the same key."""
    from hrf.evaluation.samples import weights_fingerprint

    name, options = (reward, {}) if isinstance(reward, str) else (reward.name, dict(reward.options))
    key = {
        "model": spec,
        "weights": weights_fingerprint(spec),
        "reward": name,
        "reward_options": options,
        "steps": steps,
        "eta": 1.0,
        "num": num,
        "seed": seed,
        "noise": NOISE_SCHEME,
        "readers": list(readers),
        "min_ess": MIN_ESS,
    }
    if condition is not None:
        key |= {"condition": condition, "guidance_scale": guidance_scale, "null_class": null_class}
        key["noise"] = CLASS_NOISE_SCHEME
    return key


def largest_reachable_gain(rewards: np.ndarray) -> float:
    """The largest reward gain over the base mean that reweighting reaches with ESS ≥ ``MIN_ESS`` (0 if none)."""
    r = np.asarray(rewards, dtype=np.float64)
    return max(float(tilted_weights(r, reachable_beta(r)) @ r) - float(r.mean()), 0.0)


def conditional_classes(spec: str, classes: Sequence[int] | None, null_class: int = -1) -> list[int] | None:
    """The class ids whose frontiers ``spec`` gets, checked before anything is sampled: None for an
    unconditional model; one-line :class:`HrfError` for classes on an unconditional model, a class-conditional
    model without classes, ids (or the null class) outside its embeddings, a repeated id, or a text-to-image
    pipeline."""
    from hrf.evaluation.prompted import class_embeds, conditional_kind

    if conditional_kind(spec) == "text":
        raise HrfError(
            f"'{spec}' is a text-to-image pipeline: the frontier takes unconditional or class-conditional models"
        )
    n = class_embeds(spec)
    if not classes:
        if n:
            raise HrfError(
                f"'{spec}' is class-conditional ({n} class embeddings): give its frontier per class with --classes"
            )
        return None
    if not n:
        raise HrfError(f"--classes needs a class-conditional model; '{spec}' has no class embedding")
    ids = [int(c) for c in classes]
    null = n - 1 if null_class == -1 else null_class
    bad = [c for c in [*ids, null] if not 0 <= c < n]
    if bad:
        raise HrfError(f"class ids {bad} are outside 0..{n - 1} of '{spec}'")
    if len(set(ids)) != len(ids):
        raise HrfError(f"--classes {ids} names a class twice")
    return ids


def average_frontiers(frontiers: Mapping[str, Mapping]) -> dict:
    """Readings averaged over prompts (``{prompt: frontier}``, every one read at the same gains).

    ``base`` is the mean of the prompts' base points. Each level holds ``prompts`` and ``prompts_reached``
    (the prompts whose own tilt reaches the gain with ESS ≥ ``MIN_ESS``) and the mean over those prompts of
    every numeric reading they all have (β excepted: each prompt has its own); a level no prompt reaches has
    no readings. ``largest_reachable_gain`` gives the least, median and largest over prompts.
    """
    frs = list(frontiers.values())
    targets = [lv["gain_target"] for lv in frs[0]["levels"]]
    if any([lv["gain_target"] for lv in fr["levels"]] != targets for fr in frs):
        raise ValueError("averaging over prompts needs every prompt read at the same gains")

    def mean_of(points: list[Mapping]) -> dict:
        keys = set.intersection(*(set(p) for p in points)) - {"beta", "reached", "gain_target"}
        return {
            k: float(np.mean([p[k] for p in points]))
            for k in sorted(keys)
            if all(isinstance(p[k], int | float) and not isinstance(p[k], bool) for p in points)
        }

    levels = []
    for j, target in enumerate(targets):
        got = [fr["levels"][j] for fr in frs if fr["levels"][j]["reached"]]
        level = {"gain_target": target, "prompts": len(frs), "prompts_reached": len(got), "reached": bool(got)}
        levels.append(level | (mean_of(got) if got else {}))
    tops = [fr["largest_reachable_gain"] for fr in frs]
    return {
        "base": mean_of([fr["base"] for fr in frs]),
        "levels": levels,
        "largest_reachable_gain": {"min": min(tops), "median": float(np.median(tops)), "max": max(tops)},
    }


def run_frontier(
    spec: str,
    rewards: Sequence,
    out,
    num: int = 50_000,
    seed: int = FRONTIER_SEED,
    steps: int = 10,
    benchmark=None,
    embedders: Sequence = (),
    gains: Mapping[str, Sequence[float]] | None = None,
    device: str = "cpu",
    progress: bool = False,
    classes: Sequence[int] | None = None,
    guidance_scale: float = 1.0,
    null_class: int = -1,
) -> dict[str, dict]:
    """The frontier of base model ``spec`` for each reward (names or reward configs), written to ``out``.

    Writes ``frontier_REWARD.json`` (settings key, base point, β grid, the levels) per reward, a
    ``frontier.md`` table and a ``frontier.png`` figure; base samples are cached in ``out/chunks``.
    ``gains`` maps a reward name to the reward gains to read exactly (default: 25, 50, 75 and 100 % of
    the largest reachable gain). Returns ``{reward name: frontier}``.

    With ``classes`` (ids of a class-conditional ``spec``) the frontier is computed within each class: ``num``
    samples of each class under guidance ``guidance_scale``, reweighted with that class's own weights, ESS and
    reachable gain, all written as above under ``out/prompts/classC/``. Every class is read at the same gains
    (default: the fractions above of the median over classes of the largest reachable gain), and their
    average (:func:`average_frontiers`) goes to ``frontier_prompts_REWARD.json`` (with every class's
    frontier) and ``frontier_prompts.md``. Returns ``{reward name: {"key", "prompts", "average"}}``.
    """
    from pathlib import Path

    from hrf.atomic import write_json, write_text_atomic
    from hrf.evaluation.metrics import build_rewards

    out = Path(out)
    fns = build_rewards(rewards, device)
    names = [r if isinstance(r, str) else r.name for r in rewards]
    conditions: list[int | None] = [None] if classes is None else [int(c) for c in classes]
    work = {c: out if c is None else out / "prompts" / f"class{c}" for c in conditions}
    n_combos = benchmark.n_combos if benchmark is not None else 0
    last: dict[int | None, dict[str, np.ndarray]] = {}  # the latest arrays: one condition reads its cache once

    def measured_of(c: int | None) -> dict[str, np.ndarray]:
        if c not in last:
            last.clear()
            last[c] = measure_base(
                spec,
                fns,
                num,
                seed,
                steps,
                work[c],
                benchmark,
                embedders,
                device,
                progress,
                c,
                guidance_scale,
                null_class,
            )
        return last[c]

    wanted = {name: list(g) for name, g in (gains or {}).items() if g}
    if missing := [name for name in names if name not in wanted]:
        # one set of gains for every condition, so that each level averages over the same target
        tops: dict[str, list[float]] = {name: [] for name in missing}
        for c in conditions:
            for name in missing:
                tops[name].append(largest_reachable_gain(measured_of(c)[f"reward/{name}"]))
        wanted |= {name: [f * float(np.median(tops[name])) for f in DEFAULT_FRACTIONS] for name in missing}
    per_condition: dict[int | None, dict[str, dict]] = {}
    for c in conditions:
        measured = measured_of(c)
        readers = sorted(k.split("/", 1)[1] for k in measured if k.startswith("features/")) + ["pixels"]
        per_condition[c] = {}
        for reward, name in zip(rewards, names, strict=True):
            result = frontier_curve(frontier_samples(measured, name, n_combos), wanted[name], progress=progress)
            result["key"] = frontier_key(spec, reward, num, seed, steps, readers, c, guidance_scale, null_class)
            result["device"] = device
            write_json(work[c] / f"frontier_{name}.json", result)
            per_condition[c][name] = result
        write_text_atomic(work[c] / "frontier.md", frontier_markdown(per_condition[c]))
        frontier_figure(per_condition[c], work[c] / "frontier.png")
    if classes is None:
        return per_condition[None]
    results: dict[str, dict] = {}
    for reward, name in zip(rewards, names, strict=True):
        prompts = {str(c): per_condition[c][name] for c in conditions}
        key = frontier_key(spec, reward, num, seed, steps, readers) | {"noise": CLASS_NOISE_SCHEME}
        key |= {"classes": list(conditions), "guidance_scale": guidance_scale, "null_class": null_class}
        results[name] = {"key": key, "device": device, "average": average_frontiers(prompts), "prompts": prompts}
        write_json(out / f"frontier_prompts_{name}.json", results[name])
    write_text_atomic(out / "frontier_prompts.md", prompts_markdown(results))
    return results


def _fmt(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def diversity_keys(frontier: Mapping) -> list[str]:
    """The diversity readings of a frontier's levels, evaluator first (the primary in hrf's studies)."""
    keys = [k for k in frontier["base"] if k.startswith(("vendi/", "entropy/", "coverage/"))]
    return sorted(keys, key=lambda k: (not k.endswith("evaluator"), not k.startswith("vendi"), k))


def frontier_markdown(results: Mapping[str, Mapping]) -> str:
    """One table per reward: the base, then each level's β, ESS, KL, gold gain and diversity fractions."""
    lines = ["# The KL-optimal reward–diversity frontier", ""]
    for name, fr in results.items():
        key, base = fr["key"], fr["base"]
        keys = diversity_keys(fr)
        lines += [
            f"## {name}",
            "",
            f"Base model `{key['model']}` (weights {key['weights'][:12]}…)"
            + (f" on class {key['condition']} (guidance w = {key['guidance_scale']:g})" if "condition" in key else "")
            + f", T = {key['steps']}, η = 1, "
            f"{key['num']:,} samples (seed {key['seed']}); base mean reward {base['reward']:.4g}"
            + (f", gold {base['gold']:.4g}" if "gold" in base else "")
            + f". Largest gain reachable by reweighting with ESS ≥ {fr['min_ess']:.0f}: "
            f"**{fr['largest_reachable_gain']:+.4g}**. Diversity as a fraction of the base's.",
            "",
            "| gain | β | ESS | KL (nats) | gold gain | " + " | ".join(keys) + " |",
            "| --- " * (5 + len(keys)) + "|",
        ]
        for lv in fr["levels"]:
            if "beta" not in lv:
                lines.append(f"| {lv['gain_target']:+.4g} | {lv['why']} |" + " |" * (3 + len(keys)))
                continue
            if not lv["reached"]:
                lines.append(
                    f"| {lv['gain_target']:+.4g} | {lv['beta']:.4g} | {lv['ess']:.0f} | {lv['why']} |"
                    + " |" * (1 + len(keys))
                )
                continue
            fracs = " | ".join(_fmt(lv.get(f"frac/{k}")) for k in keys)
            lines.append(
                f"| {lv['gain']:+.4g} | {lv['beta']:.4g} | {lv['ess']:.0f} | {lv['kl']:.3f} | "
                f"{_fmt(lv.get('gold_gain'))} | {fracs} |"
            )
        lines.append("")
    return "\n".join(lines)


def prompts_markdown(results: Mapping[str, Mapping]) -> str:
    """One table per reward of the readings averaged over classes at each level, then each class's own reach."""
    lines = ["# The KL-optimal reward–diversity frontier within each class", ""]
    for name, res in results.items():
        key, avg = res["key"], res["average"]
        keys = diversity_keys(next(iter(res["prompts"].values())))
        lines += [
            f"## {name}",
            "",
            f"Base model `{key['model']}` (weights {key['weights'][:12]}…), T = {key['steps']}, η = 1, guidance "
            f"w = {key['guidance_scale']:g}, {key['num']:,} samples per class (seed {key['seed']}), classes "
            f"{', '.join(map(str, key['classes']))}. Each class is tilted on its own samples; a level's readings "
            f"are the mean over the classes whose tilt reaches it with ESS ≥ {key['min_ess']:.0f}. Diversity as "
            "a fraction of each class's base.",
            "",
            "| gain | classes reaching | mean ESS | mean KL (nats) | mean gold gain | " + " | ".join(keys) + " |",
            "| --- " * (5 + len(keys)) + "|",
        ]
        for lv in avg["levels"]:
            reach = f"{lv['prompts_reached']} of {lv['prompts']}"
            if not lv["reached"]:
                lines.append(f"| {lv['gain_target']:+.4g} | {reach} |" + " |" * (3 + len(keys)))
                continue
            fracs = " | ".join(_fmt(lv.get(f"frac/{k}")) for k in keys)
            lines.append(
                f"| {lv['gain_target']:+.4g} | {reach} | {lv['ess']:.0f} | {lv['kl']:.3f} | "
                f"{_fmt(lv.get('gold_gain'))} | {fracs} |"
            )
        lines += ["", "| class | base mean reward | largest reachable gain | its β |", "| --- | --- | --- | --- |"]
        for c, fr in res["prompts"].items():
            lines.append(
                f"| {c} | {fr['base']['reward']:.4g} | {fr['largest_reachable_gain']:+.4g} | "
                f"{fr['largest_reachable_beta']:.4g} |"
            )
        lines += ["", "Each class's own table and figure: `prompts/classC/frontier.md`, `frontier.png`.", ""]
    return "\n".join(lines)


def frontier_figure(results: Mapping[str, Mapping], path, methods: Mapping | None = None):
    """Each reward's frontier (every Vendi fraction over reward gain, reached part solid), one panel per reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (name, fr) in zip(axes[0], results.items(), strict=True):
        for key in [k for k in diversity_keys(fr) if k.startswith("vendi/")]:
            pts = [p for p in fr["curve"] if p.get(f"frac/{key}") is not None]
            on = [p for p in pts if p["reached"]]
            ax.plot([p["gain"] for p in on], [p[f"frac/{key}"] for p in on], label=f"frontier, {key}")
        ax.set_xlabel(f"reward gain ({name})")
        ax.set_ylabel("diversity / base")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def shipped_frontier(spec: str, reward: str, steps: int) -> dict | None:
    """The frontier hrf ships for a built-in model (``hrf:NAME``), reward and T, if its weights still match."""
    from hrf.evaluation.samples import weights_fingerprint
    from hrf.models import resolve_model_path

    if not spec.startswith("hrf:"):
        return None
    from pathlib import Path

    path = Path(resolve_model_path(spec)[0]) / "frontier" / f"T{steps}_{reward}.json"
    if not path.is_file():
        return None
    fr = json.loads(path.read_text())
    return fr if fr["key"]["weights"] == weights_fingerprint(spec) else None
