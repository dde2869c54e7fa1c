"""A catalogue of bad inputs: each gives exit code 2, one line on stderr naming problem and fix, and
leaves every existing file intact."""

from __future__ import annotations

import hashlib
import sys
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


# ---------------------------------------------------------------- every file the CLI reads, spoiled

# How a new user might hand a file over: empty, cut short, binary, valid text of the wrong kind.
SPOILERS = {
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "binary": lambda data: b"\xff\xfe\x00\x89PNG\r\n\x1a\n\x00" * 4,
    "wrong type": lambda data: b"[1, 2, 3]\n",
}
# name: (what to copy from the world, the file inside the copy to spoil (None: the copy itself), the command)
SAMPLE = ["sample", "--model", "{copy}", "--out", "{out}", "--num", "2", "--steps", "2"]
RESUME = ["train", "--resume", "{copy}", "--set", "train.max_epochs=2", "--no-progress"]
PRETRAIN = ["pretrain", "--data", "{copy}", "--out", "{out}", "--steps", "1", "--size", "8"]
EVALUATE = ["evaluate", "--model", "{root}/model", "--reference", "{copy}", "--num", "2", "--steps", "2"]
FILES = {
    "config": ("ok.toml", None, ["train", "--config", "{copy}", "--out", "{out}", "--no-progress"]),
    "model config.json": ("model", "config.json", SAMPLE),
    "model weights": ("model", "diffusion_pytorch_model.safetensors", SAMPLE),
    "model scheduler": ("model", "scheduler_config.json", SAMPLE),
    "run config.toml": ("run", "config.toml", RESUME),
    "run metrics.jsonl": ("run", "metrics.jsonl", RESUME),
    "run checkpoint state": ("run", "checkpoints/epoch_000001/state.pt", RESUME),
    "run checkpoint model": ("run", "checkpoints/epoch_000001/model/config.json", RESUME),
    "pretraining image": ("images", "a.png", PRETRAIN),
    "pretraining archive": ("images.npz", None, PRETRAIN),
    "reference image": ("images", "a.png", [*EVALUATE, "--out", "{out}"]),
    "reference archive": ("images.npz", None, [*EVALUATE, "--out", "{out}"]),
    "reward module": (
        "rewards/spoilt_reward.py",
        None,
        [*TRAIN[:3], "--out", "{out}", "--set", "reward.name=spoilt_reward:f", "--no-progress"],
    ),
}


@pytest.fixture(scope="module")
def inputs(world):
    """The world plus what the spoiled-file cases copy: an image folder, an archive, a reward module."""
    import numpy as np
    from PIL import Image

    (world / "images").mkdir(exist_ok=True)
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(world / "images" / f"{'abc'[i]}.png")
    np.savez(world / "images.npz", images=np.zeros((3, 8, 8, 3), np.uint8))
    (world / "rewards").mkdir(exist_ok=True)
    (world / "rewards" / "spoilt_reward.py").write_text("def f(images):\n    return (images.mean(dim=(1, 2, 3)))\n")
    return world


def _spoiled_copy(world: Path, name: str, kind: str) -> tuple[Path, Path]:
    """A fresh copy of the case's source with its file spoiled: (the copy, the spoiled file)."""
    import shutil

    source, inner, _ = FILES[name]
    copy = world / "spoiled" / f"{name}-{kind}".replace(" ", "-") / Path(source).name
    copy.parent.mkdir(parents=True)
    (shutil.copytree if (world / source).is_dir() else shutil.copy)(world / source, copy)
    spoiled = copy / inner if inner else copy
    spoiled.write_bytes(SPOILERS[kind](spoiled.read_bytes()))
    return copy, spoiled


@pytest.mark.parametrize("kind", sorted(SPOILERS))
@pytest.mark.parametrize("name", sorted(FILES))
def test_a_spoiled_file_is_one_line_naming_it(name, kind, inputs, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    copy, spoiled = _spoiled_copy(inputs, name, kind)
    monkeypatch.syspath_prepend(str(copy.parent))  # the reward module's folder
    monkeypatch.delitem(sys.modules, "spoilt_reward", raising=False)  # each case imports its own copy
    out = copy.parent / "out"
    argv = [
        a.replace("{copy}", str(copy)).replace("{out}", str(out)).replace("{root}", str(inputs)) for a in FILES[name][2]
    ]
    before = _snapshot(copy.parent)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err
    assert str(spoiled.relative_to(copy.parent)).split("/")[0] in err[0] or str(copy) in err[0], err[0]
    # no file written or changed (the output directory itself may exist: commands check up front it is writable)
    assert _snapshot(copy.parent) == before


def test_an_unreadable_config_is_one_line(world, capsys, monkeypatch):
    """A file the user may not read (chmod does not stop root, so the refusal is simulated)."""
    import pathlib

    real = pathlib.Path.read_bytes

    def refuse(self):
        if self.name == "ok.toml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    assert main(["train", "--config", str(world / "ok.toml"), "--out", str(world / "unreadable")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "cannot read config file" in err[0] and "ok.toml" in err[0] and "Permission denied" in err[0]
    )
    assert not (world / "unreadable").exists()


def test_an_empty_config_file_is_refused_not_run_on_the_defaults(world, capsys):
    (world / "blank.toml").write_text("# nothing yet\n")
    assert main(["train", "--config", str(world / "blank.toml"), "--out", str(world / "blank")]) == 2
    assert "is empty" in capsys.readouterr().err and not (world / "blank").exists()
