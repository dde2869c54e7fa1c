"""Two real processes (torchrun + gloo on CPU) run the same epoch plan as one process, and fail together."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hrf.config import load_config
from hrf.models import save_model, tiny_unet
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler, free_port, subprocess_env, write_run_config


def _run(cmd, tmp_path, timeout=240):
    return subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def _two_processes() -> list[str]:
    return [
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
        "c.toml",
        "--no-progress",
    ]


def nan_on_rank_one(images):
    """Brightness on rank 0; NaN on rank 1, as a reward failing on one process only."""
    value = float("nan") if os.environ.get("RANK") == "1" else 0.0
    return images.mean(dim=(1, 2, 3)) + value


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    model_dir = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    write_run_config(
        tmp_path / "c.toml", model_dir, train={"references": 4, "updates_per_epoch": 2, "warmup_epochs": 3}
    )
    # one process: the same config trained in this one (a subprocess would only add its imports)
    prepare_run(load_config(tmp_path / "c.toml"), tmp_path / "one", progress=False).train()
    multi = _run(_two_processes() + ["--out", "two"], tmp_path)
    assert multi.returncode == 0, multi.stderr[-3000:]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 2  # one process wrote the run directory, once per epoch
    for a, b in zip(one, two, strict=True):
        assert a["trajectories"] == b["trajectories"] == 12
        assert a["optimizer_updates"] == b["optimizer_updates"] == 2
    # warm-up over 3 epochs × 2 updates: accelerate stepped a prepared scheduler once per process per update
    assert [a["lr"] for a in one] == [b["lr"] for b in two] == pytest.approx([1e-3 * 3 / 6, 1e-3 * 5 / 6])
    assert json.loads((tmp_path / "two" / "derived.json").read_text())["processes"] == 2
    assert (tmp_path / "two" / "final" / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.slow
def test_an_error_on_one_process_stops_both_with_the_same_line(tmp_path):
    """Rank 1's rewards are NaN: rank 0 must not wait in the gather, and must say why the run stopped."""
    model_dir = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    write_run_config(
        tmp_path / "c.toml",
        model_dir,
        reward={"name": "tests.test_distributed:nan_on_rank_one"},
        train={"references": 4},
    )
    multi = _run(_two_processes() + ["--out", "run"], tmp_path, timeout=180)
    assert multi.returncode != 0
    # the two ranks write at the same moment, so their lines may run together: split on the prefix, not lines
    lines = [part.split("\n")[0].strip() for part in multi.stderr.split("hrf train: error:")[1:]]
    assert len(lines) == 2 and lines[0] == lines[1], multi.stderr[-3000:]
    assert "non-finite values at epoch 0" in lines[0]
