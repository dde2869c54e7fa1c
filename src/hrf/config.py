"""Typed run configuration: dataclasses, TOML presets in ``configs/`` (found by name), dotted ``--set`` overrides.

Step-index convention (windows, candidates): k counts denoising steps already taken; k = 0 is pure
noise, k = T is the clean image. The paper's §4.2 equations count the other way (t = T − k).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from hrf.errors import ConfigError


@dataclass
class ModelConfig:
    path: str = "hrf:faces32"  # diffusers model directory, hub id (e.g. google/ddpm-celebahq-256) or hrf:NAME
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" | "auto" (bf16 on a GPU that has it, else fp16; none on CPU)
    gradient_checkpointing: bool = False  # trade compute for memory in the UNet backward (large models)
    lora_rank: int = 0  # 0 = full fine-tuning; > 0 = train only LoRA adapters of this rank (needs peft)
    vae_slicing: bool = False  # latent pipelines: decode the VAE one image at a time (less memory, same images)


@dataclass
class SamplingConfig:
    num_steps: int = 40  # T, DDIM inference steps (the paper: 40)
    eta: float = 1.0  # DDIM eta; 1 makes every step but the last stochastic, as DDPO needs
    guidance_scale: float = 1.0  # classifier-free guidance w: ε = ε_u + w·(ε_c − ε_u); 1 = none (ddpo-pytorch: 5)


@dataclass
class PromptsConfig:
    texts: list = field(default_factory=list)  # text prompts of a text-to-image pipeline (one drawn per reference)
    file: str = ""  # or a file of text prompts, one a line (# comments skipped); "hrf:animals" is shipped
    classes: list = field(default_factory=list)  # or class ids of a class-conditional UNet2DModel (num_class_embeds)
    null_class: int = -1  # guidance with classes: the "no condition" label; -1 = num_class_embeds − 1
    buffer_size: int = 16  # advantage_norm='prompt': last rewards kept per prompt (ddpo-pytorch: 16)
    min_count: int = 16  # advantage_norm='prompt': rewards a prompt needs before its own are used (ddpo-pytorch: 16)


@dataclass
class RewardConfig:
    name: str = "jpeg_compressibility"  # registered reward name or module:function
    options: dict = field(default_factory=dict)  # keyword arguments of the reward factory (e.g. clip_path)
    nonfinite: str = "error"  # NaN/inf rewards: "error" stops the run, "drop" removes those samples and counts them


@dataclass
class ScheduleConfig:
    kind: str = "full"  # "full" = DDPO from noise (k=0); "windows" = HRF; "dynamic" = HRF-D
    windows: list = field(default_factory=list)  # windows: inclusive [lo, hi] start-step ranges, in order
    iterations: list = field(default_factory=list)  # windows: epochs spent in each window
    after_last: str = "stop"  # windows: after the last window "stop" training, "hold" it, or "cycle" again
    candidates: list = field(default_factory=list)  # dynamic: the grid of candidate start steps (ascending)
    probe_samples: int = 4  # dynamic: m, probe samples denoised per reference and candidate
    beta: float = 1.0  # dynamic: weight of the distance term in argmax_k (ΔR_k − β·D_k)


@dataclass
class TrainConfig:
    seed: int = 0  # run seed; every random draw derives from it (same seed, same trajectories)
    max_epochs: int = 50  # epochs (= paper "iterations") at most
    target_reward: float | None = None  # stop early once an epoch's mean reward reaches this (paper §5.2)
    references: int = 32  # reference images (trajectory groups) per epoch; DDPO: trajectories per epoch
    branches: int = 1  # n, trajectories branched from each reference (paper's HRF "batch size"); DDPO: 1
    sample_batch_size: int = 64  # trajectories per rollout batch
    train_batch_size: int = 64  # (trajectory, step) pairs per forward/backward pass
    updates_per_epoch: int = 1  # optimizer steps per epoch (paper: 1 gradient update per iteration)
    inner_epochs: int = 1  # passes of PPO over each epoch's samples
    lr: float = 3e-4  # AdamW learning rate (paper, 113 M params: 3e-7 to 9e-6; small models need more)
    warmup_epochs: int = 0  # linear learning-rate warm-up, in epochs
    weight_decay: float = 1e-3  # AdamW weight decay (paper: 1e-3)
    adam_betas: list = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    adam_eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 4.5  # max gradient norm (paper: 4.5)
    clip_range: float = 1e-4  # PPO clip ε on the importance ratio (paper: 1e-4)
    adv_clip: float = 5.0  # advantages clipped to ±adv_clip (paper silent; DDPO's value)
    # The default is "batch" because the other defaults are DDPO_IS (schedule.kind = "full", branches = 1),
    # where one branch has no group to centre on; every preset sets its own, so no shipped run changes.
    advantage_norm: str = "batch"  # "group" per reference; "group_std" GRPO; "batch" DDPO; "prompt" ddpo's stat tracker
    timestep_fraction: float = 1.0  # fraction of each trajectory's trainable steps trained (DDPO's subsampling)
    skip_last_steps: int = 0  # the last N stochastic steps are sampled, not trained (0 = all, as DDPO and the paper)
    kl_coef: float = 0.0  # > 0 adds a per-step KL to the frozen base (DPOK-style); aims at β ≈ 1/(kl_coef·reward std)
    loss: str = "ppo"  # "ppo": the clipped DDPO_IS loss (KL-regularised if kl_beta > 0); "rtb": relative traj. balance
    kl_beta: float = 0.0  # β of the target q_β ∝ p_base·exp(β·r): > 0 with ppo = advantages in nats + KL; rtb needs it
    rtb_logz_lr: float = 0.1  # rtb: Adam learning rate of the learned scalar log Z (no warm-up, no weight decay)


@dataclass
class OutputConfig:
    checkpoint_every: int = 1  # epochs between checkpoints
    keep_checkpoints: int = 2  # newest checkpoints kept; older ones are pruned
    grid_every: int = 5  # epochs between sample grids (0 = never)
    trackers: list = field(default_factory=list)  # accelerate trackers fed each epoch, e.g. ["tensorboard"]


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# ---------------------------------------------------------------- presets

# The presets ship inside the package (package data), so every kind of install finds them by name.
PRESETS = Path(__file__).resolve().parent / "configs"


def preset_names() -> list[str]:
    """Every shipped preset's name, e.g. ``faces32/compressibility-hrf`` (its path under ``configs/``)."""
    return sorted(p.relative_to(PRESETS).with_suffix("").as_posix() for p in PRESETS.rglob("*.toml"))


def preset_path(name: str) -> Path:
    """The TOML file of the shipped preset ``name``, e.g. ``faces32/compressibility-hrf`` (``.toml`` optional)."""
    path = PRESETS / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        raise ConfigError(f"no preset named '{name}'; presets: {', '.join(preset_names())}")
    return path


def config_source(spec: str | Path) -> Path:
    """A ``--config`` value as a file: an existing TOML file path, else the shipped preset of that name."""
    path = Path(spec)
    if path.is_file() or (path.suffix == ".toml" and not (PRESETS / path).is_file()):
        return path  # a missing *.toml that names no preset: load_config reports the missing file
    return preset_path(str(spec))


# ---------------------------------------------------------------- loading


def _check_type(path: str, value, annotation):
    """Coerce ``value`` to the field's type or raise a one-line ConfigError."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing))  # noqa: S307 - our own annotations only
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return _check_type(path, value, args[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is list:
        if isinstance(value, list):
            return value
    elif annotation is dict:
        if isinstance(value, dict):
            return value
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{path} must be {name}, got {type(value).__name__} {value!r}")


def _build(cls, data: dict, prefix: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}")
        f = fields[key]
        if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
            sub = globals()[f.type] if isinstance(f.type, str) else f.type
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{key} must be a table")
            kwargs[key] = _build(sub, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(f"{prefix}{key}", value, f.type)
    return cls(**kwargs)


def _renamed_keys(data: dict) -> dict:
    """Still accepts ``output.tensorboard`` (a bool, before ``output.trackers``), with a warning once read."""
    output = data.get("output")
    if not isinstance(output, dict) or "tensorboard" not in output:
        return data
    import warnings

    warnings.warn(
        'output.tensorboard is deprecated: use output.trackers = ["tensorboard"]', FutureWarning, stacklevel=3
    )
    output = {k: v for k, v in output.items() if k != "tensorboard"}
    if data["output"]["tensorboard"] is True:
        output["trackers"] = sorted({*output.get("trackers", []), "tensorboard"})
    return {**data, "output": output}


def config_from_dict(data: dict) -> Config:
    """Build and validate a Config from nested dicts (unknown keys and wrong types are ConfigErrors)."""
    cfg = _build(Config, _renamed_keys(data), "")
    validate(cfg)
    return cfg


def parse_override(text: str) -> tuple[list[str], object]:
    """Parse ``a.b.c=value``; the value is read as TOML (``1e-6``, ``true``, ``[[3,7]]``) or else a string."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted keys in a nested dict (a copy) from ``section.key=value`` strings."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    return data


def read_toml(path: Path) -> dict:
    """The tables of a TOML config file, or a one-line ConfigError naming it: missing, a directory, unreadable,
    not UTF-8 text (a binary file), not TOML, or empty (no setting at all: pass ``--set`` without a file)."""
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a directory; pass a TOML file or a preset name")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (a binary file?); pass a TOML file") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"config file '{path}' is empty; give it at least one setting (or use --set without a file)")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a TOML preset (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    data = read_toml(Path(path)) if path is not None else {}
    return config_from_dict(apply_overrides(data, overrides or []))


def config_to_dict(cfg: Config) -> dict:
    """Nested plain dict of a Config, without None values (TOML has no null)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if v is not None}
        return x

    return strip(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as TOML (what ``hrf train --resume`` reads back)."""
    import tomli_w

    from hrf.atomic import write_text_atomic

    write_text_atomic(path, tomli_w.dumps(config_to_dict(cfg)))


def config_changes(a: Config | dict, b: Config | dict) -> dict[str, tuple]:
    """``{dotted key: (old, new)}`` where two configs differ; ``reward.options`` compares as one value.

    Either side may be a Config or its ``dataclasses.asdict`` dict (e.g. one stored in a JSON file, which may
    lack fields added since or hold fields dropped since); a key only one side has is ``dataclasses.MISSING``
    on the other.
    """

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and k != "options":
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    fa, fb = (flat(x if isinstance(x, dict) else dataclasses.asdict(x)) for x in (a, b))
    pairs = {k: (fa.get(k, dataclasses.MISSING), fb.get(k, dataclasses.MISSING)) for k in sorted(set(fa) | set(fb))}
    return {k: (old, new) for k, (old, new) in pairs.items() if old != new}


def config_diff(a: Config, b: Config) -> list[str]:
    """Human-readable ``key: old -> new`` lines where two configs differ."""
    return [f"{k}: {old!r} -> {new!r}" for k, (old, new) in config_changes(a, b).items()]


def with_overrides(cfg: Config, overrides: list[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied, validated as a whole."""
    return config_from_dict(apply_overrides(config_to_dict(cfg), overrides))


# ---------------------------------------------------------------- validation


def _positive(path: str, value, allow_zero: bool = False):
    if value < 0 or (value == 0 and not allow_zero) or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{path} must be {'≥ 0' if allow_zero else '> 0'}, got {value}")


def validate(cfg: Config) -> None:
    """Reject impossible configs with one line each (called by every loader)."""
    t, s, sch = cfg.train, cfg.sampling, cfg.schedule
    for name in (
        "max_epochs",
        "references",
        "branches",
        "sample_batch_size",
        "train_batch_size",
        "updates_per_epoch",
        "inner_epochs",
    ):
        _positive(f"train.{name}", getattr(t, name))
    for name in ("lr", "clip_range", "adv_clip", "grad_clip", "adam_eps"):
        _positive(f"train.{name}", getattr(t, name))
    for name in ("weight_decay", "kl_coef", "kl_beta", "warmup_epochs"):
        _positive(f"train.{name}", getattr(t, name), allow_zero=True)
    _validate_objective(t)
    if not 0 < t.timestep_fraction <= 1:
        raise ConfigError(f"train.timestep_fraction must be in (0, 1], got {t.timestep_fraction}")
    _positive("train.skip_last_steps", t.skip_last_steps, allow_zero=True)
    if len(t.adam_betas) != 2 or not all(0 <= b < 1 for b in t.adam_betas):
        raise ConfigError(f"train.adam_betas must be two numbers in [0, 1), got {t.adam_betas}")
    if t.advantage_norm not in ("group", "group_std", "batch", "prompt"):
        raise ConfigError(
            f"train.advantage_norm must be 'group', 'group_std', 'batch' or 'prompt', got '{t.advantage_norm}'"
        )
    validate_prompts(cfg)
    if t.advantage_norm in ("group", "group_std") and t.branches < 2:
        raise ConfigError(
            f"train.advantage_norm='{t.advantage_norm}' needs train.branches ≥ 2 (one branch has no "
            "group statistics); use advantage_norm='batch' for DDPO"
        )
    _positive("sampling.num_steps", s.num_steps)
    if s.num_steps < 2:
        raise ConfigError("sampling.num_steps must be ≥ 2 (the last step is deterministic and never trained)")
    if t.skip_last_steps > s.num_steps - 2:
        raise ConfigError(
            f"train.skip_last_steps={t.skip_last_steps} leaves no step to train at "
            f"sampling.num_steps={s.num_steps} (at most {s.num_steps - 2})"
        )
    if not 0 < s.eta <= 1:
        raise ConfigError(f"sampling.eta must be in (0, 1] (eta = 0 makes every step deterministic), got {s.eta}")
    if cfg.model.mixed_precision not in ("no", "fp16", "bf16", "auto"):
        raise ConfigError(
            f"model.mixed_precision must be 'no', 'fp16', 'bf16' or 'auto', got '{cfg.model.mixed_precision}'"
        )
    _positive("model.lora_rank", cfg.model.lora_rank, allow_zero=True)
    if cfg.reward.nonfinite not in ("error", "drop"):
        raise ConfigError(f"reward.nonfinite must be 'error' or 'drop', got '{cfg.reward.nonfinite}'")
    _positive("output.checkpoint_every", cfg.output.checkpoint_every)
    _positive("output.keep_checkpoints", cfg.output.keep_checkpoints)
    _positive("output.grid_every", cfg.output.grid_every, allow_zero=True)
    if not all(isinstance(name, str) for name in cfg.output.trackers):
        raise ConfigError(f'output.trackers must be tracker names, e.g. ["tensorboard"], got {cfg.output.trackers!r}')
    last = last_trainable_start(s.num_steps, t.skip_last_steps)
    if sch.kind == "full":
        if sch.windows or sch.candidates:
            raise ConfigError("schedule.kind='full' takes no windows or candidates; set kind='windows' or 'dynamic'")
    elif sch.kind == "windows":
        if not sch.windows:
            raise ConfigError("schedule.kind='windows' needs schedule.windows, e.g. [[3,7],[18,22],[28,32]]")
        for w in sch.windows:
            if not (isinstance(w, list) and len(w) == 2 and all(isinstance(v, int) for v in w)):
                raise ConfigError(f"schedule.windows entries must be [lo, hi] integer pairs, got {w!r}")
            if w[0] > w[1]:
                raise ConfigError(f"schedule.windows entry {w} is reversed (lo > hi)")
            if w[0] < 0 or w[1] > last:
                raise ConfigError(
                    f"schedule.windows entry {w} is outside 0..{last} (T={s.num_steps}; step "
                    f"{s.num_steps - 1} is deterministic and {t.skip_last_steps} before it untrained)"
                )
        if len(sch.iterations) != len(sch.windows):
            raise ConfigError(f"schedule.iterations has {len(sch.iterations)} entries for {len(sch.windows)} windows")
        if not all(isinstance(i, int) and i > 0 for i in sch.iterations):
            raise ConfigError(f"schedule.iterations must be positive integers, got {sch.iterations}")
        if sch.after_last not in ("stop", "hold", "cycle"):
            raise ConfigError(f"schedule.after_last must be 'stop', 'hold' or 'cycle', got '{sch.after_last}'")
    elif sch.kind == "dynamic":
        c = sch.candidates
        if len(c) < 2 or not all(isinstance(v, int) for v in c) or sorted(set(c)) != c:
            raise ConfigError(f"schedule.candidates must be ≥ 2 ascending distinct integers, got {c!r}")
        if c[0] < 0 or c[-1] > last:
            raise ConfigError(f"schedule.candidates must lie in 0..{last} (T={s.num_steps}), got {c}")
        _positive("schedule.probe_samples", sch.probe_samples)
        _positive("schedule.beta", sch.beta, allow_zero=True)
    else:
        raise ConfigError(f"schedule.kind must be 'full', 'windows' or 'dynamic', got '{sch.kind}'")


def validate_prompts(cfg: Config) -> None:
    """Prompt sources, guidance and per-prompt statistics that cannot work are refused here."""
    p, t = cfg.prompts, cfg.train
    sources = [name for name in ("texts", "file", "classes") if getattr(p, name)]
    if len(sources) > 1:
        raise ConfigError(f"give one prompt source, not {' and '.join('prompts.' + s for s in sources)}")
    if p.classes and not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in p.classes):
        raise ConfigError(f"prompts.classes must be non-negative integer class ids, got {p.classes!r}")
    if p.texts and not all(isinstance(x, str) and x.strip() for x in p.texts):
        raise ConfigError("prompts.texts must be non-empty strings")
    if cfg.sampling.guidance_scale < 1 or not math.isfinite(cfg.sampling.guidance_scale):
        raise ConfigError(f"sampling.guidance_scale must be ≥ 1 (1 = no guidance), got {cfg.sampling.guidance_scale}")
    if cfg.sampling.guidance_scale > 1 and not sources:
        raise ConfigError("sampling.guidance_scale > 1 needs prompts (an unconditional model cannot be guided)")
    if t.advantage_norm == "prompt":
        if not sources:
            raise ConfigError("train.advantage_norm='prompt' needs prompts (prompts.texts, .file or .classes)")
        if p.min_count < 2:
            raise ConfigError(f"prompts.min_count must be ≥ 2 (one reward has no spread), got {p.min_count}")
        if p.buffer_size < p.min_count:
            raise ConfigError(
                f"prompts.buffer_size={p.buffer_size} < prompts.min_count={p.min_count}: per-prompt statistics "
                "would never be used"
            )


def _validate_objective(t: TrainConfig) -> None:
    """The loss and its KL settings: one target at a time, and a β where the loss needs one."""
    if t.loss not in ("ppo", "rtb"):
        raise ConfigError(f"train.loss must be 'ppo' or 'rtb', got '{t.loss}'")
    _positive("train.rtb_logz_lr", t.rtb_logz_lr)
    if t.kl_coef > 0 and (t.kl_beta > 0 or t.loss == "rtb"):
        raise ConfigError(
            "train.kl_coef (normalised advantages, implicit β) cannot be combined with train.kl_beta or "
            "train.loss='rtb'; set kl_coef=0 and give the target's β as train.kl_beta"
        )
    if t.loss == "rtb" and t.kl_beta <= 0:
        raise ConfigError("train.loss='rtb' needs train.kl_beta > 0, the β of its target p_base·exp(β·r)")
    if t.kl_beta > 0 and t.loss == "ppo" and t.advantage_norm == "group_std":
        raise ConfigError(
            "train.kl_beta needs advantages in nats; advantage_norm='group_std' rescales them: use 'group' or 'batch'"
        )


# ---------------------------------------------------------------- derived quantities


def last_trainable_start(num_steps: int, skip_last: int = 0) -> int:
    """The last start step index with a step left to train: T−2−skip_last.

    The last step (T−1 → T) is deterministic and never trained; ``skip_last`` steps before it are not trained.
    """
    return num_steps - 2 - skip_last


def trained_steps(start: int, num_steps: int, timestep_fraction: float = 1.0, skip_last: int = 0) -> int:
    """Trained steps of a trajectory starting at step index ``start``: steps start..T−2−skip_last, subsampled."""
    available = max(last_trainable_start(num_steps, skip_last) + 1 - start, 0)
    return max(1, math.ceil(available * timestep_fraction)) if available else 0


def derived_quantities(cfg: Config, world_size: int = 1) -> dict:
    """Per-epoch quantities computed from the config, checked for consistency (printed at start-up)."""
    t, s, sch = cfg.train, cfg.sampling, cfg.schedule
    if t.references % world_size:
        raise ConfigError(f"train.references={t.references} must be divisible by the {world_size} processes")
    if sch.kind == "full":
        ranges = {"full (k=0)": [0]}
    elif sch.kind == "windows":
        ranges = {f"window [{lo},{hi}]": list(range(lo, hi + 1)) for lo, hi in sch.windows}
    else:
        ranges = {f"candidates {sch.candidates[0]}..{sch.candidates[-1]}": sch.candidates}
    steps = {
        name: sum(trained_steps(k, s.num_steps, t.timestep_fraction, t.skip_last_steps) for k in ks) / len(ks)
        for name, ks in ranges.items()
    }
    trajectories = t.references * t.branches
    fewest = min(steps.values()) * trajectories
    if fewest < t.updates_per_epoch:
        raise ConfigError(
            f"only {fewest:.0f} trained steps per epoch for {t.updates_per_epoch} updates; "
            "lower train.updates_per_epoch or raise train.references"
        )
    out = {
        "references_per_epoch": t.references,
        "trajectories_per_epoch": trajectories,
        "references_per_process": t.references // world_size,
        "processes": world_size,
        "optimizer_updates_per_epoch": t.updates_per_epoch * t.inner_epochs,
        "trained_steps_per_trajectory": {k: round(v, 2) for k, v in steps.items()},
        "trained_pairs_per_epoch": {k: round(v * trajectories) for k, v in steps.items()},
        "train_passes_per_update": {
            k: math.ceil(v * trajectories / t.updates_per_epoch / t.train_batch_size) for k, v in steps.items()
        },
    }
    if sch.kind == "windows":
        out["epochs_in_windows"] = sum(sch.iterations)
    if sch.kind == "dynamic":
        out["probe_rollouts_per_epoch"] = t.references * len(sch.candidates) * sch.probe_samples
    return out
