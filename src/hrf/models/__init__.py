"""Diffusion models as diffusers directories: loading, saving, DDIM set-up and tiny test configs."""

from hrf.models.configs import tiny_unet, unet_from_preset
from hrf.models.device import resolve_device
from hrf.models.io import (
    BUILTIN_MODELS,
    load_pipeline_parts,
    load_scheduler,
    load_unet,
    make_ddim_scheduler,
    replace_model,
    resolve_model_path,
    save_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "load_pipeline_parts",
    "load_scheduler",
    "load_unet",
    "make_ddim_scheduler",
    "resolve_device",
    "resolve_model_path",
    "replace_model",
    "save_model",
    "tiny_unet",
    "unet_from_preset",
]
