"""Atomic checkpoints: a diffusers model directory plus the trainer state, renamed into place when complete.

Layout: ``RUN/checkpoints/epoch_000012/{model/, state.pt}``. A checkpoint is written under a temporary
name and renamed in one ``os.replace``, so a crash mid-write leaves the previous checkpoint intact; a
half-written temporary directory is ignored and cleaned up on the next write.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from hrf.errors import HrfError
from hrf.models import save_model

PREFIX = "epoch_"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save_checkpoint(run_dir: Path, epoch: int, unet, train_scheduler, state: dict, keep: int, save=save_model) -> Path:
    """Write checkpoint ``epoch`` (the number of completed epochs) atomically, then prune to ``keep``.

    ``save(unet, scheduler, directory)`` writes the model (a latent pipeline's trainer saves only its adapters).
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{PREFIX}{epoch:06d}-{os.getpid()}"
    save(unet, train_scheduler, tmp / "model")
    torch.save(state, tmp / "state.pt")
    final = root / f"{PREFIX}{epoch:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint_state(path: Path) -> dict:
    """The trainer state of a checkpoint, loaded with ``weights_only=True`` (no code execution)."""
    try:
        return torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HrfError(
            f"checkpoint '{path}' is unreadable ({type(exc).__name__}); delete it to resume from the one before"
        ) from exc


def apply_optimizer_settings(optimizer, lr_scheduler, lr: float, betas, eps: float, weight_decay: float) -> None:
    """Make a loaded AdamW and its LambdaLR use these settings, not the ones their state dicts brought back.

    Loading an optimizer's state restores its param groups' lr, betas, eps and weight decay, and loading the
    scheduler restores its base learning rates: a resumed run with a changed ``train.lr`` would silently keep
    the old one. The current lr is recomputed as the scheduler does, ``base_lr · λ(steps taken)``, so an
    unchanged config gives back exactly the saved values.
    """
    sched = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate wraps the scheduler
    sched.base_lrs = [lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, sched.lr_lambdas, strict=True):
        group.update(
            initial_lr=lr, lr=lr * factor(sched.last_epoch), betas=tuple(betas), eps=eps, weight_decay=weight_decay
        )
    sched._last_lr = [group["lr"] for group in optimizer.param_groups]
