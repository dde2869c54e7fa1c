"""Model directories (save/load round trip, offline hub errors) and `hrf sample`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from hrf.cli.main import main
from hrf.errors import HrfError
from hrf.models import load_pipeline_parts, load_unet, save_model, tiny_unet


@pytest.fixture
def model_dir(tmp_path, train_scheduler):
    unet = tiny_unet(8, seed=1)
    return save_model(unet, train_scheduler, tmp_path / "model"), unet


def test_save_load_round_trip_identical_outputs(model_dir):
    path, unet = model_dir
    reloaded = UNet2DModel.from_pretrained(path)
    assert (path / "diffusion_pytorch_model.safetensors").is_file()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor(500)
    with torch.no_grad():
        assert torch.equal(unet(x, t).sample, reloaded(x, t).sample)
        assert torch.equal(load_unet(str(path))(x, t).sample, unet(x, t).sample)
    _, ddim = load_pipeline_parts(str(path), 10)
    assert ddim.config.clip_sample and len(ddim.timesteps) == 10


def test_missing_model_and_offline_hub_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(HrfError, match="does not exist"):
        load_unet(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HrfError, match="not a diffusers model directory"):
        load_unet(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HrfError, match="huggingface-cli download google/ddpm-celebahq-256"):
        load_unet("google/ddpm-celebahq-256")


def test_cli_sample_writes_grid_and_npz(model_dir, tmp_path):
    path, _ = model_dir
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(path), "--num", "5", "--out", str(out), "--steps", "4"]) == 0
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8
    assert (out / "grid.png").is_file()


def test_cli_bad_input_exit_2(tmp_path, capsys):
    assert main(["sample", "--model", str(tmp_path / "nope"), "--num", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--model", "x", "--num", "-3", "--out", str(tmp_path)])
    assert exc.value.code == 2
