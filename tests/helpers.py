"""Helpers the tests import (``from tests.helpers import ...``); fixtures live in ``conftest.py``."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

ROOT = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """The environment of a child ``hrf``/``python`` process: this checkout's sources and tests first, one thread."""
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port no process listens on now (the OS picks it), for a torchrun master in a test."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def celebahq_like_scheduler() -> DDPMScheduler:
    """The training schedule of google/ddpm-celebahq-256: linear betas, 1000 steps, clip_sample."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=True
    )


def write_run_config(path, model_dir, **sections) -> Path:
    """A tiny training config (8×8 model at ``model_dir``, T = 6, brightness reward) written as TOML.

    ``sections`` update the base one table at a time, e.g. ``train={"max_epochs": 4}``.
    """
    import tomli_w

    data = {
        "model": {"path": str(model_dir)},
        "sampling": {"num_steps": 6},
        "reward": {"name": "tests.test_trainer:brightness"},
        "schedule": {"kind": "windows", "windows": [[1, 2]], "iterations": [2]},
        "train": {
            "references": 2,
            "branches": 3,
            "max_epochs": 2,
            "sample_batch_size": 6,
            "train_batch_size": 8,
            "lr": 1e-3,
            "advantage_norm": "group",
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(data))
    return path


def tiny_clip_dir(tmp_path):
    """A randomly initialised CLIPModel of width 16 (projection dim 12), saved in ``tmp_path / "clip"``."""
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(
        text_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=100,
            max_position_embeddings=16,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=12,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    return tmp_path / "clip"


def paired_reward_change(tuned: str, base: str, reward: str, steps: int = 10, num: int = 96) -> torch.Tensor:
    """Per-sample reward of ``tuned`` minus ``base``, both sampled from the same initial noise (seed 123).

    Pairing on the noise removes most of the sample-to-sample spread, so a mean change of a few standard
    errors is what training did, not which images happened to be drawn. The base model's rewards are
    computed once per session (its weights do not change).
    """
    return _sampled_rewards(tuned, reward, steps, num) - _base_rewards(base, reward, steps, num)


def _sampled_rewards(spec: str, reward: str, steps: int, num: int) -> torch.Tensor:
    from hrf.models import load_pipeline_parts
    from hrf.rewards import make_reward
    from hrf.sampling import sample_images

    unet, scheduler = load_pipeline_parts(spec, steps)
    images = sample_images(unet.eval(), scheduler, num, torch.Generator().manual_seed(123), 128)
    return make_reward(reward)(images)[0].double()


_base_rewards = functools.lru_cache(maxsize=None)(_sampled_rewards)


def assert_rises(change: torch.Tensor, sigmas: float = 3.0) -> None:
    """The mean paired change is positive by more than ``sigmas`` standard errors."""
    se = float(change.std() / len(change) ** 0.5)
    assert float(change.mean()) > sigmas * se, f"mean change {float(change.mean()):+.4f}, s.e. {se:.4f}"


def class_unet(classes: int = 4, size: int = 8, seed: int = 0) -> UNet2DModel:
    """A tiny class-conditional UNet2DModel (``classes`` label embeddings) with seeded random weights."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        num_class_embeds=classes,
    )
    # a fresh class embedding is small next to the time embedding; scale it so that labels matter
    unet.class_embedding.weight.data.mul_(20)
    return unet.eval()
