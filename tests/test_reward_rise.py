"""End to end on the shipped faces model (fixed seed): DDPO_IS raises JPEG incompressibility and HRF raises
the learned smile reward.

The fine-tuned and base models are sampled from the same initial noise, so the paired difference in
reward measures what training changed. The budgets are what moves the current model in a CI budget,
measured with the test's own paired evaluation (96 samples): DDPO_IS at 5 epochs of 64 trajectories gains
+0.025 kB of JPEG size (8.5 s.e.), while on compressibility it gains +0.0065 (2.1 s.e.), too little to
assert. HRF is tested on the smile reward because the mouth is a low-level factor its late windows
control; at lr 1e-3 it gains +0.25 (5 s.e.), at 3e-4 +0.035 (1.2 s.e.). The JPEG sizes of branches
started late from one 32-px reference differ by a few bytes, too little signal for HRF in this budget.
"""

from __future__ import annotations

import os

import pytest

from hrf.config import load_config
from hrf.training.trainer import prepare_run
from tests.conftest import assert_rises, paired_reward_change
from tests.test_config import PAPER

BASE = os.environ.get("HRF_TEST_FACES_MODEL", "hrf:faces32")
PRESETS = PAPER.parent / "faces32"
SMALL = ["sampling.num_steps=10", "train.max_epochs=5", "train.sample_batch_size=64", "train.train_batch_size=128",
         f"model.path={BASE}", "output.grid_every=0"]


@pytest.mark.slow
@pytest.mark.parametrize("preset,extra", [
    ("incompressibility-ddpo", ["train.references=64"]),
    ("smile-hrf", ["schedule.windows=[[2,4],[4,6],[6,8]]", "schedule.iterations=[2,2,1]", "train.references=8",
                   "train.lr=1e-3"]),
])
def test_fine_tuning_raises_the_reward(preset, extra, tmp_path):
    cfg = load_config(PRESETS / f"{preset}.toml", SMALL + extra)
    trainer = prepare_run(cfg, tmp_path / preset, progress=False)
    assert len(trainer.train()) == 5
    assert_rises(paired_reward_change(str(tmp_path / preset / "final"), BASE, cfg.reward.name))
