"""Study cells (hrf.experiments.cells): reused only under the same key; seed summaries; the ablation's cells."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hrf.config import load_config, preset_path
from hrf.experiments.cells import cell_key, seed_summary, stored_cell


def _tiny_model(tmp_path, seed=0, size=8):
    from diffusers import DDPMScheduler

    from hrf.models import save_model, tiny_unet

    return str(save_model(tiny_unet(size, seed=seed), DDPMScheduler(), tmp_path / "model"))


def test_a_cell_is_reused_only_for_the_same_config_weights_and_evaluation(tmp_path):
    model = _tiny_model(tmp_path)
    cfg = load_config(preset_path("faces32/compressibility-hrf"), [f"model.path={json.dumps(model)}"])
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"metrics": {}, **cell_key(cfg, 16, 7)}))
    assert stored_cell(cell, cell_key(cfg, 16, 7)) is not None
    assert stored_cell(cell, cell_key(cfg, 32, 7)) is None
    assert stored_cell(cell, cell_key(cfg, 16, 8)) is None  # other evaluation noise
    other = load_config(preset_path("faces32/compressibility-hrf"), [f"model.path={json.dumps(model)}"])
    other.train.skip_last_steps += 1  # a preset edited since (any field): another training run
    assert stored_cell(cell, cell_key(other, 16, 7)) is None
    _tiny_model(tmp_path, seed=1)  # retrained in place: the same path holds other weights
    assert stored_cell(cell, cell_key(cfg, 16, 7)) is None


def test_a_cell_records_its_noise_and_cells_from_before_read_as_the_study_noise(tmp_path):
    """Committed cells were drawn with one generator in batches of 64 before the noise was recorded: they
    stay valid, and a cell of any other noise is not taken for one of them."""
    model = _tiny_model(tmp_path)
    cfg = load_config(preset_path("faces32/compressibility-hrf"), [f"model.path={json.dumps(model)}"])
    key = cell_key(cfg, 16, 7)
    assert key["noise"] == "sequential" and key["noise_batch_size"] == 64
    cell = tmp_path / "cell.json"
    old = {k: v for k, v in key.items() if not k.startswith("noise")}
    cell.write_text(json.dumps({"metrics": {}, **old}))
    assert stored_cell(cell, key) is not None
    cell.write_text(json.dumps({"metrics": {}, **key, "noise": "per_sample"}))
    assert stored_cell(cell, key) is None


def test_seed_summary_against_a_hand_computation():
    values = [1.0, 2.0, 4.0]
    mean = 7 / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / 2 / 3)
    s = seed_summary(values)
    assert s["mean"] == pytest.approx(mean) and s["se"] == pytest.approx(se)
    assert s["ci95_half"] == pytest.approx(4.302652729749464 * se)  # Student t, 2 d.o.f., 97.5% quantile
    assert seed_summary([3.0]) == {"mean": 3.0, "se": None, "ci95_half": None, "values": [3.0]}


@pytest.fixture
def scaled_reward(monkeypatch):
    """A registered reward whose factory needs an option: mean pixel value times ``scale``."""
    from hrf.rewards.registry import REWARDS

    def factory(scale: float):
        def fn(images):
            return images.float().mean(dim=(1, 2, 3)) * scale, {}

        return fn

    monkeypatch.setitem(REWARDS, "test_scaled_mean", factory)


def _ablate(tmp_path, model, *extra):
    from hrf.cli.main import main

    args = [
        "ablate",
        "--out",
        str(tmp_path / "abl"),
        "--seeds",
        "0",
        "--regimes",
        "early",
        "--per-window",
        "1",
        "--num-eval",
        "4",
        "--no-progress",
        "--set",
        f"model.path={model}",
        "--set",
        "train.references=2",
        "--set",
        "train.branches=2",
        "--set",
        "train.sample_batch_size=4",
        "--set",
        "train.train_batch_size=64",
        *extra,
    ]
    assert main(args) == 0
    return json.loads((tmp_path / "abl" / "cells" / "early-seed0.json").read_text())


def test_ablation_evaluates_the_reward_with_its_options(tmp_path, scaled_reward):
    from hrf.images import from_uint8_hwc

    model = _tiny_model(tmp_path)
    cell = _ablate(tmp_path, model, "--set", "reward.name=test_scaled_mean", "--set", "reward.options={scale=2.5}")
    with np.load(tmp_path / "abl" / "runs" / "early-seed0" / "samples_model.npz") as f:
        images = from_uint8_hwc(f["images"]).double()
    assert cell["reward"] == pytest.approx(2.5 * float(images.mean()), rel=1e-5)


@pytest.mark.slow
def test_ablation_recomputes_a_cell_whose_config_changed(tmp_path):
    model = _tiny_model(tmp_path)
    first = _ablate(tmp_path, model)
    assert first["iterations"] == [1, 1, 1]
    again = _ablate(tmp_path, model)
    assert again == first  # same command: the stored cell
    changed = _ablate(tmp_path, model, "--per-window", "2")
    assert changed["iterations"] == [2, 2, 2] and changed["config"] != first["config"]
    lr = _ablate(tmp_path, model, "--per-window", "2", "--set", "train.lr=1e-5")
    assert lr["config"] != changed["config"]
