"""Two real processes (torchrun + gloo on CPU) run the same epoch plan as one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hrf.models import save_model, tiny_unet
from tests.helpers import celebahq_like_scheduler, subprocess_env, write_run_config


def _run(cmd, tmp_path, timeout=240):
    return subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    model_dir = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    write_run_config(tmp_path / "c.toml", model_dir, train={"references": 4, "updates_per_epoch": 2})
    single = _run([sys.executable, "-m", "hrf", "train", "--config", "c.toml", "--out", "one", "--no-progress"],
                  tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                  "-m", "hrf", "train", "--config", "c.toml", "--out", "two", "--no-progress"], tmp_path)
    assert multi.returncode == 0, multi.stderr[-3000:]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 2  # one process wrote the run directory, once per epoch
    for a, b in zip(one, two, strict=True):
        assert a["trajectories"] == b["trajectories"] == 12
        assert a["optimizer_updates"] == b["optimizer_updates"] == 2
    assert json.loads((tmp_path / "two" / "derived.json").read_text())["processes"] == 2
    assert (tmp_path / "two" / "final" / "diffusion_pytorch_model.safetensors").is_file()
