"""``output.trackers``: experiment trackers (TensorBoard, W&B, MLflow, ...) through accelerate's tracking API."""

from __future__ import annotations

from pathlib import Path

from hrf.errors import HrfError

PROJECT = "hrf"  # the project name trackers file runs under (W&B project, TensorBoard sub-directory)


def tracker_kwargs(names: list[str], run_dir: Path) -> dict:
    """``Accelerator`` arguments that log to ``names`` (each known to accelerate and installed), logs under
    ``run_dir/trackers``; no arguments for no trackers. Raises a one-line HrfError otherwise."""
    if not names:
        return {}
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers
    from accelerate.utils import ProjectConfiguration

    installed = {str(t.value) for t in get_available_trackers()}
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise HrfError(f"output.trackers: unknown tracker '{name}'; choose from {', '.join(LOGGER_TYPE_TO_CLASS)}")
        if name not in installed:
            raise HrfError(f"output.trackers: the '{name}' tracker is not installed; pip install {name}")
    return {
        "log_with": list(names),
        "project_config": ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "trackers")),
    }


def scalars(metrics: dict) -> dict[str, float]:
    """The numbers of one epoch's metrics that trackers plot (the epoch itself is the step)."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"
    }
