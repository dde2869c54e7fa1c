"""End to end on the shipped faces model (fixed seed): DDPO_IS raises JPEG compressibility and HRF raises
the learned smile reward.

The fine-tuned and base models are sampled from the same initial noise, so the paired difference in
reward measures what training changed. HRF is tested on the smile reward because the mouth is a low-level
factor its late windows control, while the JPEG sizes of branches started late from one 32-px reference
differ by a few bytes — too little signal to move in a CI budget (measured: 8 epochs left it unchanged
or slightly worse).
"""

from __future__ import annotations

import os

import pytest
import torch

from hrf.config import load_config
from hrf.models import load_pipeline_parts
from hrf.rewards import make_reward
from hrf.sampling import sample_images
from hrf.training.trainer import prepare_run
from tests.test_config import PAPER

BASE = os.environ.get("HRF_TEST_FACES_MODEL", "hrf:faces32")
PRESETS = PAPER.parent / "faces32"
SMALL = ["sampling.num_steps=10", "train.max_epochs=5", "train.sample_batch_size=64", "train.train_batch_size=128",
         f"model.path={BASE}", "output.grid_every=0"]


def _rewards(spec: str, reward: str) -> torch.Tensor:
    unet, scheduler = load_pipeline_parts(spec, 10)
    images = sample_images(unet.eval(), scheduler, 96, torch.Generator().manual_seed(123), 96)
    return make_reward(reward)(images)[0].double()


@pytest.mark.slow
@pytest.mark.parametrize("preset,extra", [
    ("compressibility-ddpo", ["train.references=64"]),
    ("smile-hrf", ["schedule.windows=[[2,4],[4,6],[6,8]]", "schedule.iterations=[2,2,1]", "train.references=8",
                   "train.lr=3e-4"]),
])
def test_fine_tuning_raises_the_reward(preset, extra, tmp_path):
    cfg = load_config(PRESETS / f"{preset}.toml", SMALL + extra)
    trainer = prepare_run(cfg, tmp_path / preset, progress=False)
    assert len(trainer.train()) == 5
    change = _rewards(str(tmp_path / preset / "final"), cfg.reward.name) - _rewards(BASE, cfg.reward.name)
    # the mean paired change is positive by more than 3 standard errors
    assert change.mean() > 3 * change.std() / len(change) ** 0.5, float(change.mean())
