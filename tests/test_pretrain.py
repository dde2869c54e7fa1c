"""`hrf pretrain`: the loss goes down, resuming is exact, another run is never overwritten, and a user's own
images (a folder or a .npz) train a model or fail with one line before anything is written."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import UNet2DModel

from hrf.cli.main import main
from hrf.data.faces import VERSION as FACES_VERSION
from hrf.errors import HrfError
from hrf.training.pretrain import (
    PretrainConfig,
    _lr_at,
    ddpm_train_scheduler,
    make_batch_fn,
    pretrain,
    training_target,
)


def _cfg(**kw) -> PretrainConfig:
    base = dict(data="faces", size=8, steps=6, batch_size=8, lr=2e-3, warmup_steps=2, checkpoint_minutes=1e6)
    return PretrainConfig(**{**base, **kw})


def test_batches_are_seeded_and_sized():
    faces = make_batch_fn("faces", 16, 5)
    assert faces(3).shape == (5, 3, 16, 16) and torch.equal(faces(3), faces(3))
    assert not torch.equal(faces(3), faces(4))
    digits = make_batch_fn("digits", 16, 4)(0)
    assert digits.shape == (4, 1, 16, 16) and digits.min() >= -1 and digits.max() <= 1


def test_lr_warms_up_holds_then_anneals_to_zero():
    cfg = _cfg(steps=100, lr=1.0, warmup_steps=10, decay_steps=40)
    lrs = [_lr_at(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0 and lrs[59] == 1.0  # warm-up, then constant
    assert lrs[60] == 1.0 and lrs[80] == pytest.approx(0.5)  # cosine: half-way down at mid-decay
    assert all(a >= b for a, b in zip(lrs[60:-1], lrs[61:], strict=True)) and lrs[99] == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 39 / 40))
    )
    assert _lr_at(_cfg(steps=100, lr=1.0, warmup_steps=10), 99) == 1.0  # decay_steps=0: constant


def test_targets_match_the_definitions_in_float64():
    """v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x0 with ᾱ the cumulative product of 1 − β over the linear betas."""
    sched = ddpm_train_scheduler("v_prediction")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    a = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].view(-1, 1, 1, 1)
    v = a.sqrt() * noise.double() - (1 - a).sqrt() * x0.double()
    target = training_target(sched, x0, noise, t, "v_prediction").double()
    torch.testing.assert_close(target, v, rtol=0, atol=1e-5)  # float32 ᾱ
    noisy = a.sqrt() * x0.double() + (1 - a).sqrt() * noise.double()
    torch.testing.assert_close(sched.add_noise(x0, noise, t).double(), noisy, rtol=0, atol=1e-5)  # float32 ᾱ
    assert training_target(sched, x0, noise, t, "epsilon") is noise


def test_v_prediction_run_saves_a_v_prediction_scheduler(tmp_path):
    pretrain(_cfg(prediction="v_prediction"), tmp_path / "run", progress=False)
    config = json.loads((tmp_path / "run" / "model" / "scheduler_config.json").read_text())
    assert config["prediction_type"] == "v_prediction"
    with pytest.raises(HrfError, match="unknown prediction"):
        pretrain(_cfg(prediction="x0"), tmp_path / "other", progress=False)


@pytest.mark.slow
def test_tiny_run_lowers_the_loss(tmp_path):
    pretrain(_cfg(data="digits", steps=60, batch_size=16, lr=3e-3, warmup_steps=5), tmp_path / "run", progress=False)
    losses = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["losses"]
    # ε-prediction starts at MSE ≈ 1 (output ≈ 0 against unit noise); learning the data must get far below.
    assert losses[0] > 0.8 and sum(losses[-20:]) / 20 < 0.35
    model = UNet2DModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.sample_size == 8 and model.config.in_channels == 1
    saved = json.loads((tmp_path / "run" / "model" / "hrf_info.json").read_text())
    assert saved["steps_done"] == 60 and saved["config"]["data"] == "digits"
    assert json.loads((tmp_path / "run" / "losses.json").read_text())[0]["step"] == 60


def test_resume_is_bit_identical(tmp_path):
    pretrain(_cfg(steps=6), tmp_path / "once", progress=False)
    pretrain(_cfg(steps=3), tmp_path / "twice", progress=False)
    pretrain(_cfg(steps=6), tmp_path / "twice", resume=True, progress=False, command="hrf pretrain ... --resume")
    info = json.loads((tmp_path / "twice" / "model" / "hrf_info.json").read_text())
    assert [(h["from_step"], h["to_step"]) for h in info["commands"]] == [(0, 3), (3, 6)]
    assert info["command"] == info["commands"][-1]["command"] == "hrf pretrain ... --resume"
    once = torch.load(tmp_path / "once" / "checkpoint.pt", weights_only=True)
    twice = torch.load(tmp_path / "twice" / "checkpoint.pt", weights_only=True)
    assert once["step"] == twice["step"] == 6 and once["losses"] == twice["losses"]
    for name, value in once["model"].items():
        assert torch.equal(value, twice["model"][name]), name
    assert once["ema"]["optimization_step"] == twice["ema"]["optimization_step"] == 6
    for a, b in zip(once["ema"]["shadow_params"], twice["ema"]["shadow_params"], strict=True):
        assert torch.equal(a, b)


def test_refuses_to_overwrite_and_to_change_settings(tmp_path):
    pretrain(_cfg(steps=2), tmp_path / "run", progress=False)
    with pytest.raises(HrfError, match="--resume"):
        pretrain(_cfg(steps=2), tmp_path / "run", progress=False)
    with pytest.raises(HrfError, match="lr=0.002"):
        pretrain(_cfg(steps=4, lr=1e-4), tmp_path / "run", resume=True, progress=False)


def test_cli_pretrain_and_bad_input(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["pretrain", "--data", "faces", "--size", "8", "--steps", "2", "--batch-size", "4", "--out", str(out)]
    assert main(args) == 0
    info = json.loads((out / "model" / "hrf_info.json").read_text())
    assert info["steps_done"] == 2 and info["config"]["preset"] == "tiny"
    assert info["faces_version"] == FACES_VERSION  # which drawing of the faces the model learned
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a pretraining run" in err[0]
    assert main(args[:-2] + ["--out", str(tmp_path / "x"), "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    # --init continues the first run's model: zero learning rate after it leaves its weights as they were
    tuned = tmp_path / "tuned"
    init = ["--init", str(out / "model"), "--lr", "1e-30", "--warmup-steps", "0"]
    assert main(args[:-2] + ["--out", str(tuned), *init]) == 0
    assert json.loads((tuned / "model" / "hrf_info.json").read_text())["config"]["init"] == str(out / "model")
    before, after = (UNet2DModel.from_pretrained(d / "model").state_dict() for d in (out, tuned))
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert main(args[:-2] + ["--out", str(tmp_path / "y"), "--init", str(out / "model"), "--size", "16"]) == 2
    assert "but the run asks for" in capsys.readouterr().err
