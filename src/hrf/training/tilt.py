"""Tilted fine-tuning: distil a base model toward its reward tilt q_β(x) ∝ p(x)·exp(β·r(x)).

The denoising loss over data drawn from q_β is minimised by a model whose marginal is q_β (to its capacity).
Base samples x_i ~ p with self-normalised weights w_i ∝ exp(β·r(x_i)) estimate that loss consistently, so
the base model is fine-tuned with its own pretraining loss (:func:`hrf.training.pretrain.pretrain`) on
batches drawn from its samples with probabilities w_i, with replacement (docs/MATH.md, "Tilted
fine-tuning"). Only reward values are needed, never their gradient; the target stays fixed because the
weights come from the base samples, not from the model being trained.

With ``twin=True`` a second run from the same model, seed and samples draws them uniformly (β = 0). Its
change of the weights is what fine-tuning on the model's own samples does without any tilt (the sampler's
and the optimiser's drift, which costs diversity); the saved model is the base plus ``scale`` times the
difference of the two runs, :func:`shifted_state` (docs/MATH.md, "The uniform twin").

The base samples are those :func:`hrf.evaluation.frontier.measure_base` caches in ``work/chunks`` (the same
cache ``hrf frontier`` writes, so a frontier's samples are reused when the model, steps and seed match).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hrf.atomic import write_json
from hrf.errors import HrfError
from hrf.evaluation.frontier import (
    FRONTIER_SEED,
    MIN_ESS,
    beta_for_gain,
    effective_sample_size,
    largest_reachable_gain,
    tilted_weights,
)

if TYPE_CHECKING:
    import torch

INFO = "tilt_info.json"


def read_base_samples(
    work: str | Path, spec: str, reward: str, num: int, seed: int, steps: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(images uint8 NHWC, rewards)`` of the first ``num`` cached base samples of ``spec`` in
    ``work/chunks``, or None unless enough chunks of this model's weights, ``seed`` and ``steps`` hold
    ``reward/REWARD`` (whichever other rewards and readers they were written with)."""
    from hrf.evaluation.frontier import CHUNK
    from hrf.evaluation.samples import weights_fingerprint

    want = {"weights": weights_fingerprint(spec), "seed": str(seed), "steps": str(steps), "chunk": str(CHUNK)}
    images, rewards = [], []
    for i in range(math.ceil(num / CHUNK)):
        path = Path(work) / "chunks" / f"chunk{i:05d}.npz"
        if not path.is_file():
            return None
        with np.load(path) as z:
            if any(f"key_{k}" not in z.files or str(z[f"key_{k}"]) != v for k, v in want.items()):
                return None
            if f"reward/{reward}" not in z.files or int(z["index"]) != i:
                return None
            images.append(z["images"])
            rewards.append(z[f"reward/{reward}"])
    return np.concatenate(images)[:num], np.concatenate(rewards)[:num].astype(np.float64)


def base_samples(
    spec: str,
    reward: str,
    num: int,
    work: str | Path,
    seed: int = FRONTIER_SEED,
    steps: int = 10,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` base samples of ``spec`` and their ``reward``: read from ``work/chunks`` when cached there
    (:func:`read_base_samples`), otherwise drawn and cached by :func:`measure_base`."""
    cached = read_base_samples(work, spec, reward, num, seed, steps)
    if cached is not None:
        return cached
    from hrf.evaluation.frontier import measure_base
    from hrf.evaluation.metrics import build_rewards

    measured = measure_base(
        spec, build_rewards([reward], device), num, seed, steps, work, device=device, progress=progress
    )
    return measured["images"], measured[f"reward/{reward}"].astype(np.float64)


def choose_beta(rewards: np.ndarray, beta: float | None = None, gain: float | None = None) -> dict:
    """The tilt of exactly one of ``beta`` or a target reward ``gain`` over the base mean (its β by
    :func:`beta_for_gain`): ``{"beta", "gain", "ess", "kl"}`` on these samples. A tilt whose effective sample
    size falls below ``MIN_ESS`` is off the base model's support and refused with one line."""
    if (beta is None) == (gain is None):
        raise HrfError("give exactly one of --beta or --gain")
    r = np.asarray(rewards, dtype=np.float64)
    if beta is None:
        assert gain is not None
        found = beta_for_gain(r, gain)
        if found is None or effective_sample_size(tilted_weights(r, found)) < MIN_ESS:
            raise HrfError(
                f"gain {gain:g} is off the base model's support (ESS < {MIN_ESS:.0f} of {len(r)} samples); "
                f"the largest reachable gain is {largest_reachable_gain(r):.4g}"
            )
        beta = found
    if not math.isfinite(beta) or beta < 0:
        raise HrfError(f"--beta {beta} must be a finite number ≥ 0")
    w = tilted_weights(r, beta)
    ess = effective_sample_size(w)
    if ess < MIN_ESS:
        raise HrfError(
            f"β = {beta:g} is off the base model's support (ESS {ess:.0f} < {MIN_ESS:.0f} of {len(r)} samples); "
            f"the largest reachable gain is {largest_reachable_gain(r):.4g}"
        )
    kl = float(np.sum(w * np.log(np.maximum(len(r) * w, 1e-300))))
    return {"beta": float(beta), "gain": float(w @ r - r.mean()), "ess": float(ess), "kl": kl}


def shifted_state(
    base: dict[str, torch.Tensor], tilted: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], scale: float
) -> dict[str, torch.Tensor]:
    """``base + scale·(tilted − reference)``, parameter by parameter (in float64, stored in the base's dtype):
    the tilted run's change of the weights with the reference run's change removed."""
    if not base.keys() == tilted.keys() == reference.keys():
        raise HrfError("the tilted run, its reference and the base model have different parameters")
    out = {}
    for k, b in base.items():
        if not b.shape == tilted[k].shape == reference[k].shape:
            raise HrfError(f"parameter {k} has different shapes in the tilted run, its reference and the base")
        out[k] = (b.double() + scale * (tilted[k].double() - reference[k].double())).to(b.dtype)
    return out


def _write_shifted(model: str, runs: list[Path], scale: float, out: Path, info: dict) -> None:
    """``out/model``: the base ``model`` shifted by ``scale``·(runs[0] − runs[1]) (runs[1] absent: the base)."""
    from safetensors.torch import load_file

    from hrf.models import load_scheduler, load_unet, replace_model

    unet = load_unet(model)
    base = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    states = [load_file(r / "model" / "diffusion_pytorch_model.safetensors") for r in runs]
    unet.load_state_dict(shifted_state(base, states[0], states[1] if len(states) > 1 else base, scale))
    replace_model(unet, load_scheduler(model), out / "model", extra=info)


def tilt(
    model: str,
    reward: str,
    out: str | Path,
    *,
    beta: float | None = None,
    gain: float | None = None,
    num: int = 20_000,
    steps_sampling: int = 10,
    sample_seed: int = FRONTIER_SEED,
    work: str | Path | None = None,
    train_steps: int = 1500,
    lr: float = 1e-4,
    batch_size: int = 64,
    warmup_steps: int = 100,
    decay_steps: int = 0,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint_minutes: float = 5.0,
    twin: bool = False,
    scale: float = 1.0,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Fine-tune ``model`` toward its tilt by ``reward`` (β given, or the β of a target ``gain``) in ``out``.

    ``num`` base samples at ``steps_sampling`` DDIM steps (noise seed ``sample_seed``) come from ``work``
    (default ``out/base``), sampled there if not cached. Training is :func:`pretrain` from ``model`` for
    ``train_steps`` steps at ``lr`` (annealed to 0 by a cosine over the last ``decay_steps``) on batches drawn
    with the tilted weights (``seed`` seeds the draws and the noise; ``ema_decay`` 0 saves the raw weights).
    Writes ``out/model`` and ``out/tilt_info.json`` (β, gain, ESS, KL, N, reward, base, steps, lr); returns
    that info.

    ``twin``: train the tilted run in ``out/tilted`` and its uniform twin (β = 0, the same seed and settings)
    in ``out/twin``, and save ``out/model`` = base + ``scale``·(tilted − twin). Without a twin, a ``scale``
    other than 1 saves base + ``scale``·(tilted − base).
    """
    import torch

    from hrf.models import load_scheduler, load_unet
    from hrf.training.pretrain import PretrainConfig, pretrain

    if num < MIN_ESS:
        raise HrfError(f"--num {num} is below {MIN_ESS:.0f}: too few base samples to reweight")
    if not 0 <= ema_decay < 1:
        raise HrfError(f"--ema-decay {ema_decay} must be in [0, 1)")
    if not (math.isfinite(scale) and scale > 0):
        raise HrfError(f"--scale {scale} must be a finite number > 0")
    unet, scheduler = load_unet(model), load_scheduler(model)  # a bad model fails before anything is sampled
    out = Path(out)
    work = out / "base" if work is None else Path(work)
    images, rewards = base_samples(model, reward, num, work, sample_seed, steps_sampling, device, progress)
    chosen = choose_beta(rewards, beta, gain)
    weights = torch.from_numpy(tilted_weights(rewards, chosen["beta"]))
    pool = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
    cfg = PretrainConfig(
        data=f"tilt of {model} by {reward}",
        size=int(unet.config.sample_size),
        steps=train_steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        decay_steps=decay_steps,
        ema_decay=ema_decay,
        prediction=str(scheduler.config.prediction_type),
        seed=seed,
        checkpoint_minutes=checkpoint_minutes,
        init=model,
    )
    del unet
    record = {
        "kind": "hrf tilt (weighted DDPM fine-tuning toward q_β ∝ p·exp(β·r))",
        "base": model,
        "reward": reward,
        "beta": chosen["beta"],
        "gain_target": gain,
        "gain": chosen["gain"],
        "ess": chosen["ess"],
        "kl": chosen["kl"],
        "num": len(rewards),
        "base_reward_mean": float(rewards.mean()),
        "steps_sampling": steps_sampling,
        "sample_seed": sample_seed,
        "train_steps": train_steps,
        "lr": lr,
        "decay_steps": decay_steps,
        "batch_size": batch_size,
        "ema_decay": ema_decay,
        "seed": seed,
        "twin": twin,
        "scale": scale,
    }
    shifted = twin or scale != 1.0
    runs = [out / "tilted", out / "twin"] if twin else [out / "tilted"] if shifted else [out]
    infos = []
    uniform = torch.from_numpy(tilted_weights(rewards, 0.0))  # the twin is the same run at β = 0
    for run, w in zip(runs, [weights, uniform], strict=False):
        infos.append(
            pretrain(
                cfg,
                run,
                resume=(resume and (run / "checkpoint.pt").is_file()) if shifted else resume,
                progress=progress,
                command=command,
                pool=pool,
                device=device,
                weights=w,
                extra_info={"tilt": record | {"twin_run": w is uniform}},
                label="uniform twin" if w is uniform else "tilt",
            )
        )
    record |= {
        "wall_seconds": round(sum(i["wall_seconds"] for i in infos), 1),
        "final_loss": infos[0]["final_loss"],
        "config": asdict(cfg),
    }
    if shifted:
        _write_shifted(model, runs, scale, out, {"tilt": record, "config": asdict(cfg)})
    write_json(out / INFO, record)
    return record
