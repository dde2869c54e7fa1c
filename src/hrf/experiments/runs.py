"""Where the presets live, found by name (run directories are :mod:`hrf.training.run_dir`)."""

from __future__ import annotations

from pathlib import Path

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
