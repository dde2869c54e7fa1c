"""Atomic file writes: readers and resumed runs see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success rename it over ``path`` in one step.

    The temporary name carries the process id, because two processes (study shards, accelerate ranks)
    may write the same file, and ends in ``.tmp``, so globs for ``*.json`` or ``*.npz`` never pick it
    up mid-write (``np.savez`` appends ``.npz`` to a path without it: give it an open file). If the
    block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def finite_or_none(obj):
    """NaN/inf → None, so the files are strict JSON (e.g. a fraction of a base value of 0 is undefined)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json(path: Path, data: dict) -> None:
    """Write strict JSON atomically (a temporary file renamed over ``path``)."""
    write_text_atomic(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False))
