"""Crash safety: SIGKILL during rollout, update and checkpoint write; resume ends bit-identical.

Also the numerical guards (a non-finite loss stops the run and keeps the last good checkpoint) and a
distributed fault (one rank raising stops both, with the error shown, never a hang).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from hrf.errors import HrfError
from hrf.models import save_model, tiny_unet
from hrf.training.checkpoint import checkpoint_dirs
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler, free_port, subprocess_env, write_run_config

# Runs `hrf ...` in a child that SIGKILLs itself at the N-th call of a function (fault injection).
KILLER = r"""
import os, signal, sys
import hrf.training.trainer as trainer
import hrf.training.checkpoint as checkpoint
target, nth = sys.argv[1], int(sys.argv[2])
count = [0]
def killing(fn):
    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped
if target == "rollout":
    trainer.rollout = killing(trainer.rollout)
elif target == "update":
    trainer.ppo_clip_loss = killing(trainer.ppo_clip_loss)
else:  # between the model directory and state.pt of a checkpoint, before its rename
    checkpoint.torch.save = killing(checkpoint.torch.save)
from hrf.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def _config(path: Path, model: Path, epochs: int = 4) -> Path:
    return write_run_config(
        path,
        model,
        schedule={"windows": [[0, 1], [2, 3]], "iterations": [2, 2]},
        train={"max_epochs": epochs},
        output={"keep_checkpoints": 2, "grid_every": 0},
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), root / "model")
    cfg = _config(root / "c.toml", model)
    from hrf.cli.main import main

    assert main(["train", "--config", str(cfg), "--out", str(root / "straight"), "--no-progress"]) == 0
    return root, cfg


@pytest.mark.slow
@pytest.mark.parametrize("target,nth", [("rollout", 3), ("update", 7), ("checkpoint", 2)])
def test_sigkill_then_resume_is_bit_identical(reference_run, target, nth):
    root, cfg = reference_run
    out = root / f"killed-{target}"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            target,
            str(nth),
            "train",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--no-progress",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    finished_epochs = len((out / "metrics.jsonl").read_text().splitlines()) if (out / "metrics.jsonl").exists() else 0
    ckpts = checkpoint_dirs(out)
    assert ckpts, "a checkpoint survives the kill"
    kept = int(ckpts[-1].name.split("_")[1])
    assert kept >= finished_epochs - 1  # at most one epoch lost
    resumed = prepare_run(None, out, resume=True, progress=False)
    resumed.train()
    straight = UNet2DModel.from_pretrained(root / "straight" / "final")
    final = UNet2DModel.from_pretrained(out / "final")
    for (name, p), q in zip(straight.named_parameters(), final.parameters(), strict=True):
        assert torch.equal(p, q), name
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]  # no duplicated or missing epoch lines
    assert not list((out / "checkpoints").glob(".tmp-*"))  # a half-written checkpoint was cleaned up
    assert len(checkpoint_dirs(out)) <= 2  # pruned to keep_checkpoints


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    from hrf.config import load_config

    cfg = load_config(_config(tmp_path / "c.toml", model, epochs=3))
    trainer = prepare_run(cfg, tmp_path / "run", progress=False)
    trainer.cfg.train.max_epochs = 1
    trainer.train()
    good = checkpoint_dirs(tmp_path / "run")[-1]
    before = (good / "state.pt").read_bytes()
    trainer.cfg.train.max_epochs = 3
    import hrf.training.trainer as module

    real = module.ppo_clip_loss
    monkeypatch.setattr(module, "ppo_clip_loss", lambda *a: (real(*a)[0] * float("nan"), real(*a)[1]))
    with pytest.raises(HrfError, match="non-finite loss at epoch 1"):
        trainer.train()
    assert checkpoint_dirs(tmp_path / "run")[-1] == good and (good / "state.pt").read_bytes() == before


def failing_on_rank_one(images):
    if os.environ.get("RANK") == "1":
        raise RuntimeError("reward server unreachable on rank 1")
    return images.mean(dim=(1, 2, 3)), {}


@pytest.mark.slow
def test_rank_failure_stops_the_whole_run(tmp_path):
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    cfg = _config(tmp_path / "c.toml", model)
    cfg.write_text(
        cfg.read_text()
        .replace("tests.test_trainer:brightness", "tests.test_crash:failing_on_rank_one")
        .replace("references = 2", "references = 4")
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "hrf",
            "train",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode != 0
    assert "reward server unreachable on rank 1" in run.stderr
