"""Shared fixtures: tiny models built from configs, and a celebahq-like noise schedule."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from hrf.models import make_ddim_scheduler, tiny_unet
from tests.helpers import celebahq_like_scheduler

torch.set_num_threads(1)


@pytest.fixture
def train_scheduler() -> DDPMScheduler:
    return celebahq_like_scheduler()


@pytest.fixture
def ddim40(train_scheduler):
    return make_ddim_scheduler(train_scheduler, 40)


@pytest.fixture
def unet8():
    return tiny_unet(sample_size=8, seed=0).eval()
