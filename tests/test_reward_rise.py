"""End to end on the shipped faces model (fixed seed): DDPO_IS raises JPEG compressibility, HRF raises JPEG
incompressibility and the learned smile reward.

The fine-tuned and base models are sampled from the same initial noise, so the paired difference in
reward measures what training changed. Measured with the test's own paired evaluation (96 samples), with
the presets' ``train.skip_last_steps = 1`` (the test runs the starred budgets):
- DDPO_IS on compressibility, 64 trajectories per epoch: +0.037 kB (7.5 s.e.) at 5 epochs, +0.020 (5.2 s.e.)
  at 3, +0.016 (4.6 s.e.) at 2*; at T = 5, +0.016 (3.9 s.e.) at 5 epochs;
- HRF on compressibility, 64 trajectories per epoch (its preset): +0.038 kB (5.8 s.e.) at 18 epochs, −0.007
  (−1.2 s.e.) at 12, +0.001 (0.3 s.e.) at 5; with 16 branches per reference (128 trajectories per epoch)
  +0.026 kB (5.4 s.e.) at 6 epochs and +0.010 (3.9 s.e.) at 2; at lr 3e-4 (64 per epoch, 6 epochs) the size
  rose (−0.058 kB);
- HRF on incompressibility, 16 branches per reference, 2 epochs: at T = 10 (windows [1, 2] then [2, 3])
  +0.017 kB (5.7 s.e.), +0.011 (3.5 s.e.) at seed 1; at T = 5 (windows [1, 2] twice, half the steps to
  sample and train) +0.025 (11.3 s.e.)*; its preset's 64 per epoch, 4 epochs at T = 10: +0.005 (1.3 s.e.);
- HRF on smile at lr 1e-3: +0.41 (9.4 s.e.) at 5 epochs, +0.50 (12.3 s.e.) at 3*.
Training every step instead (the σ = 0.01 step t = 100 → 0 included), DDPO_IS on compressibility gained
+0.0065 (2.1 s.e.) and HRF nothing measurable.
"""

from __future__ import annotations

import os

import pytest

from hrf.config import PRESETS, load_config
from hrf.training.run_dir import prepare_run
from tests.helpers import assert_rises, paired_reward_change

BASE = os.environ.get("HRF_TEST_FACES_MODEL", "hrf:faces32")
FACES32 = PRESETS / "faces32"
SMALL = [
    "sampling.num_steps=10",
    "train.max_epochs=5",
    "train.sample_batch_size=64",
    "train.train_batch_size=128",
    f"model.path={BASE}",
    "output.grid_every=0",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset,extra",
    [
        ("compressibility-ddpo", ["train.references=64", "train.max_epochs=2"]),
        (
            "incompressibility-hrf",
            [
                "sampling.num_steps=5",
                "schedule.windows=[[1,2],[1,2],[2,2]]",
                "schedule.iterations=[1,1,1]",
                "train.branches=16",
                "train.sample_batch_size=128",
                "train.max_epochs=2",
            ],
        ),
        (
            "smile-hrf",
            [
                "schedule.windows=[[2,4],[4,6],[6,7]]",
                "schedule.iterations=[2,2,1]",
                "train.references=8",
                "train.lr=1e-3",
                "train.max_epochs=3",
            ],
        ),
    ],
)
def test_fine_tuning_raises_the_reward(preset, extra, tmp_path):
    cfg = load_config(FACES32 / f"{preset}.toml", SMALL + extra)
    trainer = prepare_run(cfg, tmp_path / preset, progress=False)
    assert len(trainer.train()) == cfg.train.max_epochs
    change = paired_reward_change(str(tmp_path / preset / "final"), BASE, cfg.reward.name, cfg.sampling.num_steps)
    assert_rises(change)
