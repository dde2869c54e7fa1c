"""The trainer on tiny models: trained steps, resume, run directories, guards, options."""

from __future__ import annotations

import json

import pytest
import torch

from hrf.config import config_from_dict
from hrf.errors import HrfError
from hrf.models import tiny_unet
from hrf.training.run_dir import prepare_run
from hrf.training.trainer import epoch_generator, trainable_pairs
from tests.helpers import celebahq_like_scheduler


def brightness(images):
    return images.mean(dim=(1, 2, 3)), {}


def nan_every_third(images):
    r = images.mean(dim=(1, 2, 3))
    r[::3] = float("nan")
    return r, {}


def _cfg(kind="windows", **train):
    sched = {
        "full": {"kind": "full"},
        "windows": {"kind": "windows", "windows": [[1, 2], [3, 4]], "iterations": [1, 2], "after_last": "hold"},
        "dynamic": {"kind": "dynamic", "candidates": [0, 2, 4], "probe_samples": 2},
    }[kind]
    t = {
        "references": 4,
        "branches": 1 if kind == "full" else 3,
        "max_epochs": 3,
        "sample_batch_size": 8,
        "train_batch_size": 8,
        "lr": 1e-3,
        "advantage_norm": "batch" if kind == "full" else "group",
    }
    t.update(train)
    return config_from_dict(
        {
            "sampling": {"num_steps": 6},
            "reward": {"name": "tests.test_trainer:brightness"},
            "schedule": sched,
            "train": t,
            "output": {"grid_every": 1},
        }
    )


def _run(cfg, out, **kw):
    return prepare_run(cfg, out, unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False, **kw)


def test_only_steps_after_each_start_are_trained(tmp_path, monkeypatch):
    trainer = _run(_cfg("windows", timestep_fraction=1.0), tmp_path / "run")
    seen = []
    original = trainer._pair_loss

    def spy(traj, adv, rows, steps):
        seen.append((traj.start[rows].clone(), steps.clone()))
        return original(traj, adv, rows, steps)

    monkeypatch.setattr(trainer, "_pair_loss", spy)
    metrics = trainer.run_epoch(0)
    starts = torch.cat([s for s, _ in seen])
    steps = torch.cat([k for _, k in seen])
    assert (steps >= starts).all() and (steps <= 4).all()  # step 5 → 6 is deterministic
    # every trainable step of every trajectory is trained exactly once: Σ over trajectories of (T − 1 − start)
    assert metrics["trained_pairs"] == len(steps)
    assert set(metrics["start_step_histogram"]) <= {1, 2}


def test_trainable_pairs_counts_and_fraction():
    trainable = torch.zeros(3, 6, dtype=torch.bool)
    trainable[0, 0:5] = True
    trainable[1, 2:5] = True
    trainable[2, 4:5] = True
    rows, steps = trainable_pairs(trainable, 1.0, torch.Generator())
    assert len(rows) == 9
    rows, steps = trainable_pairs(trainable, 0.5, torch.Generator().manual_seed(0))
    assert torch.bincount(rows).tolist() == [3, 2, 1]  # ceil(5/2), ceil(3/2), ceil(1/2)
    assert all(trainable[r, s] for r, s in zip(rows.tolist(), steps.tolist(), strict=True))


def test_trainable_steps_start_at_each_trajectorys_start(tmp_path):
    """The trainable mask of a sampled epoch: no step before a trajectory's start, every step from it to T − 2
    (that the loss trains exactly the masked pairs is ``test_only_steps_after_each_start_are_trained``)."""
    trainer = _run(_cfg("windows"), tmp_path / "run")
    traj, groups, *_ = trainer.sample_epoch(0)
    assert not traj.trainable[torch.arange(len(traj)), traj.start - 1].any()  # never before the start
    assert (traj.trainable.sum(1) == 5 - traj.start).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["full", "windows", "dynamic"])
def test_resume_is_bit_identical(tmp_path, kind):
    cfg = _cfg(kind, max_epochs=3)
    straight = _run(cfg, tmp_path / "a")
    straight.train()
    interrupted_cfg = _cfg(kind, max_epochs=3)
    first = _run(interrupted_cfg, tmp_path / "b")
    first.cfg.train.max_epochs = 1  # stop after one epoch, as if killed after its checkpoint
    first.train()
    resumed = prepare_run(
        None, tmp_path / "b", resume=True, unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False
    )
    assert resumed.epoch == 1
    resumed.train()
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    a = [json.loads(x)["reward_mean"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert a == [json.loads(x)["reward_mean"] for x in lines]


def test_run_directory_guards(tmp_path):
    cfg = _cfg("full", max_epochs=1)
    _run(cfg, tmp_path / "r").train()
    assert (tmp_path / "r" / "final" / "config.json").is_file()
    assert (tmp_path / "r" / "samples" / "epoch_0001.png").is_file()
    with pytest.raises(HrfError, match="already holds a run"):
        _run(cfg, tmp_path / "r")
    with pytest.raises(HrfError, match=r"train.lr: 0.001 -> 0.002"):
        _run(_cfg("full", max_epochs=1, lr=2e-3), tmp_path / "r", resume=True)
    with pytest.raises(HrfError, match="no run to resume"):
        _run(None, tmp_path / "empty", resume=True)
    _run(cfg, tmp_path / "r", force=True)  # --force starts over
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_nonfinite_rewards_error_or_drop(tmp_path):
    cfg = _cfg("full", max_epochs=1)
    cfg.reward.name = "tests.test_trainer:nan_every_third"
    with pytest.raises(HrfError, match="non-finite values"):
        _run(cfg, tmp_path / "e").train()
    cfg.reward.nonfinite = "drop"
    history = _run(cfg, tmp_path / "d").train()
    assert history[0]["nonfinite_dropped"] == 2 and torch.isfinite(torch.tensor(history[0]["reward_mean"]))


def test_kl_penalty_and_target_reward_stop(tmp_path):
    cfg = _cfg("windows", kl_coef=0.1, max_epochs=3)
    cfg.train.target_reward = -10.0  # reached at once
    trainer = _run(cfg, tmp_path / "k")
    history = trainer.train()
    assert len(history) == 1 and "target reward" in trainer.stopped_reason
    assert history[0]["kl_to_base"] == pytest.approx(0.0, abs=1e-9)  # first update: policy == base


def test_schedule_stop_ends_training(tmp_path):
    cfg = _cfg("windows", max_epochs=10)
    cfg.schedule.after_last = "stop"
    trainer = _run(cfg, tmp_path / "s")
    assert len(trainer.train()) == 3 and trainer.stopped_reason == "schedule finished"


def test_epoch_generators_are_independent_streams():
    a = torch.randn(3, generator=epoch_generator(0, 1, 0, 0))
    assert torch.equal(a, torch.randn(3, generator=epoch_generator(0, 1, 0, 0)))
    assert not torch.equal(a, torch.randn(3, generator=epoch_generator(0, 2, 0, 0)))
    assert not torch.equal(a, torch.randn(3, generator=epoch_generator(0, 1, 1, 0)))


def test_tensorboard_tracker_logs_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg("full", max_epochs=2)
    cfg.output.trackers = ["tensorboard"]
    trainer = _run(cfg, tmp_path / "tb")
    history = trainer.train()
    trainer.acc.end_training()
    events = EventAccumulator(str(tmp_path / "tb" / "trackers" / "hrf"))
    events.Reload()
    logged = events.Scalars("reward_mean")
    assert [e.step for e in logged] == [1, 2]
    assert [e.value for e in logged] == pytest.approx([h["reward_mean"] for h in history], rel=1e-6)
    assert len((tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()) == 2  # kept: resume reads it


def test_unknown_or_missing_trackers_are_one_line(tmp_path, monkeypatch):
    from hrf.training.trackers import tracker_kwargs

    with pytest.raises(HrfError, match="unknown tracker 'tensorbored'; choose from .*tensorboard"):
        tracker_kwargs(["tensorbored"], tmp_path)
    monkeypatch.setattr("accelerate.tracking.get_available_trackers", lambda: [])
    with pytest.raises(HrfError, match="the 'wandb' tracker is not installed; pip install wandb"):
        tracker_kwargs(["wandb"], tmp_path)
    assert tracker_kwargs([], tmp_path) == {}


def test_trainable_pairs_skip_the_last_stochastic_steps():
    trainable = torch.zeros(3, 6, dtype=torch.bool)
    trainable[0, 0:5] = True  # steps 0..4 stochastic, step 5 → 6 deterministic
    trainable[1, 3:5] = True
    trainable[2, 4:5] = True
    rows, steps = trainable_pairs(trainable, 1.0, torch.Generator(), skip_last=1)
    assert sorted(zip(rows.tolist(), steps.tolist(), strict=True)) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3)]
    rows, steps = trainable_pairs(trainable, 1.0, torch.Generator(), skip_last=2)
    assert sorted(zip(rows.tolist(), steps.tolist(), strict=True)) == [(0, 0), (0, 1), (0, 2)]


def test_skip_last_steps_is_counted_and_trained(tmp_path, monkeypatch):
    """The derived count and the pairs the trainer actually trains agree, and none is a skipped step."""
    trainer = _run(_cfg("full", skip_last_steps=1), tmp_path / "run")
    assert trainer.derived["trained_steps_per_trajectory"] == {"full (k=0)": 4}  # T = 6: steps 0..3
    seen = []
    original = trainer._pair_loss
    monkeypatch.setattr(
        trainer,
        "_pair_loss",
        lambda traj, adv, rows, steps: (seen.append(steps.clone()), original(traj, adv, rows, steps))[1],
    )
    metrics = trainer.run_epoch(0)
    steps = torch.cat(seen)
    assert steps.max() == 3 and metrics["trained_pairs"] == len(steps) == 4 * 4


def test_timestep_fraction_is_drawn_anew_for_each_inner_epoch(tmp_path, monkeypatch):
    """DDPO draws the trained subset of each trajectory's steps per inner epoch, not once per epoch."""
    trainer = _run(_cfg("full", timestep_fraction=0.5, inner_epochs=2, lr=1e-6, train_batch_size=64), tmp_path / "run")
    seen = []
    original = trainer._pair_loss

    def spy(traj, adv, rows, steps):
        seen.append(set(zip(rows.tolist(), steps.tolist(), strict=True)))
        return original(traj, adv, rows, steps)

    monkeypatch.setattr(trainer, "_pair_loss", spy)
    metrics = trainer.run_epoch(0)
    assert len(seen) == 2 and metrics["optimizer_updates"] == 2  # one micro-batch per inner epoch
    assert len(seen[0]) == len(seen[1]) == metrics["trained_pairs"] == 4 * 3  # 4 trajectories × ⌈5 × 0.5⌉ steps
    assert seen[0] != seen[1]


def nan_first_probe(images, calls=[]):  # noqa: B006 - counts calls within one test
    calls.append(len(images))
    r = images.mean(dim=(1, 2, 3))
    return (r * float("nan") if len(calls) == 1 else r), {}


def test_hrfd_leaves_out_candidates_without_a_finite_probe_reward(tmp_path):
    """Every probe of candidate 0 (the first reward call) is NaN: 0 is never chosen, and the epoch says so."""
    cfg = _cfg("dynamic")
    cfg.reward.name, cfg.reward.nonfinite = "tests.test_trainer:nan_first_probe", "drop"
    metrics = _run(cfg, tmp_path / "run").run_epoch(0)
    assert metrics["probe_candidates_excluded"] == 4  # candidate 0 for each of the 4 references
    assert 0 not in metrics["start_step_histogram"]
