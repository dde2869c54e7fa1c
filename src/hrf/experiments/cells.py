"""Study cells: one training config trained, evaluated and stored once; and summaries over seeds.

A cell is a JSON file holding what a (config, seed) point of a study measured. It is reused only when
its key matches: the fingerprint of the full training config, the base model's weights, and the
evaluation's size and noise seed. Changing a preset, a ``--set`` override, the budget or the base model
therefore recomputes the cell instead of reporting a stale one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from hrf.atomic import finite_or_none, write_json  # noqa: F401  (the studies write their cells with these)
from hrf.config import Config


def config_fingerprint(cfg: Config) -> str:
    """A short hash of every field of a training config."""
    text = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The evaluation noise of study cells (hrf.sampling.noise): one generator drawn in batches of 64, the scheme
# every committed cell was measured with, so that new cells stay comparable with them.
STUDY_NOISE_SCHEME: Literal["sequential"] = "sequential"
STUDY_BATCH_SIZE = 64
STUDY_NOISE = {"noise": STUDY_NOISE_SCHEME, "noise_batch_size": STUDY_BATCH_SIZE}


def cell_key(cfg: Config, num_eval: int, eval_seed: int) -> dict:
    """What a stored cell must have been computed with to be reused."""
    from hrf.evaluation.samples import weights_fingerprint  # imports torch; `hrf ablate --help` reaches this module

    return {
        "config": config_fingerprint(cfg),
        "weights": weights_fingerprint(cfg.model.path),
        "num_eval": num_eval,
        "eval_seed": eval_seed,
        **STUDY_NOISE,
    }


def stored_cell(path: Path, key: dict) -> dict | None:
    """The cell stored at ``path`` if it was computed with ``key``, else None. A cell written before the noise
    was recorded was drawn with ``STUDY_NOISE``."""
    if not Path(path).is_file():
        return None
    cell = STUDY_NOISE | json.loads(Path(path).read_text())
    return cell if all(cell.get(k) == v for k, v in key.items()) else None


def train_and_evaluate(
    cfg: Config,
    run_dir: Path,
    num_eval: int,
    eval_seed: int,
    benchmark=None,
    rewards: Sequence | None = None,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, float]:
    """Train ``cfg`` to completion in ``run_dir`` (resuming or reusing a finished run) and evaluate its final model
    on ``num_eval`` samples from the shared evaluation noise (``STUDY_NOISE``), both on ``device``
    (:func:`hrf.models.resolve_device`); returns ``{metric key: value}``.

    ``rewards`` defaults to the config's own reward with its options.
    """
    from hrf.evaluation.pipeline import evaluate_models, metric_values
    from hrf.models import resolve_device
    from hrf.training.run_dir import train_to_completion

    where = resolve_device(device)
    final = train_to_completion(cfg, run_dir, progress=progress, device=where.type)
    report = evaluate_models(
        {"model": str(final)},
        num=num_eval,
        seed=eval_seed,
        steps=cfg.sampling.num_steps,
        cache_dir=run_dir,
        rewards=[cfg.reward] if rewards is None else rewards,
        benchmark=benchmark,
        progress=progress,
        noise=STUDY_NOISE_SCHEME,
        batch_size=STUDY_BATCH_SIZE,
        device=where,
    )
    return metric_values(report, "model")


def seed_summary(values: Sequence[float]) -> dict:
    """Mean over seeds, its standard error and the half-width of its 95% Student-t interval (both ``None`` for
    one seed)."""
    from hrf.evaluation.matched import t_interval
    from hrf.evaluation.metrics import mean_sem

    v = np.asarray(values, dtype=np.float64)
    mean, half = t_interval(values)
    return {"mean": mean, "se": mean_sem(v)[1] if len(v) > 1 else None, "ci95_half": half, "values": v.tolist()}
