"""A catalogue of bad inputs: each gives exit code 2, one line on stderr naming problem and fix, and
leaves every existing file intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hrf.cli.main import main
from hrf.models import save_model, tiny_unet
from tests.helpers import celebahq_like_scheduler, write_run_config


def wrong_shape(images):
    return images.mean(dim=(1, 2, 3))[:1], {}


def infinite(images):
    return images.mean(dim=(1, 2, 3)) / 0.0, {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model directory, a valid config, a finished run and a run with a corrupt checkpoint."""
    root = tmp_path_factory.mktemp("bad")
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), root / "model")
    cfg = write_run_config(
        root / "ok.toml",
        model,
        train={"references": 2, "branches": 2, "max_epochs": 1, "sample_batch_size": 4},
        schedule={"iterations": [1]},
    )
    assert main(["train", "--config", str(cfg), "--out", str(root / "run"), "--no-progress"]) == 0
    assert main(["train", "--config", str(cfg), "--out", str(root / "corrupt"), "--no-progress"]) == 0
    ckpt = next((root / "corrupt" / "checkpoints").iterdir())
    (ckpt / "state.pt").write_bytes((ckpt / "state.pt").read_bytes()[:100])
    (root / "nockpt").mkdir()
    (root / "nockpt" / "config.toml").write_text(cfg.read_text())
    (root / "notmodel").mkdir()
    (root / "afile").write_text("x")
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# A training command on the tiny config; each case adds what breaks it.
TRAIN = ["train", "--config", "{root}/ok.toml", "--out", "{root}/x"]
CASES = {
    "unknown key with suggestion": ([*TRAIN, "--set", "train.lrr=1"], "did you mean 'train.lr'"),
    "wrong type": ([*TRAIN, "--set", "train.references=two"], "train.references must be int"),
    "zero size": ([*TRAIN, "--set", "train.branches=0"], "train.branches must be > 0"),
    "negative lr": ([*TRAIN, "--set", "train.lr=-1"], "train.lr must be > 0"),
    "window outside 0..T-1": ([*TRAIN, "--set", "schedule.windows=[[1,9]]"], "outside 0..4"),
    "reversed window": ([*TRAIN, "--set", "schedule.windows=[[3,1]]"], "reversed"),
    "empty windows": ([*TRAIN, "--set", "schedule.windows=[]"], "needs schedule.windows"),
    "iterations mismatch": ([*TRAIN, "--set", "schedule.iterations=[1,1]"], "2 entries for 1 windows"),
    "T beyond train steps": (
        [*TRAIN, "--set", "sampling.num_steps=5000", "--set", "schedule.windows=[[1,2]]"],
        "between 1 and the model's 1000 train steps",
    ),
    "missing model dir": ([*TRAIN, "--set", "model.path={root}/nope"], "does not exist"),
    "non-diffusers model dir": (
        ["sample", "--model", "{root}/notmodel", "--out", "{root}/x"],
        "not a diffusers model directory",
    ),
    "model path is a file": (["sample", "--model", "{root}/afile", "--out", "{root}/x"], "is a file"),
    "hub id offline": (
        ["sample", "--model", "google/ddpm-celebahq-256", "--out", "{root}/x"],
        "huggingface-cli download",
    ),
    "unregistered reward": ([*TRAIN, "--set", "reward.name=jpeg"], "unknown reward 'jpeg'"),
    "reward module does not import": ([*TRAIN, "--set", "reward.name=no_such_mod:f"], "cannot import module"),
    "reward wrong shape": (
        [*TRAIN, "--force", "--set", "reward.name=tests.test_bad_inputs:wrong_shape"],
        "must return shape (4,)",
    ),
    "reward inf": ([*TRAIN, "--force", "--set", "reward.name=tests.test_bad_inputs:infinite"], "non-finite values"),
    "unwritable output": (
        ["train", "--config", "{root}/ok.toml", "--out", "{root}/afile/sub"],
        "cannot create output directory",
    ),
    "run dir holds another run": (
        ["train", "--config", "{root}/ok.toml", "--out", "{root}/run"],
        "--resume to continue",
    ),
    "resume without run": (["train", "--resume", "{root}/notmodel"], "no run to resume"),
    "resume without checkpoint": (["train", "--resume", "{root}/nockpt"], "no complete checkpoint"),
    "corrupt checkpoint": (["train", "--resume", "{root}/corrupt"], "unreadable"),
    "resume with changed config": (
        ["train", "--resume", "{root}/run", "--config", "{root}/ok.toml", "--set", "train.seed=5"],
        "train.seed: 0 -> 5",
    ),
    "resume with a changed lr": (
        ["train", "--resume", "{root}/run", "--set", "train.lr=2e-3"],
        "train.lr: 0.001 -> 0.002); pass --allow-config-change",
    ),
    "resume with another LoRA rank": (
        ["train", "--resume", "{root}/run", "--allow-config-change", "--set", "model.lora_rank=2"],
        "model.lora_rank cannot change when resuming",
    ),
    "missing config file": (["train", "--config", "{root}/none.toml", "--out", "{root}/x"], "does not exist"),
    "invalid TOML": (["train", "--config", "{root}/afile", "--out", "{root}/x"], "not valid TOML"),
    "bad override syntax": ([*TRAIN, "--set", "train.lr"], "must look like section.key=value"),
    "no out nor resume": (["train", "--config", "{root}/ok.toml"], "pass --out DIR"),
    "negative number": (
        ["sample", "--model", "{root}/model", "--out", "{root}/x", "--num", "-4"],
        "must be at least 1",
    ),
    "non-number": (
        ["sample", "--model", "{root}/model", "--out", "{root}/x", "--steps", "many"],
        "is not a whole number",
    ),
    "aesthetic without weights": ([*TRAIN, "--set", "reward.name=aesthetic"], "needs reward.options.clip_path"),
    "group norm with one branch": ([*TRAIN, "--set", "train.branches=1"], "needs train.branches ≥ 2"),
    "unknown mixed precision": ([*TRAIN, "--set", "model.mixed_precision=fp8"], "mixed_precision"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, world, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv, expected = CASES[name]
    fresh = str(world / ("out-" + name.replace(" ", "-")))  # each case its own new output directory
    argv = [a.replace("{root}/x", fresh).replace("{root}", str(world)) for a in argv]
    before = _snapshot(world)
    try:
        code = main(argv + (["--no-progress"] if argv[0] == "train" else []))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    assert expected in err[0], err[0]
    after = _snapshot(world)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing existing changed
    assert not any(k.startswith(str(world / "run")) for k in set(after) - set(before))


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25
