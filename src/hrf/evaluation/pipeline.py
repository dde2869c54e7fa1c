"""One evaluation pipeline: sample every model from the same noise (cached), then compute every metric.

``hrf evaluate``, the demo, the window ablation (through ``experiments/cells.py``) and the Pareto study call
:func:`evaluate_models`. The collapse study (``benchmarks/collapse.py``) does not: it measures each of its
many checkpoints with a leaner set (rewards, Vendi scores, factor entropy and coverage; its
``checkpoint_metrics``) through the same sample cache, because its committed cells were measured that way
and new cells must stay comparable with them. A model is any spec :func:`hrf.models.load_pipeline_parts`
opens: ``hrf:NAME``, a diffusers directory (e.g. a run's ``final/`` or ``checkpoints/epoch_N/model``) or a hub id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hrf.errors import HrfError
from hrf.evaluation.embedders import Embedder
from hrf.evaluation.metrics import evaluate_images
from hrf.evaluation.samples import sample_or_load, unique_slug
from hrf.sampling.noise import DEFAULT_NOISE, NoiseScheme, noise_key

if TYPE_CHECKING:
    from hrf.benchmarks import Benchmark


def sample_models(
    models: Mapping[str, str],
    cache_dir: Path,
    num: int,
    seed: int,
    steps: int,
    batch_size: int = 64,
    progress: bool = False,
    *,
    noise: NoiseScheme = DEFAULT_NOISE,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """``num`` images of every model ``{name: spec}`` from the noise of ``seed`` (scheme ``noise``) on
    ``device``, each cached as ``cache_dir/samples_NAME.npz``; models of different image shapes are refused."""
    paths = sample_paths(models, cache_dir)
    images = {}
    for name, spec in models.items():
        images[name] = sample_or_load(
            spec, paths[name], num, seed, steps, batch_size, progress, noise=noise, device=device
        )
    shapes = {tuple(x.shape[1:]) for x in images.values()}
    if len(shapes) > 1:
        raise HrfError(f"the models make images of different shapes {sorted(shapes)}; compare models of one size")
    return images


def sample_paths(models: Mapping[str, str], cache_dir: Path) -> dict[str, Path]:
    """The sample cache of every model of one :func:`sample_models` call (made: ``cache_dir``), so that the
    samples can be drawn elsewhere first (the demo draws them in parallel processes)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    return {name: cache_dir / f"samples_{unique_slug(name, taken)}.npz" for name in models}


def evaluate_models(
    models: Mapping[str, str],
    *,
    num: int,
    seed: int,
    steps: int,
    cache_dir: Path,
    rewards: Sequence | Mapping = (),
    embedders: Sequence[str | Embedder] = ("pixels",),
    benchmark: Benchmark | None = None,
    reference: torch.Tensor | None = None,
    n_boot: int = 0,
    is_splits: int = 1,
    batch_size: int = 64,
    progress: bool = False,
    return_arrays: bool = False,
    noise: NoiseScheme = DEFAULT_NOISE,
    device: torch.device | str | None = None,
) -> dict:
    """Sample ``num`` images of every model ``{name: spec}`` from the same noise (seed ``seed``, scheme ``noise``,
    ``steps`` DDIM steps, eta = 1; cached in ``cache_dir``) and compute their metrics.

    Models, embedders and the rewards that take a ``device`` option run on ``device``
    (:func:`hrf.models.resolve_device`: CUDA when there is one); ``report["config"]`` records it and the noise.

    ``rewards`` are registered names, reward configs (``.name`` + ``.options``) or ``{name: fn}``;
    ``benchmark`` adds its classifier's factor metrics; ``reference`` adds distances to real images.
    Returns the report of :func:`hrf.evaluation.metrics.evaluate_images`: ``report["models"][name][key]["value"]``
    is one metric of one model (see :func:`metric_values`); with ``return_arrays`` it also holds the
    per-sample rewards and the features, and ``report["images"]`` the samples.
    """
    from hrf.models import resolve_device

    where = resolve_device(device)
    images = sample_models(models, cache_dir, num, seed, steps, batch_size, progress, noise=noise, device=where)
    if reference is not None and tuple(reference.shape[1:]) != tuple(next(iter(images.values())).shape[1:]):
        raise HrfError(
            f"reference images have shape {tuple(reference.shape[1:])}, the models' "
            f"{tuple(next(iter(images.values())).shape[1:])}"
        )
    report = evaluate_images(
        images,
        rewards=rewards,
        embedders=embedders,
        reference=reference,
        benchmark=benchmark,
        n_boot=n_boot,
        is_splits=is_splits,
        seed=seed,
        device=where,
        progress=progress,
        return_arrays=return_arrays,
    )
    report["config"] |= noise_key(noise, batch_size)
    return report | ({"images": images} if return_arrays else {})


def metric_values(report: dict, name: str) -> dict[str, float]:
    """``{metric key: value}`` of one model of a report (errors and intervals dropped)."""
    return {k: v["value"] for k, v in report["models"][name].items()}
