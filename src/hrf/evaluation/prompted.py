"""Per-prompt evaluation of conditional models: every model draws the same noise for a prompt; metrics per
prompt and averaged over prompts; one grid per prompt (a row per model).

A model is a class-conditional diffusers directory (prompts are class ids) or a latent text-to-image
pipeline, or an hrf LoRA directory on one (prompts are texts). The noise of prompt ``i`` is seeded by
``(seed, i)`` alone, so two models differ on a prompt only by what they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hrf.evaluation.metrics import evaluate_images

if TYPE_CHECKING:
    from hrf.benchmarks import Benchmark


def prompt_generator(seed: int, prompt: int) -> torch.Generator:
    """The noise generator of prompt index ``prompt``: the same for every model."""
    state = np.random.SeedSequence([seed, prompt]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def condition_of(spec: str) -> dict | None:
    """The ``condition`` record of a model made by ``hrf pretrain --condition`` (its ``hrf_info.json``), or None."""
    import json

    from hrf.models import resolve_model_path
    from hrf.models.latent import is_latent_pipeline

    if is_latent_pipeline(spec):
        return None
    path, subfolder = resolve_model_path(spec)
    info = Path(path) / (subfolder or "") / "hrf_info.json"
    return json.loads(info.read_text()).get("condition") if info.is_file() else None


def faces_prompt_metrics(spec: str, benchmark: Benchmark | None, seed: int = 0):
    """Fidelity and free-factor coverage per prompt for a conditional faces model, read by the benchmark's
    independent evaluator (its domain classifier if it has none); None for other models."""
    cond = condition_of(spec)
    if cond is None:
        return None
    from hrf.benchmarks import get_benchmark
    from hrf.data.conditional import prompt_metrics_fn

    bench = benchmark or get_benchmark("faces")
    reader = bench.evaluator() if bench.evaluator is not None else bench.classifier()
    return prompt_metrics_fn(reader, cond["factors"], seed)


def class_embeds(spec: str) -> int | None:
    """The number of class embeddings (the null class included) of a class-conditional UNet spec, else None."""
    import json

    from hrf.models import resolve_model_path
    from hrf.models.latent import is_latent_pipeline

    if is_latent_pipeline(spec):
        return None
    path, subfolder = resolve_model_path(spec)
    config = Path(path) / (subfolder or "") / "config.json"
    return (json.loads(config.read_text()).get("num_class_embeds") or None) if config.is_file() else None


def conditional_kind(spec: str) -> str | None:
    """ "text" for a latent text-to-image pipeline, "classes" for a class-conditional UNet, else None."""
    from hrf.models.latent import is_latent_pipeline

    if is_latent_pipeline(spec):
        return "text"
    return "classes" if class_embeds(spec) else None


def load_conditional(spec: str, steps: int):
    """``(unet, ddim scheduler, decode, latent pipeline or None)`` of a conditional model spec."""
    from hrf.models import load_pipeline_parts, make_ddim_scheduler
    from hrf.models.latent import is_latent_pipeline, load_latent_pipeline

    if is_latent_pipeline(spec):
        pipe = load_latent_pipeline(spec)
        return pipe.unet.eval(), make_ddim_scheduler(pipe.scheduler, steps), pipe.decode, pipe
    unet, ddim = load_pipeline_parts(spec, steps)
    return unet.eval(), ddim, (lambda x: x), None


def sample_per_prompt(
    spec: str,
    prompts: Sequence[str] | Sequence[int],
    num: int,
    seed: int,
    steps: int,
    guidance_scale: float = 1.0,
    batch_size: int = 64,
    null_class: int = -1,
) -> dict[str, torch.Tensor]:
    """``{prompt name: num images in [-1, 1]}`` of model ``spec``, prompt ``i`` from :func:`prompt_generator`."""
    from hrf.sampling import sample_images
    from hrf.training.prompts import make_conditioner

    unet, ddim, decode, pipe = load_conditional(spec, steps)
    conditioner = make_conditioner(list(prompts), unet, pipe, null_class, f"model '{spec}'")
    out = {}
    for i, name in enumerate(conditioner.names):
        cond = conditioner(torch.full((num,), i, dtype=torch.long))
        latents = sample_images(
            unet, ddim, num, prompt_generator(seed, i), batch_size, cond=cond, guidance_scale=guidance_scale
        )
        out[name] = decode(latents)
    return out


def average_over_prompts(per_prompt: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """``{model: {metric: mean over prompts}}`` of ``{prompt: {model: {metric: value}}}`` (metrics every prompt has)."""
    models = next(iter(per_prompt.values())).keys()
    out = {}
    for m in models:
        keys = set.intersection(*(set(per_prompt[p][m]) for p in per_prompt))
        out[m] = {k: float(np.mean([per_prompt[p][m][k] for p in per_prompt])) for k in sorted(keys)}
    return out


def evaluate_per_prompt(
    models: Mapping[str, str],
    prompts: Sequence[str] | Sequence[int],
    *,
    num: int,
    seed: int,
    steps: int,
    out_dir: Path | None = None,
    guidance_scale: float = 1.0,
    rewards: Sequence | Mapping = (),
    embedders: Sequence = ("pixels",),
    benchmark: Benchmark | None = None,
    prompt_metrics: Callable[[str, torch.Tensor], dict[str, float]] | None = None,
    batch_size: int = 64,
    null_class: int = -1,
) -> dict:
    """Metrics of every model on every prompt (``num`` samples each) and their average over prompts.

    ``prompt_metrics(prompt, images)`` adds metrics that depend on the prompt (e.g. a benchmark's fidelity to
    the specified factors). With ``out_dir``, ``grid_PROMPT.png`` per prompt holds a row of samples per model.
    Returns ``{"prompts": {prompt: {model: {metric: value}}}, "average": {model: {metric: value}}}``.
    """
    from hrf.evaluation.samples import unique_slug
    from hrf.images import save_grid

    samples = {
        name: sample_per_prompt(spec, prompts, num, seed, steps, guidance_scale, batch_size, null_class)
        for name, spec in models.items()
    }
    names = list(next(iter(samples.values())))
    per_prompt: dict[str, dict[str, dict[str, float]]] = {}
    taken: set[str] = set()
    for p in names:
        images = {m: samples[m][p] for m in models}
        report = evaluate_images(
            images, rewards=rewards, embedders=embedders, benchmark=benchmark, n_boot=0, is_splits=1, seed=seed
        )
        per_prompt[p] = {m: {k: v["value"] for k, v in report["models"][m].items()} for m in models}
        if prompt_metrics is not None:
            for m in models:
                per_prompt[p][m].update(prompt_metrics(p, images[m]))
        if out_dir is not None:
            row = min(num, 8)
            grid = torch.cat([images[m][:row] for m in models])
            path = Path(out_dir) / f"grid_{unique_slug(p, taken)}.png"
            save_grid(grid, path, ncols=row, scale=max(1, 64 // grid.shape[-1]))
    return {"prompts": per_prompt, "average": average_over_prompts(per_prompt)}
