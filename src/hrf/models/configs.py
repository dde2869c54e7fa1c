"""UNet2DModel configurations: the small CPU models hrf trains itself and tiny ones for tests."""

from __future__ import annotations

from diffusers import UNet2DModel

# The named UNet sizes (not training presets, which are the TOML files under configs/).
UNET_SIZES: dict[str, dict] = {
    "tiny": dict(block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8),
    "small": dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8),
    "base": dict(block_out_channels=(32, 64, 96), layers_per_block=1, norm_num_groups=8),
}


# google/ddpm-celebahq-256 (the paper's base model): its UNet2DModel architecture (113.7 M parameters) and its
# DDPMScheduler, for stand-ins of that model without its weights (benchmarks, the GPU self-check).
CELEBAHQ_UNET = dict(
    block_out_channels=(128, 128, 256, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    norm_num_groups=32,
)
CELEBAHQ_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    beta_schedule="linear",
    clip_sample=True,
    variance_type="fixed_small",
)


def unet_from_preset(preset: str, sample_size: int, channels: int = 3, **extra) -> UNet2DModel:
    """A freshly initialised UNet2DModel of a named size (a key of ``UNET_SIZES``) without attention blocks.

    ``extra`` goes to the UNet2DModel, e.g. ``num_class_embeds`` for a class-conditional model.
    """
    cfg = UNET_SIZES[preset]
    depth = len(cfg["block_out_channels"])
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownBlock2D",) * depth,
        up_block_types=("UpBlock2D",) * depth,
        **cfg,
        **extra,
    )


def tiny_unet(sample_size: int = 8, channels: int = 3, seed: int = 0) -> UNet2DModel:
    """A 0.26 M-parameter UNet2DModel with seeded random weights, for tests and quick runs."""
    import torch

    torch.manual_seed(seed)
    return unet_from_preset("tiny", sample_size, channels)
