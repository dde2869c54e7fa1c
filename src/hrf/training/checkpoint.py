"""Atomic checkpoints: a diffusers model directory plus the trainer state, renamed into place when complete.

Layout: ``RUN/checkpoints/epoch_000012/{model/, state.pt}``. A checkpoint is written under a temporary
name and renamed in one ``os.replace``; only then are checkpoints beyond ``keep`` pruned, so a kill at any
point leaves at least one complete checkpoint (with ``keep = 1`` too). A half-written temporary directory
is ignored and cleaned up on the next write. Rewriting an epoch that already has a checkpoint first renames
the old one aside (``.old-epoch_…``), which still counts as that epoch's checkpoint until the new one is in
place.

Not accelerate's ``save_state`` with ``ProjectConfiguration(total_limit=…)``: it deletes the oldest
checkpoint *before* writing the new one, in place, so with ``total_limit = 1`` a kill mid-write leaves
none; and it saves raw state dicts, where ours hold a diffusers model directory every command accepts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from hrf.errors import HrfError
from hrf.models import save_model

PREFIX = "epoch_"
ASIDE = ".old-"  # an epoch's previous checkpoint while its rewrite is renamed into place


def checkpoint_epoch(path: Path) -> int:
    """The epoch a checkpoint directory holds, from its name (``epoch_000012``, or its aside copy)."""
    return int(path.name.removeprefix(ASIDE).removeprefix(PREFIX).split("-")[0])


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first: one per epoch, an aside copy only where the epoch has no other."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    complete = [p for p in root.iterdir() if (p / "state.pt").is_file()]
    named = {checkpoint_epoch(p): p for p in complete if p.name.startswith(PREFIX)}
    aside = {checkpoint_epoch(p): p for p in complete if p.name.startswith(ASIDE + PREFIX)}
    found = {**aside, **named}
    return [found[epoch] for epoch in sorted(found)]


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
    aside = root / f"{ASIDE}{final.name}-{os.getpid()}"
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    for old in root.glob(f"{ASIDE}*"):  # superseded: this write's aside, or one a kill left behind
        if (root / old.name.removeprefix(ASIDE).split("-")[0] / "state.pt").is_file():
            shutil.rmtree(old, ignore_errors=True)
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
