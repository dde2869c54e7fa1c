"""The one device rule of every command: the device asked for, else CUDA when there is one, else the CPU."""

from __future__ import annotations

import torch

from hrf.errors import HrfError


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``requested`` (e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``), or for ``None`` /
    ``"auto"`` CUDA when available, else the CPU. A CUDA device this machine lacks is one-line error."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as exc:
        raise HrfError(f"unknown device '{requested}' (expected e.g. cpu, cuda, cuda:1 or auto)") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise HrfError(f"device '{requested}' asked for, but torch sees no CUDA device here; pass --device cpu")
        if device.index is not None and device.index >= count:
            raise HrfError(f"device '{requested}' asked for, but torch sees {count} CUDA device(s)")
    return device
