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

from hrf.atomic import write_text_atomic
from hrf.config import (
    Config,
    config_changes,
    config_diff,
    config_to_dict,
    load_config,
    read_toml,
    save_config,
    with_overrides,
)
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


# Fields a resumed run may change without --allow-config-change: when to stop, what to write, and memory knobs
# (the batch sizes regroup the same rollouts and gradient sums, so only noise draws and rounding differ).
FREE_ON_RESUME = (
    "train.max_epochs",
    "train.target_reward",
    "train.sample_batch_size",
    "train.train_batch_size",
    "model.gradient_checkpointing",
    "output.*",
)
# Fields a checkpoint is bound to: a change could not take effect, so it is refused even with the flag.
FIXED_ON_RESUME = {
    "model.lora_rank": "the checkpoint's adapters and optimizer state have this rank",
    "schedule.kind": "the checkpoint's schedule state is of this kind",
}


def _free(key: str) -> bool:
    return key in FREE_ON_RESUME or f"{key.partition('.')[0]}.*" in FREE_ON_RESUME


def resume_changes(saved: Config, cfg: Config, allow_config_change: bool = False) -> list[str]:
    """The ``key: old -> new`` changes of resuming a run saved with ``saved`` under ``cfg``, or a one-line error.

    Changes outside :data:`FREE_ON_RESUME` need ``allow_config_change``; :data:`FIXED_ON_RESUME` never change.
    """
    changes = config_changes(saved, cfg)
    for key, (old, new) in changes.items():
        if key in FIXED_ON_RESUME:
            raise HrfError(
                f"{key} cannot change when resuming ({old!r} -> {new!r}): {FIXED_ON_RESUME[key]}; "
                "start a new run instead"
            )
    lines = {k: f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()}
    guarded = [line for k, line in lines.items() if not _free(k)]
    if guarded and not allow_config_change:
        raise HrfError(
            "the config differs from the run's saved one (" + "; ".join(guarded) + "); pass "
            f"--allow-config-change to resume anyway (free to change: {', '.join(FREE_ON_RESUME)})"
        )
    return list(lines.values())


def prepare_run(
    cfg: Config | None,
    out: str | Path,
    resume: bool = False,
    force: bool = False,
    allow_config_change: bool = False,
    overrides: list[str] | tuple = (),
    **trainer_kwargs,
) -> Trainer:
    """Create (or reopen, with ``resume``) a run directory and the trainer for it.

    A directory holding another run is refused unless ``resume`` or ``force``. A new run uses ``cfg`` (None:
    the defaults) plus ``overrides``. ``resume`` continues from the last checkpoint with ``cfg`` (None: the
    saved config) plus ``overrides``; each change from the saved config is free, needs
    ``allow_config_change`` or is refused (:func:`resume_changes`), and once accepted takes effect, the
    optimizer's settings included. Accepted changes are logged in ``config_changes.jsonl``.
    """
    from hrf.training.checkpoint import apply_optimizer_settings, checkpoint_dirs, checkpoint_epoch
    from hrf.training.trainer import Trainer

    out = Path(out)
    saved = out / "config.toml"
    if resume:
        if not saved.is_file():
            raise HrfError(f"'{out}' holds no run to resume (no config.toml); start one with --config")
        saved_cfg = load_config(saved)
        ckpts = checkpoint_dirs(out)
        if not ckpts:
            raise HrfError(f"'{out}' has no complete checkpoint to resume from; start again with --force")
        lost = sorted(set(config_to_dict(saved_cfg)) - set(read_toml(saved)))
        if lost:  # hrf writes every section: a file without some was cut short or edited by hand
            raise HrfError(f"'{saved}' lacks its [{'], ['.join(lost)}] section(s); restore it or start the run again")
        cfg = with_overrides(cfg if cfg is not None else saved_cfg, list(overrides))
        changes = resume_changes(saved_cfg, cfg, allow_config_change)
        logged = {entry["epoch"] for entry in read_metrics(out / "metrics.jsonl")}
        done = checkpoint_epoch(ckpts[-1])
        if not set(range(1, done + 1)) <= logged:  # each epoch's line is written before its checkpoint
            raise HrfError(
                f"'{out / 'metrics.jsonl'}' lacks epochs the last checkpoint ({done}) has done; restore it or "
                "start the run again with --force"
            )
    else:
        if overrides:
            cfg = with_overrides(cfg if cfg is not None else Config(), list(overrides))
        elif cfg is None:
            raise HrfError("pass --config FILE (or --resume DIR)")
        if saved.exists() and not force:
            raise HrfError(f"'{out}' already holds a run; pass --resume to continue it or --force to overwrite")
        writable_dir(out)
    trainer = Trainer(cfg, out, **trainer_kwargs)
    if resume:
        try:
            trainer.resume_from(ckpts[-1])
        except (RuntimeError, ValueError, KeyError) as exc:  # state of another model or optimizer shape
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HrfError(
                f"checkpoint '{ckpts[-1]}' does not fit the model of model.path='{cfg.model.path}' ({first})"
            ) from exc
        t = cfg.train
        apply_optimizer_settings(trainer.optimizer, trainer.lr_sched, t.lr, t.adam_betas, t.adam_eps, t.weight_decay)
    if trainer.acc.is_main_process:  # the directory changes only once the trainer and checkpoint have loaded
        if resume:
            _truncate_metrics(out / "metrics.jsonl", trainer.epoch)
            if changes:
                with open(out / "config_changes.jsonl", "a") as f:
                    f.write(json.dumps({"resumed_at_epoch": trainer.epoch, "changes": changes}) + "\n")
        else:
            for stale in ("metrics.jsonl", "config_changes.jsonl", "checkpoints", "final", "samples"):
                p = out / stale
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        save_config(cfg, out / "config.toml")
        write_text_atomic(out / "derived.json", json.dumps(trainer.derived, indent=2))
    trainer.acc.wait_for_everyone()
    return trainer


def read_metrics(path: Path) -> list[dict]:
    """The epochs of a ``metrics.jsonl`` (none if it is missing), or a one-line HrfError naming the file.

    A last line that does not parse is dropped: a kill mid-append leaves one, and its epoch has no checkpoint
    yet. Any other unreadable line means the file is not the run's log.
    """
    if not path.is_file():
        return []
    try:
        lines = [ln for ln in path.read_bytes().decode("utf-8").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise HrfError(
            f"'{path}' is not UTF-8 text (a binary file?); it should be the run's log, one JSON line per epoch"
        ) from None
    epochs = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), int):
                raise ValueError("no epoch")
        except ValueError:
            if number == len(lines):
                break
            raise HrfError(
                f"'{path}' line {number} is not an epoch's JSON record; restore the file or start the run again"
            ) from None
        epochs.append(entry)
    return epochs


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (they will be recomputed identically)."""
    if path.is_file():
        kept = [entry for entry in read_metrics(path) if entry["epoch"] <= epochs_done]
        write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in kept))


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
    trainer = prepare_run(
        None if resume else cfg, out, resume=resume, force=not resume, progress=progress, **trainer_kwargs
    )
    trainer.train()
    if trainer.acc.is_main_process:
        summary = {
            **run_totals(out),
            "epochs": trainer.epoch,
            "stopped": trainer.stopped_reason,
            "device": str(trainer.acc.device),
        }
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return out / "final"


def run_totals(out: Path) -> dict:
    """A run directory's totals from its ``metrics.jsonl`` (one line per finished epoch): epochs, trajectories,
    trained (trajectory, step) pairs, and the last epoch's mean reward."""
    history = read_metrics(Path(out) / "metrics.jsonl")
    return {
        "epochs": len(history),
        "last_reward_mean": history[-1]["reward_mean"] if history else None,
        "trajectories": sum(h["trajectories"] for h in history),
        "trained_pairs": sum(h["trained_pairs"] for h in history),
    }
