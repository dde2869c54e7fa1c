"""Plain DDPM pretraining (ε- or v-prediction) of a small UNet2DModel on built-in or the user's images, resumable.

Every step draws a fresh batch, its noise and its timesteps from generators seeded by ``(seed, step)``,
so a run that stops after a checkpoint and resumes follows exactly the same path as one that never
stopped. The checkpoint (``checkpoint.pt``: model, EMA, optimizer, step, recent losses) is replaced
atomically; the exponential moving average of the weights is what gets saved as the model (``model/``),
since with few sampling steps the raw weights give visibly noisier images.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from hrf.atomic import atomic_path
from hrf.data.faces import VERSION as FACES_VERSION
from hrf.data.images import fingerprint, load_images, resize_square
from hrf.errors import HrfError

CHECKPOINT = "checkpoint.pt"
RUN_CONFIG = "pretrain_config.json"
MODEL_DIR = "model"
# Settings that may change on --resume (everything else must match the run being continued).
RESUMABLE_CHANGES = ("steps", "checkpoint_minutes", "decay_steps")


@dataclass
class PretrainConfig:
    # A built-in set (faces, digits, lfw, mnist) or the absolute path of a folder of images or a .npz file.
    data: str = "faces"
    size: int = 32  # image side; faces are drawn at 32, every data set is resized to it
    steps: int = 10_000
    preset: str = "tiny"
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    # Cosine anneal of the lr to 0 over the last N steps (0: constant): at a fixed budget the annealed
    # weights sample visibly cleaner than a constant lr's, even behind the EMA.
    decay_steps: int = 0
    ema_decay: float = 0.999
    # What the UNet predicts: "epsilon" (as google/ddpm-celebahq-256) or "v_prediction". With ε, x̂0 at the
    # noisiest steps is ε's error times 1/sqrt(ᾱ) ≈ 100, and a small model's samples drift in colour.
    prediction: str = "epsilon"
    seed: int = 0
    checkpoint_minutes: float = 5.0
    # Faces only: a class-conditional model of these factors (comma-separated, e.g. "hair_color,background"),
    # one class per combination of their values plus a null class for classifier-free guidance ("" = none).
    condition: str = ""
    # The share of a batch trained with the null class, so the same network also predicts unconditionally.
    cond_dropout: float = 0.1
    # Continue from this model (``hrf:NAME`` or a diffusers directory) instead of fresh weights ("" = fresh):
    # its UNet and noise schedule are kept, so ``size`` and ``prediction`` must match it; ``preset`` is unused.
    init: str = ""


PREDICTIONS = ("epsilon", "v_prediction")


def ddpm_train_scheduler(prediction: str = "epsilon") -> DDPMScheduler:
    """The training noise schedule of google/ddpm-celebahq-256 (linear betas, 1000 steps, clip_sample)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        clip_sample=True,
        prediction_type=prediction,
    )


def training_target(
    scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str
) -> torch.Tensor:
    """What the UNet learns to output: ε, or v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x0 (Salimans & Ho, 2022)."""
    return noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**63)


def _digits() -> torch.Tensor:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise HrfError(
            "--data digits needs scikit-learn; run: pip install 'hrf[real]' (or pip install scikit-learn)"
        ) from None
    pixels = load_digits().images.astype(np.float32) / 16.0  # 0..16 grey levels
    return torch.from_numpy(pixels)[:, None] * 2.0 - 1.0


def _lfw(size: int) -> torch.Tensor:
    from hrf.data.lfw import lfw_faces

    return lfw_faces(size)


def _mnist(size: int) -> torch.Tensor:
    from hrf.data.mnist import mnist_digits

    return mnist_digits(size=size)


# Fixed 1-channel image sets, sampled uniformly with replacement: name -> loader(size) -> (N, 1, size, size).
POOLS: dict[str, Callable[[int], torch.Tensor]] = {
    "digits": lambda size: resize_square(_digits(), size),
    "lfw": _lfw,
    "mnist": _mnist,
}
DATASETS = ("faces", *POOLS)


def data_pool(data: str, size: int) -> torch.Tensor | None:
    """The fixed image set ``data`` names, (N, C, size, size): float in [-1, 1] for a built-in set, uint8 for a
    folder or .npz; None for the procedural faces, drawn afresh for every batch."""
    if data == "faces":
        return None
    if data in POOLS:
        return POOLS[data](size)
    if not Path(data).exists():
        raise HrfError(f"--data '{data}' is none of {', '.join(DATASETS)}, nor a folder of images or a .npz file")
    return load_images(data, size)


def make_batch_fn(
    data: str, size: int, batch_size: int, pool: torch.Tensor | None = None, weights: torch.Tensor | None = None
):
    """``fn(step_seed) -> (B, C, size, size)`` float batch in [-1, 1] of ``data`` (``pool``: its loaded images).

    ``weights`` (one non-negative number per pool image) draws image i with probability proportional to
    ``weights[i]``, with replacement; uniform weights take the unweighted draw, index for index.
    """
    if data == "faces":
        from hrf.data.faces import faces_tensor

        return lambda s: resize_square(faces_tensor(batch_size, s)[0], size)
    images = data_pool(data, size) if pool is None else pool
    assert images is not None  # only the faces are drawn rather than pooled
    draw = pool_indices(len(images), batch_size, weights)

    def pool_batch(s: int) -> torch.Tensor:
        batch = images[draw(s)]
        # A user's images stay uint8 in memory (4× smaller) until they are drawn.
        return batch.float() / 127.5 - 1.0 if batch.dtype == torch.uint8 else batch

    return pool_batch


def pool_indices(n: int, batch_size: int, weights: torch.Tensor | None = None) -> Callable[[int], torch.Tensor]:
    """``fn(step_seed) -> (batch_size,)`` indices into a pool of ``n`` images, drawn with replacement from a
    generator seeded ``step_seed``: uniformly, or with probabilities proportional to ``weights``."""
    if weights is not None:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (n,):
            raise HrfError(f"the pool has {n} images but {tuple(w.shape)} weights")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise HrfError("pool weights must be finite, non-negative and not all zero")
        if bool((w == w[0]).all()):
            weights = None  # uniform: the unweighted draw, so a flat tilt is exactly pretraining on the pool
    if weights is None:
        return lambda s: torch.randint(n, (batch_size,), generator=torch.Generator().manual_seed(s))
    return lambda s: torch.multinomial(w, batch_size, replacement=True, generator=torch.Generator().manual_seed(s))


def condition_info(condition: str) -> dict:
    """What a conditional model's ``hrf_info.json`` says about its classes (empty for an unconditional one)."""
    if not condition:
        return {}
    from hrf.data.conditional import class_name, num_classes, parse_condition

    factors = parse_condition(condition)
    n = num_classes(factors)
    names = [class_name(c, factors) for c in range(n)]
    return {"condition": {"factors": list(factors), "classes": n, "null_class": n, "names": names}}


def labelled_faces_batch_fn(size: int, batch_size: int, factors: tuple[str, ...]):
    """``fn(step_seed) -> (images, class ids)``: procedural faces and their classes under ``factors``."""
    from hrf.data.conditional import class_labels
    from hrf.data.faces import faces_tensor

    def batch(s: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = faces_tensor(batch_size, s)
        return resize_square(images, size), torch.from_numpy(class_labels(labels, factors))

    return batch


def data_record(data: str, pool: torch.Tensor | None, weights: torch.Tensor | None = None) -> dict:
    """What hrf_info.json and the checkpoint record about the data: a user's images by count and hash (and
    the hash of their draw weights, if weighted)."""
    if data == "faces":
        return {"faces_version": FACES_VERSION}
    if data in POOLS or pool is None:
        return {}
    extra = {} if weights is None else {"data_weights_sha256": fingerprint(torch.as_tensor(weights))}
    return {"data_images": len(pool), "data_sha256": fingerprint(pool), **extra}


def _lr_at(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up, then constant, then (the last ``decay_steps``) a cosine down to 0."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    decay_from = cfg.steps - cfg.decay_steps
    if cfg.decay_steps > 0 and step >= decay_from:
        lr *= 0.5 * (1.0 + math.cos(math.pi * (step - decay_from) / cfg.decay_steps))
    return lr


def _check_out_dir(out: Path, cfg: PretrainConfig, resume: bool) -> dict | None:
    """Return the saved checkpoint when resuming; refuse to overwrite another run otherwise."""
    ckpt_path, cfg_path = out / CHECKPOINT, out / RUN_CONFIG
    if not resume:
        if ckpt_path.exists() or cfg_path.exists() or (out / MODEL_DIR).exists():
            raise HrfError(
                f"'{out}' already holds a pretraining run; pass --resume to continue it or choose another --out"
            )
        return None
    if not ckpt_path.exists():
        return None
    saved = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    changed = [k for k, v in asdict(cfg).items() if k not in RESUMABLE_CHANGES and k in saved and saved[k] != v]
    if changed:
        diff = ", ".join(f"{k}={saved[k]!r} (now {getattr(cfg, k)!r})" for k in changed)
        raise HrfError(f"--resume with different settings than the run in '{out}': {diff}; use the same values")
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_model(model, ema: EMAModel, scheduler, out: Path, info: dict) -> Path:
    """Write the EMA weights to ``out/model`` via a temporary directory, so a reader never sees half of it."""
    from hrf.models import replace_model

    averaged = copy.deepcopy(model)
    ema.copy_to(averaged.parameters())
    return replace_model(averaged, scheduler, out / MODEL_DIR, extra=info)


def _ema_state(saved: dict, ema: EMAModel, model, step: int) -> dict:
    """The EMA part of a checkpoint; those written before diffusers' EMAModel held the averaged UNet's state."""
    if "shadow_params" in saved:
        return saved
    return {
        **ema.state_dict(),
        "optimization_step": step,
        "shadow_params": [saved[name] for name, _ in model.named_parameters()],
    }


def check_config(cfg: PretrainConfig) -> None:
    """Refuse settings that cannot train, one line each (the data is checked when it is loaded)."""
    from hrf.models.configs import UNET_SIZES

    if cfg.preset not in UNET_SIZES:
        raise HrfError(f"unknown preset '{cfg.preset}'; choose one of: {', '.join(UNET_SIZES)}")
    if cfg.prediction not in PREDICTIONS:
        raise HrfError(f"unknown prediction '{cfg.prediction}'; choose one of: {', '.join(PREDICTIONS)}")
    if cfg.size < 8 or cfg.size % 4:
        raise HrfError(f"--size {cfg.size} must be a multiple of 4 and at least 8")
    if cfg.condition:
        from hrf.data.conditional import parse_condition

        if cfg.data != "faces":
            raise HrfError("--condition needs --data faces (the only data with factor labels)")
        parse_condition(cfg.condition)
    if not 0 <= cfg.cond_dropout < 1:
        raise HrfError(f"--cond-dropout {cfg.cond_dropout} must be in [0, 1)")
    if cfg.init and cfg.condition:
        raise HrfError("--init continues an unconditional model; it cannot be combined with --condition")


def init_model(cfg: PretrainConfig, channels: int):
    """``(unet, training scheduler)`` of ``cfg.init``, checked against the run's size, channels and target."""
    from hrf.models import load_scheduler, load_unet

    unet, scheduler = load_unet(cfg.init), load_scheduler(cfg.init)
    got = (unet.config.sample_size, unet.config.in_channels, scheduler.config.prediction_type)
    want = (cfg.size, channels, cfg.prediction)
    if got != want:
        raise HrfError(f"model '{cfg.init}' is (size, channels, prediction) = {got}, but the run asks for {want}")
    if unet.config.num_class_embeds:
        raise HrfError(f"model '{cfg.init}' is class-conditional; only unconditional models can be continued")
    return unet, scheduler


def pretrain(
    cfg: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    pool: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    weights: torch.Tensor | None = None,
    extra_info: dict | None = None,
    label: str = "pretrain",
) -> dict:
    """Train (or continue) a DDPM in ``out`` on ``device``; returns the info written beside the final EMA model.

    Weights, data and noise are drawn on the CPU and moved, so a seed starts the same run on every device.

    ``pool`` is ``data_pool(cfg.data, cfg.size)`` when the caller has loaded it already; ``weights`` (one per
    pool image) draws each batch's images with those probabilities instead of uniformly (see
    :func:`pool_indices`). ``cfg.init`` starts from an existing model instead of fresh weights.
    ``extra_info`` is added to the model's ``hrf_info.json``; ``label`` names the progress bar. Files in ``out``:
    ``pretrain_config.json``, ``checkpoint.pt`` (every ``checkpoint_minutes`` and at the end), ``model/``
    (the EMA UNet + scheduler, a diffusers directory, refreshed at every checkpoint), ``losses.json`` (mean
    loss per 100 steps). Bad settings or data raise before anything is written.
    """
    from tqdm.auto import tqdm

    from hrf.models import unet_from_preset

    check_config(cfg)
    pool = data_pool(cfg.data, cfg.size) if pool is None else pool
    if weights is not None and pool is None:
        raise HrfError("weights need a pool of images to draw from")
    channels = 3 if pool is None else pool.shape[1]
    initial = init_model(cfg, channels) if cfg.init else None  # a bad model fails before anything is written
    record = data_record(cfg.data, pool, weights)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = _check_out_dir(out, cfg, resume)
    if state is not None and state.get("data", record) != record:
        raise HrfError(
            f"--resume: the images in '{cfg.data}' changed since the run in '{out}' started "
            f"({state['data']} then, {record} now)"
        )
    (out / RUN_CONFIG).write_text(json.dumps(asdict(cfg), indent=2))

    torch.manual_seed(cfg.seed)
    cond = condition_info(cfg.condition).get("condition")
    extra = {"num_class_embeds": cond["classes"] + 1} if cond else {}
    if initial is None:
        model = unet_from_preset(cfg.preset, cfg.size, channels, **extra).to(device)
        scheduler = ddpm_train_scheduler(cfg.prediction)
    else:
        model, scheduler = initial[0].to(device), initial[1]
    # diffusers' EMA: decay min(ema_decay, (1 + n) / (10 + n)) after n updates, so early weights fade fast.
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, losses, wall, history = 0, [], 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(_ema_state(state["ema"], ema, model, int(state["step"])))
        ema.to(device=device)  # the checkpoint is read onto the CPU
        opt.load_state_dict(state["optimizer"])
        step, losses, wall = int(state["step"]), list(state["losses"]), float(state["wall_seconds"])
        history = list(state.get("history", []))  # absent in checkpoints written before it was kept
    # Every invocation of the run, so a model continued over several sessions says how it was made.
    history.append({"command": command or " ".join(sys.argv), "from_step": step, "to_step": cfg.steps})
    if cond:
        labelled = labelled_faces_batch_fn(cfg.size, cfg.batch_size, tuple(cond["factors"]))
    else:
        batch_fn = make_batch_fn(cfg.data, cfg.size, cfg.batch_size, pool, weights)
    model.train()

    def checkpoint() -> None:
        _atomic_save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "losses": losses,
                "wall_seconds": wall,
                "history": history,
                "data": record,
            },
            out / CHECKPOINT,
        )
        (out / "losses.json").write_text(json.dumps(_loss_curve(losses)))

    def info() -> dict:
        return {
            **_info(cfg, step, losses, wall, history),
            **record,
            **condition_info(cfg.condition),
            "device": str(device),
            **(extra_info or {}),
        }

    started = last_ckpt = time.monotonic()
    wall0 = wall
    bar = tqdm(total=cfg.steps, initial=step, desc=label, disable=not progress, unit="step")
    while step < cfg.steps:
        s = _step_seed(cfg.seed, step)
        x0, classes = labelled(s) if cond else (batch_fn(s), None)
        gen = torch.Generator().manual_seed(s)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        if cond is not None and classes is not None:
            # drawn after t and the noise, so those streams match an unconditional run's
            dropped = torch.rand(len(classes), generator=gen) < cfg.cond_dropout
            classes = torch.where(dropped, cond["null_class"], classes).to(device)
        t, noise, x0 = t.to(device), noise.to(device), x0.to(device)
        prediction = model(scheduler.add_noise(x0, noise, t), t, class_labels=classes).sample
        loss = F.mse_loss(prediction, training_target(scheduler, x0, noise, t, cfg.prediction))
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.step(model.parameters())
        step += 1
        losses.append(float(loss.detach()))
        wall = wall0 + time.monotonic() - started
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if step < cfg.steps and time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60:
            checkpoint()
            _write_model(model, ema, scheduler, out, info())
            last_ckpt = time.monotonic()
    bar.close()
    checkpoint()
    final = info()
    _write_model(model, ema, scheduler, out, final)
    return final


def _loss_curve(losses: list[float], every: int = 100) -> list[dict]:
    return [
        {"step": i + min(every, len(losses) - i), "loss": float(np.mean(losses[i : i + every]))}
        for i in range(0, len(losses), every)
    ]


def _info(cfg: PretrainConfig, step: int, losses: list[float], wall: float, history: list[dict]) -> dict:
    recent = losses[-200:]
    return {
        "kind": f"hrf pretrain (DDPM, {cfg.prediction} target, EMA weights)",
        "command": history[-1]["command"],
        "commands": history,
        "config": asdict(cfg),
        "steps_done": step,
        "final_loss": float(np.mean(recent)) if recent else math.nan,
        "wall_seconds": round(wall, 1),
        "torch_threads": torch.get_num_threads(),
    }
