"""Run directories: create, reopen (resume) or reuse the directory a training run lives in.

A run directory holds ``config.toml`` (the config the run continues with), ``derived.json``,
``metrics.jsonl`` (one line per finished epoch), ``checkpoints/``, ``samples/`` and, when done, ``final/``
and (for :func:`train_to_completion`) ``summary.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from hrf.config import Config, config_diff, load_config, save_config
from hrf.errors import HrfError

if TYPE_CHECKING:
    from hrf.training.trainer import Trainer


def writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it, or raise a one-line HrfError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HrfError(f"cannot create output directory '{path}': {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise HrfError(f"output directory '{path}' is not writable")
    return path


def prepare_run(cfg: Config | None, out: str | Path, resume: bool = False, force: bool = False,
                allow_config_change: bool = False, **trainer_kwargs) -> Trainer:
    """Create (or reopen, with ``resume``) a run directory and the trainer for it.

    A directory holding another run is refused unless ``resume`` or ``force``; ``resume`` with a config
    that differs from the saved one is refused (listing the differences) unless ``allow_config_change``.
    """
    from hrf.training.checkpoint import checkpoint_dirs
    from hrf.training.trainer import Trainer

    out = Path(out)
    saved = out / "config.toml"
    if resume:
        if not saved.is_file():
            raise HrfError(f"'{out}' holds no run to resume (no config.toml); start one with --config")
        saved_cfg = load_config(saved)
        if cfg is not None and (diff := config_diff(saved_cfg, cfg)) and not allow_config_change:
            raise HrfError("the config differs from the run's saved one (" + "; ".join(diff) +
                           "); pass --allow-config-change to resume anyway")
        cfg = cfg if cfg is not None and allow_config_change else saved_cfg
        ckpts = checkpoint_dirs(out)
        if not ckpts:
            raise HrfError(f"'{out}' has no complete checkpoint to resume from; start again with --force")
    else:
        if cfg is None:
            raise HrfError("pass --config FILE (or --resume DIR)")
        if saved.exists() and not force:
            raise HrfError(f"'{out}' already holds a run; pass --resume to continue it or --force to overwrite")
        writable_dir(out)
    trainer = Trainer(cfg, out, **trainer_kwargs)
    if trainer.acc.is_main_process:
        if not resume:
            for stale in ("metrics.jsonl", "checkpoints", "final", "samples"):
                p = out / stale
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        save_config(cfg, out / "config.toml")
        (out / "derived.json").write_text(json.dumps(trainer.derived, indent=2))
    if resume:
        ckpt = checkpoint_dirs(out)[-1]
        trainer.resume_from(ckpt)
        if trainer.acc.is_main_process:
            _truncate_metrics(out / "metrics.jsonl", trainer.epoch)
    trainer.acc.wait_for_everyone()
    return trainer


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (they will be recomputed identically)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in kept))
    tmp.replace(path)


def train_to_completion(cfg: Config, out: Path, progress: bool = True, **trainer_kwargs) -> Path:
    """Train ``cfg`` in ``out`` unless a finished run of the same config is there; returns ``out/final``.

    A finished run (``final/`` + ``summary.json``) of the same config is reused; an interrupted one resumes
    from its last checkpoint; anything else in ``out`` is started over.
    """
    from hrf.training.checkpoint import checkpoint_dirs

    out = Path(out)
    saved = out / "config.toml"
    same = saved.is_file() and not config_diff(load_config(saved), cfg)
    if same and (out / "summary.json").is_file():
        return out / "final"
    resume = same and bool(checkpoint_dirs(out))
    trainer = prepare_run(None if resume else cfg, out, resume=resume, force=not resume, progress=progress,
                          **trainer_kwargs)
    trainer.train()
    if trainer.acc.is_main_process:
        summary = {**run_totals(out), "epochs": trainer.epoch, "stopped": trainer.stopped_reason}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out / "final"


def run_totals(out: Path) -> dict:
    """A run directory's totals from its ``metrics.jsonl`` (one line per finished epoch): epochs, trajectories,
    trained (trajectory, step) pairs, and the last epoch's mean reward."""
    path = Path(out) / "metrics.jsonl"
    history = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
    return {"epochs": len(history),
            "last_reward_mean": history[-1]["reward_mean"] if history else None,
            "trajectories": sum(h["trajectories"] for h in history),
            "trained_pairs": sum(h["trained_pairs"] for h in history)}
