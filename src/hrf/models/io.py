"""Load and save models as diffusers directories, offline-safe.

A model directory holds ``config.json`` + ``diffusion_pytorch_model.safetensors`` (the UNet) and
``scheduler_config.json`` side by side, the layout of google/ddpm-celebahq-256, so that
``UNet2DModel.from_pretrained(dir)`` opens it. A ``unet/`` + ``scheduler/`` pipeline layout is read too.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from hrf.errors import HrfError

# Models shipped inside the package, addressed as "hrf:NAME".
BUILTIN_MODELS = ("faces32", "lfw32", "faces32-cond")


def _builtin_dir(name: str) -> Path:
    return Path(str(resources.files("hrf") / "assets" / "models" / name))


def resolve_model_path(spec: str) -> tuple[str, str | None]:
    """Turn a model spec into ``(path or hub id, unet subfolder or None)``.

    ``spec`` is ``hrf:NAME`` (a model shipped with hrf), a local diffusers directory, or a hub id.
    """
    if spec.startswith("hrf:"):
        name = spec[4:]
        path = _builtin_dir(name)
        if not (path / "config.json").is_file():
            raise HrfError(
                f"built-in model '{spec}' is not installed (known: {', '.join('hrf:' + m for m in BUILTIN_MODELS)}); "
                "train it with 'hrf pretrain' or pass a model directory"
            )
        return str(path), None
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        if (path / "unet" / "config.json").is_file():
            return str(path), "unet"
        raise HrfError(f"'{spec}' is not a diffusers model directory (no config.json or unet/config.json in it)")
    if path.exists():
        raise HrfError(f"'{spec}' is a file; pass a diffusers model directory")
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise HrfError(f"model directory '{spec}' does not exist")
    return spec, None  # a hub id


def _check_json_object(path: Path) -> None:
    """A model directory's JSON config must be a JSON object: anything else is a one-line HrfError naming it
    (diffusers would report an empty, binary or wrong-type file as a failed download)."""
    import json

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise HrfError(f"cannot read '{path}' as JSON ({type(exc).__name__}): empty, truncated or binary?") from None
    if not isinstance(data, dict):
        raise HrfError(f"'{path}' holds a JSON {type(data).__name__}, not a config object")


def _from_hub(load, spec: str, **kwargs):
    """Load from the local cache first; download only when the user allows network (HF_HUB_OFFLINE unset)."""
    try:
        return load(spec, local_files_only=True, **kwargs)
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        cause = "HF_HUB_OFFLINE is set"
    else:
        try:
            return load(spec, **kwargs)
        except Exception as exc:  # any hub failure becomes one sentence, never a traceback
            cause = type(exc).__name__
    raise HrfError(
        f"model '{spec}' is neither a local directory nor in the Hugging Face cache and could not be "
        f"downloaded ({cause}); on a connected machine run 'huggingface-cli download {spec} --local-dir DIR' "
        "and pass that DIR as the model path"
    )


def load_unet(spec: str, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> UNet2DModel:
    """Load the UNet2DModel of ``spec`` (``hrf:NAME``, a directory or a hub id) onto ``device``."""
    path, subfolder = resolve_model_path(spec)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    kwargs["torch_dtype"] = dtype
    if Path(path).is_dir():
        _check_json_object(Path(path, subfolder or "", "config.json"))
        try:
            unet = UNet2DModel.from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise HrfError(f"cannot load a UNet2DModel from '{spec}': {exc}".splitlines()[0]) from exc
    else:
        unet = _from_hub(UNet2DModel.from_pretrained, path, **kwargs)
    return unet.to(device)


def load_scheduler(spec: str) -> DDPMScheduler:
    """The training noise schedule stored beside the UNet (``scheduler_config.json``), as a DDPMScheduler."""
    path, subfolder = resolve_model_path(spec)
    kwargs = {"subfolder": "scheduler"} if subfolder else {}
    if Path(path).is_dir():
        config = Path(path, *kwargs.values(), "scheduler_config.json")
        if not config.is_file():
            raise HrfError(f"'{spec}' has no scheduler_config.json beside its UNet")
        _check_json_object(config)
        try:
            return DDPMScheduler.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            raise HrfError(f"cannot load a noise schedule from '{config}': {exc}".splitlines()[0]) from exc
    return _from_hub(DDPMScheduler.from_pretrained, path)


def make_ddim_scheduler(train_scheduler, num_steps: int) -> DDIMScheduler:
    """A DDIMScheduler with ``num_steps`` inference steps built from a training scheduler's config.

    The betas, ``clip_sample`` and ``prediction_type`` carry over; ``set_alpha_to_one`` keeps DDIM's
    default (True), which makes the last step deterministic (σ = 0; see ``hrf.sampling.ddim``).
    """
    train_steps = train_scheduler.config.num_train_timesteps
    if not 1 <= num_steps <= train_steps:
        raise HrfError(f"sampling.num_steps={num_steps} must be between 1 and the model's {train_steps} train steps")
    if getattr(train_scheduler.config, "thresholding", False):
        raise HrfError("schedulers with dynamic thresholding are not supported; set thresholding=false")
    ddim = DDIMScheduler.from_config(train_scheduler.config)
    ddim.set_timesteps(num_steps)
    return ddim


def load_pipeline_parts(
    spec: str, num_steps: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
):
    """``(unet, ddim_scheduler)`` for a model spec, the UNet on ``device``, ready for :func:`hrf.sampling.rollout`."""
    return load_unet(spec, dtype, device), make_ddim_scheduler(load_scheduler(spec), num_steps)


def save_model(unet: UNet2DModel, scheduler, directory: str | Path, extra: dict | None = None) -> Path:
    """Save ``unet`` (safetensors) and its training ``scheduler`` config flat in ``directory``.

    ``extra`` is written as ``hrf_info.json`` (how the model was made). The result opens with
    ``UNet2DModel.from_pretrained(directory)`` and with :func:`load_unet`.
    """
    import json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = unet.module if hasattr(unet, "module") else unet
    from hrf.models.lora import has_lora, merged_unet

    if has_lora(model):
        model = merged_unet(model)
    model.save_pretrained(directory, safe_serialization=True)
    DDPMScheduler.from_config(scheduler.config).save_pretrained(directory)
    if extra is not None:
        (directory / "hrf_info.json").write_text(json.dumps(extra, indent=2, default=str))
    return directory


def replace_model(unet: UNet2DModel, scheduler, directory: str | Path, extra: dict | None = None) -> Path:
    """:func:`save_model` into ``directory.tmp``, then renamed over ``directory``: a reader (or a run killed
    mid-write) never sees half a model."""
    import shutil

    final = Path(directory)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(unet, scheduler, tmp, extra=extra)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final
