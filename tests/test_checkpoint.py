"""Checkpoints: each epoch written once, a complete checkpoint at every moment of a write, atomic run files."""

from __future__ import annotations

import os
import pathlib

import pytest

import hrf.training.checkpoint as checkpoint
import hrf.training.trainer as trainer_module
from hrf.training.checkpoint import checkpoint_dirs, save_checkpoint
from hrf.training.run_dir import train_to_completion
from tests.test_trainer import _cfg, _run


def test_each_epoch_is_checkpointed_once(tmp_path, monkeypatch):
    """checkpoint_every = 2 over 3 epochs: epoch 2, then the last epoch 3, once (not 3 twice)."""
    written = []

    def recording(run_dir, epoch, *args, **kwargs):
        written.append(epoch)
        return save_checkpoint(run_dir, epoch, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", recording)
    cfg = _cfg("windows", max_epochs=3)
    cfg.output.checkpoint_every = 2
    _run(cfg, tmp_path / "run").train()
    assert written == [2, 3]


def _one_epoch_run(path):
    cfg = _cfg("windows", max_epochs=1)
    cfg.output.keep_checkpoints = 1
    cfg.output.grid_every = 0
    trainer = _run(cfg, path)
    trainer.train()
    return trainer


def _resumed_epoch(path) -> int:
    return _run(None, path, resume=True).epoch


def test_a_kill_between_the_renames_of_a_rewrite_leaves_a_checkpoint(tmp_path, monkeypatch):
    """Rewriting epoch 1 with keep_checkpoints = 1: the old copy goes aside, the new one fails to land."""
    trainer = _one_epoch_run(tmp_path / "run")
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the new checkpoint's rename into place
            raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "run", 1, trainer.model, trainer.train_scheduler, trainer.state_dict(), 1)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert len(checkpoint_dirs(tmp_path / "run")) == 1
    assert _resumed_epoch(tmp_path / "run") == 1
    # the next write puts the epoch back under its own name and drops the aside copy
    save_checkpoint(tmp_path / "run", 1, trainer.model, trainer.train_scheduler, trainer.state_dict(), 1)
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["epoch_000001"]


def test_a_kill_before_pruning_leaves_the_new_checkpoint(tmp_path, monkeypatch):
    """keep_checkpoints = 1: killed while epoch 2's checkpoint prunes epoch 1's, both are there; resume takes 2."""
    cfg = _cfg("windows", max_epochs=2)
    cfg.output.keep_checkpoints = 1
    cfg.output.grid_every = 0
    trainer = _run(cfg, tmp_path / "run")

    def dying_rmtree(path, ignore_errors=False):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(checkpoint.shutil, "rmtree", dying_rmtree)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.undo()
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["epoch_000001", "epoch_000002"]
    assert _resumed_epoch(tmp_path / "run") == 2


def test_run_files_are_never_written_in_place(tmp_path, monkeypatch):
    """config.toml, derived.json and summary.json go through a temporary file renamed over them."""
    from hrf.models import save_model, tiny_unet
    from tests.helpers import celebahq_like_scheduler

    real_write = pathlib.Path.write_text

    def guarded(self, *args, **kwargs):
        assert self.name not in ("config.toml", "derived.json", "summary.json"), f"{self.name} written in place"
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", guarded)
    cfg = _cfg("windows", max_epochs=1)
    cfg.model.path = str(save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model"))
    train_to_completion(cfg, tmp_path / "run", progress=False)
    assert {"config.toml", "derived.json", "summary.json"} <= {p.name for p in (tmp_path / "run").iterdir()}
