"""Latent text-to-image pipelines (diffusers ``StableDiffusionPipeline`` layout): load, encode, decode, LoRA.

The denoising chain runs on the UNet's latents exactly as on pixels (the same DDIM step and log-prob);
the VAE decodes latents before every reward and metric, and each prompt's text embedding is computed once.
LoRA adapters go on the UNet through diffusers' peft integration (``unet.add_adapter``) and are saved as
``pytorch_lora_weights.safetensors``, which ``StableDiffusionPipeline.load_lora_weights(DIR)`` opens; the
directory's ``hrf_info.json`` names the base pipeline, so hrf opens it as a model too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hrf.errors import HrfError

LORA_FILE = "pytorch_lora_weights.safetensors"
# LoRA on the UNet's attention projections: what diffusers' text-to-image LoRA script and ddpo-pytorch adapt.
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass
class LatentPipeline:
    """The parts of a latent text-to-image pipeline hrf uses; ``base`` is its model spec."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    tokenizer: Any  # a CLIPTokenizer
    text_encoder: torch.nn.Module
    scheduler: object  # the pipeline's own scheduler config, as a DDIMScheduler
    base: str

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """(P, L, D) text embeddings of ``prompts`` (padded to the tokenizer's maximum length), float32, CPU."""
        device = next(self.text_encoder.parameters()).device
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        return self.text_encoder(ids)[0].float().cpu()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Images in [-1, 1] (float32, CPU) of ``latents``, decoded ``batch_size`` at a time."""
        p = next(self.vae.parameters())
        scale = self.vae.config.scaling_factor
        out = [
            self.vae.decode(chunk.to(p.device, p.dtype) / scale).sample.float().clamp(-1, 1).cpu()
            for chunk in latents.split(batch_size)
        ]
        return torch.cat(out)

    def to(self, device, frozen_dtype: torch.dtype = torch.float32) -> LatentPipeline:
        """Move the parts to ``device``; the frozen VAE and text encoder in ``frozen_dtype`` (bf16 saves memory)."""
        self.unet.to(device)
        for frozen in (self.vae, self.text_encoder):
            frozen.to(device) if frozen_dtype == torch.float32 else frozen.to(device, frozen_dtype)
        return self


def _model_index(spec: str) -> dict | None:
    """The ``model_index.json`` of a local directory or a cached (or, with network, downloadable) hub id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        file = path / "model_index.json"
        return json.loads(file.read_text()) if file.is_file() else None
    if spec.startswith("hrf:") or spec.count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download

        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        return json.loads(Path(hf_hub_download(spec, "model_index.json", local_files_only=offline)).read_text())
    except Exception:  # not a pipeline we can see: the UNet loader gives the one-line error
        return None


def lora_base(spec: str) -> str | None:
    """The base pipeline of an hrf LoRA directory (adapters + ``hrf_info.json``), else None."""
    path = Path(spec).expanduser()
    info = path / "hrf_info.json"
    if (path / LORA_FILE).is_file() and info.is_file():
        return json.loads(info.read_text()).get("lora_base")
    return None


def is_latent_pipeline(spec: str) -> bool:
    """True for a Stable Diffusion-style pipeline (a ``vae`` beside the ``unet``) or an hrf LoRA directory on one."""
    if lora_base(spec):
        return True
    index = _model_index(spec)
    return index is not None and all(part in index for part in ("vae", "unet", "text_encoder"))


def load_latent_pipeline(spec: str) -> LatentPipeline:
    """The parts of the pipeline ``spec`` (a directory, a hub id, or an hrf LoRA directory on one)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise HrfError(
            f"'{spec}' is a text-to-image pipeline, which needs transformers: pip install 'hrf[sd]'"
        ) from exc

    base = lora_base(spec)
    if base:
        pipe = load_latent_pipeline(base)
        load_lora(pipe, spec)
        return pipe
    local = Path(spec).expanduser().is_dir()
    from hrf.models.io import _from_hub

    def part(cls, sub):
        if local:
            try:
                return cls.from_pretrained(spec, subfolder=sub)
            except (OSError, ValueError) as exc:
                raise HrfError(f"cannot load the {sub} of pipeline '{spec}': {exc}".splitlines()[0]) from exc
        return _from_hub(cls.from_pretrained, spec, subfolder=sub)

    return LatentPipeline(
        unet=part(UNet2DConditionModel, "unet"),
        vae=part(AutoencoderKL, "vae").requires_grad_(False).eval(),
        tokenizer=part(CLIPTokenizer, "tokenizer"),
        text_encoder=part(CLIPTextModel, "text_encoder").requires_grad_(False).eval(),
        scheduler=part(DDIMScheduler, "scheduler"),
        base=spec,
    )


def add_unet_lora(unet, rank: int, alpha: float | None = None):
    """Freeze ``unet`` and add trainable LoRA adapters of ``rank`` on its attention projections (diffusers + peft)."""
    from hrf.models.lora import _peft

    peft = _peft()
    unet.requires_grad_(False)
    unet.add_adapter(
        peft.LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)
    )
    return unet


def save_lora(unet, directory: str | Path, base: str, extra: dict | None = None) -> Path:
    """Save ``unet``'s adapters so that ``StableDiffusionPipeline.load_lora_weights(directory)`` opens them."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = unet.module if hasattr(unet, "module") else unet
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
    StableDiffusionPipeline.save_lora_weights(directory, unet_lora_layers=layers, safe_serialization=True)
    (directory / "hrf_info.json").write_text(json.dumps({"lora_base": base, **(extra or {})}, indent=2, default=str))
    return directory


def load_lora(pipe: LatentPipeline, directory: str | Path) -> None:
    """Load saved adapters into ``pipe.unet`` (through the pipeline class, as a user would)."""
    sd = as_diffusers_pipeline(pipe)
    sd.load_lora_weights(str(directory))


def as_diffusers_pipeline(pipe: LatentPipeline):
    """A ``StableDiffusionPipeline`` sharing ``pipe``'s modules (no safety checker)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(directory: str | Path, seed: int = 0, image_size: int = 16) -> Path:
    """A tiny randomly initialised Stable Diffusion pipeline saved in ``directory`` (no download).

    The CLIP tokenizer reads a small vocabulary and merges file written here (letters, a few words); text
    encoder, VAE (one downsampling: ``image_size`` px images, ``image_size/2`` px latents) and UNet are
    built from configs. For tests and the GPU self-check; it makes noise, not pictures.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    tok_dir = directory / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = ["a</w>", "cat</w>", "dog</w>", "of</w>", "photo</w>"]
    merges = ["c a", "ca t</w>", "d o", "do g</w>", "o f</w>", "p h", "ph o", "pho t", "phot o</w>"]
    tokens = letters + [f"{x}</w>" for x in letters] + [m.replace(" ", "") for m in merges] + words
    vocab = {t: i for i, t in enumerate(dict.fromkeys(["<|startoftext|>", "<|endoftext|>", *tokens]))}
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=8)
    tokenizer.save_pretrained(tok_dir)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=len(vocab),
            max_position_embeddings=8,
            bos_token_id=0,
            eos_token_id=1,
        )
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=image_size,
    )
    unet = UNet2DConditionModel(
        sample_size=image_size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    # Stable Diffusion 1.5's scheduler settings.
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = LatentPipeline(unet, vae, tokenizer, text_encoder, scheduler, str(directory))
    as_diffusers_pipeline(pipe).save_pretrained(directory)
    return directory
