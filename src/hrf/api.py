"""The Python API: the few entry points a script or notebook needs, and that the ``hrf`` command calls.

Importing this module (and ``hrf``) loads no torch: each function imports what it needs when called. Every
function takes its options as keywords, so that new ones (a device, a frontier) can be added without breaking
callers. A model ``spec`` is a diffusers directory (e.g. a run's ``final/``), a hub id, or ``hrf:NAME`` (a
shipped model: ``hrf:faces32``, ``hrf:lfw32``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrf.errors import HrfError

if TYPE_CHECKING:
    import torch

    from hrf.config import Config, RewardConfig
    from hrf.sampling.noise import NoiseScheme

Overrides = Sequence[str] | Mapping[str, Any]  # ["train.lr=1e-4"] or {"train.lr": 1e-4}


@dataclass
class TrainResult:
    """What :func:`train` returns: where the run lives and what it did."""

    run_dir: Path  # the run directory: config.toml, derived.json, metrics.jsonl, checkpoints/, final/
    final: Path  # the fine-tuned model, a diffusers directory every function here accepts as a model spec
    summary: dict  # epochs, stopped (the reason), last_reward_mean, trajectories, trained_pairs
    history: list[dict] = field(default_factory=list)  # one dict of metrics per epoch trained by this call


def _override_strings(overrides: Overrides) -> list[str]:
    """``--set`` strings of either form of overrides; a mapping's values are written as TOML values."""
    if isinstance(overrides, Mapping):
        import tomli_w

        return [f"{key}={tomli_w.dumps({'v': value}).partition('=')[2].strip()}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise HrfError(f"overrides must be a list of 'key=value' strings or a dict, not the string '{overrides}'")
    return list(overrides)


def load_config(source: str | Path | None = None, overrides: Overrides = ()) -> Config:
    """A validated training config: a shipped preset by name (``"faces32/compressibility-hrf"``) or a TOML
    file, with overrides (``{"train.lr": 1e-4}`` or ``["train.lr=1e-4"]``); ``None`` starts from the defaults.

    Bad names, keys and values raise a one-line :class:`hrf.errors.ConfigError`.
    """
    from hrf.config import config_source
    from hrf.config import load_config as load

    return load(config_source(source) if source is not None else None, _override_strings(overrides))


def train(
    config: Config | str | Path | None,
    out: str | Path,
    *,
    overrides: Overrides = (),
    resume: bool = False,
    force: bool = False,
    allow_config_change: bool = False,
    device: str | None = None,
    progress: bool = True,
    verbose: bool = False,
) -> TrainResult:
    """Fine-tune a model with DDPO_IS, HRF or HRF-D (the config's ``schedule.kind``: full, windows, dynamic)
    and return its run directory and summary.

    ``config`` is a :class:`hrf.config.Config`, a preset name or a TOML file; with ``resume`` it may be None
    (the run's saved config). ``overrides`` apply to it. A directory that holds another run is refused unless
    ``resume`` (continue from its last checkpoint; changes beyond the free fields need
    ``allow_config_change``) or ``force`` (start over). ``device`` ``"cpu"`` or ``"cuda"`` (default: accelerate's
    choice, CUDA when there is one); rewards follow it. ``verbose`` prints the derived quantities and the end.
    """
    from hrf.training.run_dir import prepare_run, run_totals

    # A preset or file is loaded with the overrides; a Config or None (the saved or default one) gets them here.
    cfg, extra = (load_config(config, overrides), []) if isinstance(config, str | Path) else (config, overrides)
    trainer = prepare_run(
        cfg,
        out,
        resume=resume,
        force=force,
        overrides=_override_strings(extra),
        allow_config_change=allow_config_change,
        progress=progress,
        device=None if device in (None, "auto") else device,
    )
    main = trainer.acc.is_main_process
    if verbose and main:
        print(
            f"hrf train: device {trainer.acc.device} ({trainer.acc.num_processes} process(es)), "
            f"{trainer.cfg.schedule.kind} schedule, reward '{trainer.cfg.reward.name}', "
            f"starting at epoch {trainer.epoch + 1}; derived quantities:"
        )
        print(json.dumps(trainer.derived, indent=2))
    history = trainer.train()
    run_dir = Path(out)
    if verbose and main:
        last = history[-1]["reward_mean"] if history else float("nan")
        print(
            f"hrf train: done after {trainer.epoch} epochs ({trainer.stopped_reason}); last mean reward "
            f"{last:.4g}; model in {run_dir}/final"
        )
    trainer.acc.wait_for_everyone()  # metrics.jsonl is complete: every rank reads the same summary
    summary = {
        **run_totals(run_dir),
        "epochs": trainer.epoch,
        "stopped": trainer.stopped_reason,
        "device": str(trainer.acc.device),
    }
    if trainer.acc.num_processes > 1:
        # Tearing a gloo process group down can hang (see hrf.cli.train.leave_process_group): finish the
        # trackers here and leave the group to the caller, which ends the process.
        for tracker in trainer.acc.trackers:
            tracker.finish()
    else:
        trainer.acc.end_training()
    return TrainResult(run_dir, run_dir / "final", summary, history)


def sample(
    model: str | Path,
    num: int = 64,
    *,
    steps: int = 40,
    seed: int = 0,
    batch_size: int = 64,
    out: str | Path | None = None,
    noise: NoiseScheme = "per_sample",
    device: str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """``num`` images of ``model`` (a spec) from the noise seeded with ``seed``, ``steps`` DDIM steps, eta = 1:
    a float tensor (N, C, H, W) in [-1, 1] on the CPU. With ``out``, also writes ``samples.npz`` (uint8 HWC),
    ``grid.png`` and ``sample_args.json`` there. ``noise="per_sample"`` makes image i the same whatever
    ``batch_size`` and ``device`` (default: CUDA when there is one); ``"sequential"`` is hrf's earlier draw."""
    from hrf.images import save_grid, to_uint8_hwc
    from hrf.models import load_pipeline_parts, resolve_device
    from hrf.sampling import make_noise, sample_images
    from hrf.training.run_dir import writable_dir

    out_dir = writable_dir(out) if out is not None else None
    used = resolve_device(device)
    unet, scheduler = load_pipeline_parts(str(model), steps, device=used)
    images = sample_images(unet.eval(), scheduler, num, make_noise(noise, seed, num), batch_size, progress=progress)
    if out_dir is not None:
        import numpy as np

        np.savez_compressed(out_dir / "samples.npz", images=to_uint8_hwc(images))
        save_grid(images[:256], out_dir / "grid.png", scale=max(1, 128 // images.shape[-1]))
        settings = {"model": str(model), "num": num, "out": str(out), "steps": steps, "seed": seed, "noise": noise}
        settings |= {"device_used": str(used)}
        (out_dir / "sample_args.json").write_text(json.dumps(settings | {"batch_size": batch_size}, indent=2))
    return images


def split_label(text: str) -> tuple[str | None, str]:
    """``LABEL=SPEC`` → ``(LABEL, SPEC)``; a bare spec (or an existing path containing "=") → ``(None, text)``."""
    if "=" not in text or text.startswith("hrf:") or Path(text).exists():
        return None, text
    label, spec = text.split("=", 1)
    if not label or not spec:
        raise HrfError(f"model '{text}': write LABEL=SPEC with both parts, or just SPEC")
    return label, spec


def model_slug(spec: str, taken: set[str]) -> str:
    """A file-name-safe, unique short name for a model spec (``hrf:faces32`` → ``hrf_faces32``)."""
    from hrf.evaluation.samples import unique_slug

    return unique_slug(spec if spec.startswith("hrf:") else Path(spec.rstrip("/")).name, taken)


def model_names(models: Mapping[str, str | Path] | Sequence[str | Path]) -> dict[str, str]:
    """``{name: spec}`` of :func:`evaluate`'s models: a mapping is kept; in a sequence, ``LABEL=SPEC`` names
    a model and a bare spec is named after its directory (``hrf:faces32`` → ``hrf_faces32``)."""
    if isinstance(models, Mapping):
        return {str(name): str(spec) for name, spec in models.items()}
    taken: set[str] = set()
    specs: dict[str, str] = {}
    for label, spec in (split_label(str(m)) for m in models):
        slug = model_slug(label.replace("/", "_") if label else spec, taken)
        specs[label if label and label not in specs else slug] = spec
    return specs


def reward_configs(rewards: Sequence[str] | Mapping[str, Mapping[str, Any]]) -> list[RewardConfig]:
    """Reward configs of reward names, or of ``{name: {option: value}}``."""
    from hrf.config import RewardConfig

    if isinstance(rewards, Mapping):
        return [RewardConfig(name=name, options=dict(options)) for name, options in rewards.items()]
    if isinstance(rewards, str):
        return [RewardConfig(name=rewards)]
    return [RewardConfig(name=name) for name in dict.fromkeys(rewards)]


def evaluate(
    models: Mapping[str, str | Path] | Sequence[str | Path],
    out: str | Path,
    *,
    num: int = 512,
    seed: int = 0,
    steps: int = 40,
    rewards: Sequence[str] | Mapping[str, Mapping[str, Any]] = (),
    embedders: Sequence[str] | None = None,
    reference: str | Path | None = None,
    benchmark: str = "auto",
    n_boot: int = 100,
    is_splits: int = 10,
    batch_size: int = 64,
    noise: NoiseScheme = "per_sample",
    device: str | None = None,
    progress: bool = True,
    verbose: bool = False,
) -> dict:
    """Sample every model from the same initial noise and compare them; returns the report as data and
    writes ``metrics.json``, ``metrics.md``, sample grids and figures in ``out``.

    ``models``: ``{name: spec}`` (the first is the base model), or specs, optionally ``"LABEL=SPEC"``.
    ``rewards``: registered names or ``module:function``, or ``{name: {option: value}}``. ``embedders``:
    ``pixels``, ``domain``, ``efficientnet_lite0``, ``fid_inception``, ``clip:DIR`` (default: pixels, plus
    efficientnet_lite0 when installed). ``reference``: ``"data"`` (the benchmark's generator), a ``.npz`` or
    a directory of images, for FD/KID and precision/recall. ``benchmark``: a name, ``"none"`` or ``"auto"``
    (the benchmark a model belongs to, e.g. ``hrf:faces32`` → faces). Samples are cached in ``out``, so a
    rerun samples only what is missing. ``noise`` and ``device`` as for :func:`sample`; rewards and embedders
    run on the device too. ``report["models"][name][metric]["value"]`` is one number.
    """
    from hrf.benchmarks import choose_benchmark
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from hrf.evaluation.metrics import REFERENCE
    from hrf.evaluation.pipeline import evaluate_models
    from hrf.evaluation.prompted import conditional_kind
    from hrf.evaluation.report import metrics_markdown, report_figures
    from hrf.evaluation.samples import load_reference
    from hrf.models import resolve_device, resolve_model_path
    from hrf.rewards import make_reward
    from hrf.training.run_dir import writable_dir

    used = resolve_device(device)
    out_dir = writable_dir(out)
    embedder_names = list(embedders or ["pixels", *(["efficientnet_lite0"] if efficientnet_installed() else [])])
    specs = model_names(models)
    # Bad names fail here, before any network is loaded or image sampled.
    for spec in specs.values():
        resolve_model_path(spec)
        if (kind := conditional_kind(spec)) is not None:
            option = "--classes" if kind == "classes" else "--prompts or --prompt-file"
            raise HrfError(
                f"'{spec}' is a conditional model ({kind}): evaluate it per prompt ({option} of hrf evaluate)"
            )
    chosen = choose_benchmark(benchmark, list(specs.values()), None if reference is None else str(reference))
    configs = reward_configs(rewards)
    settings = {
        "models": specs,
        "num": num,
        "seed": seed,
        "steps": steps,
        "out": str(out),
        "rewards": {r.name: r.options for r in configs},
        "embedders_used": embedder_names,
        "reference": None if reference is None else str(reference),
        "benchmark": benchmark,
        "benchmark_used": chosen is not None,
        "n_boot": n_boot,
        "is_splits": is_splits,
        "batch_size": batch_size,
        "noise": noise,
        "device_used": str(used),
    }
    if verbose:
        print(f"hrf evaluate: device {used}, {noise} noise")
    embs = [make_embedder(e, used) for e in embedder_names]
    reward_fns = {r.name: make_reward(r.name, default_device=used, **r.options) for r in configs}
    ref_images, ref_text = (
        load_reference(str(reference), num, seed, chosen.data if chosen else None)
        if reference is not None
        else (None, None)
    )
    (out_dir / "evaluate_args.json").write_text(json.dumps(settings, indent=2))  # once the inputs have loaded
    if verbose:
        for name, spec in specs.items():
            print(f"model {spec} → {name}")
    report = evaluate_models(
        specs,
        num=num,
        seed=seed,
        steps=steps,
        cache_dir=out_dir,
        rewards=reward_fns,
        embedders=embs,
        benchmark=chosen,
        reference=ref_images,
        n_boot=n_boot,
        is_splits=is_splits,
        batch_size=batch_size,
        progress=progress,
        return_arrays=True,
        noise=noise,
        device=used,
    )
    images = report.pop("images")
    figures = report_figures(report, ({REFERENCE: ref_images} if ref_images is not None else {}) | images, out_dir)
    report.pop("arrays")
    report["config"] |= {"models": specs, "reference_source": ref_text, "num": num, "seed": seed, "steps": steps}
    report["config"] |= {"noise": noise, "device": str(used)}
    report["figures"] = [str(f) for f in figures]
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    (out_dir / "metrics.md").write_text(metrics_markdown(report))
    return report


def frontier(
    model: str | Path,
    rewards: Sequence[str] | Mapping[str, Mapping[str, Any]],
    out: str | Path,
    *,
    num: int = 50_000,
    seed: int | None = None,
    steps: int = 10,
    gains: Mapping[str, Sequence[float]] | None = None,
    benchmark: str = "auto",
    embedders: Sequence[str] = (),
    device: str | None = None,
    progress: bool = True,
    classes: Sequence[int] | None = None,
    guidance_scale: float = 1.0,
    null_class: int = -1,
) -> dict[str, dict]:
    """The base model's KL-optimal reward–diversity frontier for each reward: ``{reward: frontier}``.

    ``num`` base samples of ``model`` at ``steps`` DDIM steps are reweighted by exp(β·reward) for a grid of β
    (docs/MATH.md §8): the distribution closest to the base model at each expected reward. Each frontier
    holds the base point, the β grid (``curve``: gain, ESS, KL, gold reading, Vendi, factor entropy and
    coverage, fractions of the base's under ``frac/``) and its reading exactly at ``gains[reward]`` (default:
    25/50/75/100 % of the largest gain reachable with ESS ≥ 1,000). Writes ``frontier_REWARD.json``,
    ``frontier.md`` and ``frontier.png`` in ``out``; base samples are cached there in chunks (resumable).

    A class-conditional model needs ``classes`` (and an unconditional one refuses them): the frontier is then
    the tilt of p(x | c) within each class ``c``, ``num`` samples per class under classifier-free guidance
    ``guidance_scale`` (``null_class`` the unconditional label, -1 the last), each class read at the same
    gains, written under ``out/prompts/classC/``, and averaged over the classes that reach each gain
    (``frontier_prompts_REWARD.json``, ``frontier_prompts.md``); the result is then
    ``{reward: {"key", "prompts": {class: frontier}, "average"}}``.
    """
    from hrf.benchmarks import choose_benchmark
    from hrf.evaluation.embedders import make_embedder
    from hrf.evaluation.frontier import FRONTIER_SEED, conditional_classes, run_frontier
    from hrf.models import resolve_device, resolve_model_path
    from hrf.training.run_dir import writable_dir

    resolve_model_path(str(model))  # a bad spec fails before anything is loaded
    ids = conditional_classes(str(model), classes, null_class)
    if ids is None and guidance_scale != 1.0:
        raise HrfError("a guidance scale needs a class-conditional model and its classes (--classes)")
    configs = reward_configs(rewards)
    unknown = set(gains or {}) - {r.name for r in configs}
    if unknown:
        raise HrfError(
            f"gains given for {sorted(unknown)}, which are not among the rewards {[r.name for r in configs]}"
        )
    used = str(resolve_device(device))
    out_dir = writable_dir(out)
    return run_frontier(
        str(model),
        configs,
        out_dir,
        num=num,
        seed=FRONTIER_SEED if seed is None else seed,
        steps=steps,
        benchmark=choose_benchmark(benchmark, [str(model)]),
        embedders=[make_embedder(e, used) for e in embedders],
        gains=gains,
        device=used,
        progress=progress,
        classes=ids,
        guidance_scale=guidance_scale,
        null_class=null_class,
    )


def tilt(
    model: str | Path,
    reward: str,
    out: str | Path,
    *,
    beta: float | None = None,
    gain: float | None = None,
    train_steps: int = 1500,
    lr: float = 1e-4,
    num: int = 20_000,
    steps_sampling: int = 10,
    sample_seed: int | None = None,
    work: str | Path | None = None,
    batch_size: int = 64,
    warmup_steps: int = 100,
    decay_steps: int = 0,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint_minutes: float = 5.0,
    twin: bool = False,
    scale: float = 1.0,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Fine-tune ``model`` toward its KL-optimal tilt q_β ∝ p·exp(β·reward) and return ``tilt_info.json``.

    Exactly one of ``beta`` or ``gain`` (a reward gain over the base mean; its β is the frontier's). ``num``
    base samples at ``steps_sampling`` DDIM steps (noise seed ``sample_seed``, default the frontier's) are read
    from ``work`` (e.g. an ``hrf frontier`` output directory; default ``out/base``) or sampled there; the model
    is then fine-tuned with its own DDPM loss on batches drawn with weights ∝ exp(β·reward) (docs/MATH.md,
    "Tilted fine-tuning"). Writes ``out/model`` (a diffusers directory every function here accepts),
    ``out/tilt_info.json`` and ``out/losses.json``; ``resume`` continues a stopped run exactly. A tilt whose
    effective sample size is below 1,000 is refused with one line naming the largest reachable gain.
    ``twin=True`` also trains a uniform twin (β = 0, the same seed) and saves base + ``scale``·(tilted − twin),
    the tilt without the drift of fine-tuning on the model's own samples (docs/MATH.md, "The uniform twin").
    """
    from hrf.evaluation.frontier import FRONTIER_SEED
    from hrf.models import resolve_device, resolve_model_path
    from hrf.training.run_dir import writable_dir
    from hrf.training.tilt import tilt as run_tilt

    resolve_model_path(str(model))  # a bad spec fails before anything is loaded
    return run_tilt(
        str(model),
        reward,
        writable_dir(out),
        beta=beta,
        gain=gain,
        num=num,
        steps_sampling=steps_sampling,
        sample_seed=FRONTIER_SEED if sample_seed is None else sample_seed,
        work=work,
        train_steps=train_steps,
        lr=lr,
        batch_size=batch_size,
        warmup_steps=warmup_steps,
        decay_steps=decay_steps,
        ema_decay=ema_decay,
        seed=seed,
        checkpoint_minutes=checkpoint_minutes,
        twin=twin,
        scale=scale,
        resume=resume,
        device=str(resolve_device(device)),
        progress=progress,
        command=command,
    )
