"""Run a config to completion in a directory, resuming or skipping what is already done."""

from __future__ import annotations

import json
from pathlib import Path

from hrf.config import Config, config_diff, load_config

# The presets ship inside the package (package data), so every kind of install finds them by name.
PRESETS = Path(__file__).resolve().parents[1] / "configs"


def preset_names() -> list[str]:
    """Every shipped preset's name, e.g. ``faces32/compressibility-hrf`` (its path under ``configs/``)."""
    return sorted(p.relative_to(PRESETS).with_suffix("").as_posix() for p in PRESETS.rglob("*.toml"))


def preset_path(name: str) -> Path:
    """The TOML file of the shipped preset ``name``, e.g. ``faces32/compressibility-hrf`` (``.toml`` optional)."""
    from hrf.errors import HrfError

    path = PRESETS / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        raise HrfError(f"no preset named '{name}'; presets: {', '.join(preset_names())}")
    return path


def config_source(spec: str | Path) -> Path:
    """A ``--config`` value as a file: an existing TOML file path, else the shipped preset of that name."""
    path = Path(spec)
    if path.is_file() or (path.suffix == ".toml" and not (PRESETS / path).is_file()):
        return path  # a missing *.toml that names no preset: load_config reports the missing file
    return preset_path(str(spec))


def train_to_completion(cfg: Config, out: Path, progress: bool = True, **trainer_kwargs) -> Path:
    """Train ``cfg`` in ``out`` unless a finished run of the same config is there; returns ``out/final``.

    A finished run (``final/`` + ``summary.json``) of the same config is reused; an interrupted one resumes
    from its last checkpoint; anything else in ``out`` is started over.
    """
    from hrf.training.checkpoint import checkpoint_dirs
    from hrf.training.trainer import prepare_run

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
