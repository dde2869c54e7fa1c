"""Run directories: the library never imports the CLI; resume with overrides applies them to the saved config."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from hrf.cli.main import main
from hrf.config import config_changes, load_config
from hrf.errors import HrfError
from hrf.models import save_model, tiny_unet
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler, write_run_config

SRC = Path(__file__).resolve().parents[1] / "src" / "hrf"


def test_no_library_module_imports_the_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "cli" or rel.name == "__main__.py":  # the entry points sit above the CLI
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{rel}: {n}" for n in names if n == "hrf.cli" or n.startswith("hrf.cli.")]
    assert not offenders, offenders


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path_factory.mktemp("m") / "model")


def _ddpo(path: Path, model: Path, epochs: int, **train) -> Path:
    """A DDPO_IS config: valid as saved, unlike the defaults (one branch with advantage_norm='group')."""
    return write_run_config(
        path,
        model,
        schedule={"kind": "full", "windows": [], "iterations": []},
        train={"branches": 1, "advantage_norm": "batch", "max_epochs": epochs, **train},
        output={"grid_every": 0},
    )


def _weights(run: Path) -> list[torch.Tensor]:
    return list(UNet2DModel.from_pretrained(run / "final").parameters())


@pytest.mark.slow
def test_resume_with_more_epochs_continues_the_saved_config(tmp_path, model):
    """`--resume DIR --set train.max_epochs=3` ends where a straight 3-epoch run ends, bit for bit."""
    quiet = ["--no-progress"]
    for run, epochs in (("a", 3), ("b", 2)):
        config = _ddpo(tmp_path / f"{epochs}.toml", model, epochs)
        assert main(["train", "--config", str(config), "--out", str(tmp_path / run)] + quiet) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--set", "train.max_epochs=3"] + quiet) == 0
    assert not config_changes(load_config(tmp_path / "a" / "config.toml"), load_config(tmp_path / "b" / "config.toml"))
    for p, q in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b"), strict=True):
        assert torch.equal(p, q)
    assert [json.loads(x)["epoch"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    log = [json.loads(x) for x in (tmp_path / "b" / "config_changes.jsonl").read_text().splitlines()]
    assert log == [{"resumed_at_epoch": 2, "changes": ["train.max_epochs: 2 -> 3"]}]
    # --allow-config-change applies the overrides to the saved config too, never to the defaults
    assert (
        main(
            [
                "train",
                "--resume",
                str(tmp_path / "b"),
                "--allow-config-change",
                "--set",
                "train.seed=5",
                "--set",
                "train.max_epochs=4",
            ]
            + quiet
        )
        == 0
    )
    changed = config_changes(load_config(tmp_path / "a" / "config.toml"), load_config(tmp_path / "b" / "config.toml"))
    assert changed == {"train.max_epochs": (3, 4), "train.seed": (0, 5)}


def test_changed_optimizer_settings_reach_the_optimizer(tmp_path, model):
    """A resumed run's new lr and weight decay replace what the optimizer's state dict brought back."""
    cfg = load_config(_ddpo(tmp_path / "c.toml", model, 2, warmup_epochs=4, lr=1e-3))
    prepare_run(cfg, tmp_path / "r", progress=False).train()
    trainer = prepare_run(
        None,
        tmp_path / "r",
        resume=True,
        allow_config_change=True,
        progress=False,
        overrides=["train.lr=2e-3", "train.weight_decay=0.05", "train.max_epochs=3"],
    )
    assert set(config_changes(cfg, trainer.cfg)) == {"train.lr", "train.weight_decay", "train.max_epochs"}
    group = trainer.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(2e-3 * 3 / 4, rel=1e-12)  # 2 of 4 warm-up steps taken: factor (2+1)/4
    assert group["weight_decay"] == 0.05
    history = trainer.train()
    assert history[0]["lr"] == pytest.approx(2e-3, rel=1e-12)  # warm-up over after the 3rd step


def test_refused_changes_name_the_field_and_leave_the_run_untouched(tmp_path, model):
    cfg = load_config(write_run_config(tmp_path / "c.toml", model, train={"max_epochs": 1}, output={"grid_every": 0}))
    prepare_run(cfg, tmp_path / "r", progress=False).train()
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(HrfError, match=r"train.seed: 0 -> 5\); pass --allow-config-change"):
        prepare_run(None, tmp_path / "r", resume=True, overrides=["train.seed=5"], progress=False)
    with pytest.raises(HrfError, match="schedule.kind cannot change when resuming"):
        prepare_run(
            None,
            tmp_path / "r",
            resume=True,
            allow_config_change=True,
            progress=False,
            overrides=[
                "schedule.kind='dynamic'",
                "schedule.windows=[]",
                "schedule.iterations=[]",
                "schedule.candidates=[0,2]",
            ],
        )
    grey = save_model(tiny_unet(8, channels=1), celebahq_like_scheduler(), tmp_path / "grey")
    with pytest.raises(HrfError, match="does not fit the model of model.path="):
        prepare_run(
            None,
            tmp_path / "r",
            resume=True,
            allow_config_change=True,
            progress=False,
            overrides=[f"model.path='{grey}'"],
        )
    assert before == {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    free = prepare_run(
        None,
        tmp_path / "r",
        resume=True,
        progress=False,
        overrides=["train.max_epochs=2", "output.keep_checkpoints=1", "train.train_batch_size=3"],
    )
    assert (free.cfg.train.max_epochs, free.cfg.output.keep_checkpoints, free.cfg.train.train_batch_size) == (2, 1, 3)


@pytest.mark.slow
def test_train_to_completion_reuses_a_finished_run_resumes_an_interrupted_one(tmp_path, model):
    from hrf.training.run_dir import train_to_completion

    window = {"iterations": [3]}  # the window lasts 3 epochs: a run of 2 can be continued
    cfg = load_config(write_run_config(tmp_path / "c.toml", model, schedule=window, train={"max_epochs": 2}))
    out = tmp_path / "run"
    assert train_to_completion(cfg, out, progress=False) == out / "final"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["trajectories"] == 12
    stamp = (out / "summary.json").stat().st_mtime_ns, (out / "metrics.jsonl").read_text()
    train_to_completion(cfg, out, progress=False)  # the same config, finished: nothing is trained
    assert ((out / "summary.json").stat().st_mtime_ns, (out / "metrics.jsonl").read_text()) == stamp
    # interrupted after epoch 2 of 3: no summary, a checkpoint; the same config resumes from it
    (out / "summary.json").unlink()
    longer = load_config(write_run_config(tmp_path / "c3.toml", model, schedule=window, train={"max_epochs": 3}))
    prepare_run(None, out, resume=True, overrides=["train.max_epochs=3"], progress=False)  # config.toml: 3 epochs
    train_to_completion(longer, out, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3] and lines[:2] == stamp[1].splitlines()
    # another config starts over
    other = load_config(
        write_run_config(tmp_path / "c4.toml", model, schedule=window, train={"max_epochs": 1, "lr": 5e-4})
    )
    train_to_completion(other, out, progress=False)
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
