"""Every paper preset builds its trainer against tiny stand-ins of the paper's networks, runs one epoch, saves.

The stand-ins are of the same classes as the real ones (a UNet2DModel; a CLIPModel and a LAION-shaped MLP
for the aesthetic reward) at tiny width; only the sizes are overridden, everything else is the preset.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel

from hrf.config import PRESETS, load_config
from hrf.models import save_model, tiny_unet
from hrf.rewards.aesthetic import AestheticMLP
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler, tiny_clip_dir

PAPER = PRESETS / "paper"
SMALL = [
    "train.references=2",
    "train.sample_batch_size=4",
    "train.train_batch_size=32",
    "train.max_epochs=1",
    "model.mixed_precision=no",
    "schedule.probe_samples=1",
    "schedule.candidates=[4,20,36]",
]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), root / "ddpm-celebahq-stand-in")
    clip = tiny_clip_dir(root)
    torch.manual_seed(0)
    torch.save(AestheticMLP(12).state_dict(), root / "laion-mlp.pth")
    return root, model, clip


# The fast tier runs one reward's three methods; the other rewards' presets differ in their reward and lr only.
FAST_REWARD = "celebahq-compressibility"


@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p.stem, marks=() if p.stem.startswith(f"{FAST_REWARD}-") else pytest.mark.slow)
        for p in sorted(PAPER.glob("*.toml"))
    ],
)
def test_preset_runs_one_epoch_on_stand_ins(preset, stand_ins, tmp_path):
    root, model, clip = stand_ins
    cfg0 = load_config(PAPER / f"{preset}.toml")
    overrides = [f"model.path={model}"] + [
        o for o in SMALL if o.split("=")[0].split(".")[0] != "schedule" or cfg0.schedule.kind == "dynamic"
    ]
    if cfg0.train.branches > 1:
        overrides.append("train.branches=2")
    if cfg0.reward.name == "aesthetic":
        overrides += [f"reward.options.clip_path={clip}", f"reward.options.mlp_path={root / 'laion-mlp.pth'}"]
    cfg = load_config(PAPER / f"{preset}.toml", overrides)
    assert (cfg.train.lr, cfg.schedule.kind, cfg.sampling.num_steps) == (cfg0.train.lr, cfg0.schedule.kind, 40)
    trainer = prepare_run(cfg, tmp_path / "run", progress=False)
    history = trainer.train()
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["loss"]))
    assert history[0]["optimizer_updates"] == 1
    assert isinstance(UNet2DModel.from_pretrained(tmp_path / "run" / "final"), UNet2DModel)


@pytest.mark.slow
def test_bf16_autocast_keeps_trainable_weights_fp32(stand_ins, tmp_path):
    """Mixed precision autocasts the UNet's compute; the weights the optimizer updates stay float32."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # accelerate keeps one precision per process; this test needs its own
    _, model, _ = stand_ins
    cfg = load_config(
        PAPER / "celebahq-compressibility-hrf.toml",
        [f"model.path={model}", "model.mixed_precision=bf16", "train.branches=2", *SMALL[:4]],
    )
    trainer = prepare_run(cfg, tmp_path / "run", progress=False)
    history = trainer.train()
    assert torch.isfinite(torch.tensor(history[0]["loss"]))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    AcceleratorState._reset_state(True)
