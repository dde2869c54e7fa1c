"""The Python API (``import hrf``): configs with overrides, a training run's result, samples, an evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hrf
from hrf.api import model_names, reward_configs
from hrf.errors import ConfigError, HrfError
from hrf.models import save_model, tiny_unet
from tests.helpers import celebahq_like_scheduler, write_run_config


def test_load_config_takes_a_preset_and_overrides_of_either_form():
    overrides = {"train.lr": 3e-5, "schedule.windows": [[1, 2]], "schedule.iterations": [4], "reward.name": "my mod:f"}
    as_dict = hrf.load_config("faces32/smile-hrf", overrides)
    as_text = hrf.load_config(
        "faces32/smile-hrf",
        ["train.lr=3e-5", "schedule.windows=[[1, 2]]", "schedule.iterations=[4]", "reward.name=my mod:f"],
    )
    assert as_dict == as_text
    assert as_dict.train.lr == 3e-5 and as_dict.schedule.windows == [[1, 2]] and as_dict.schedule.iterations == [4]
    with pytest.raises(ConfigError, match="train.nope"):
        hrf.load_config("faces32/smile-hrf", {"train.nope": 1})
    with pytest.raises(HrfError, match="no preset named"):
        hrf.load_config("faces32/no-such-preset")
    with pytest.raises(HrfError, match="not the string"):
        hrf.load_config("faces32/smile-hrf", "train.lr=1")  # type: ignore[arg-type]


def test_model_names_label_specs_as_the_command_does():
    assert model_names({"base": "hrf:faces32", "mine": "runs/x/final"}) == {
        "base": "hrf:faces32",
        "mine": "runs/x/final",
    }
    assert model_names(["hrf:faces32", "tuned=runs/x/final", "runs/y/final"]) == {
        "hrf_faces32": "hrf:faces32",
        "tuned": "runs/x/final",
        "final": "runs/y/final",
    }


def test_reward_configs_of_names_or_options():
    assert [(r.name, r.options) for r in reward_configs(["a", "b", "a"])] == [("a", {}), ("b", {})]
    assert [(r.name, r.options) for r in reward_configs({"aesthetic": {"clip_path": "c"}})] == [
        ("aesthetic", {"clip_path": "c"})
    ]


@pytest.mark.slow
def test_train_sample_evaluate_on_a_tiny_model(tmp_path):
    model = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    cfg = write_run_config(tmp_path / "c.toml", model)
    run = hrf.train(cfg, tmp_path / "run", overrides={"train.max_epochs": 1}, progress=False)
    assert run.run_dir == tmp_path / "run" and run.final.is_dir()
    assert run.summary["epochs"] == 1 and run.summary["trajectories"] == 6 and len(run.history) == 1
    assert run.summary["last_reward_mean"] == pytest.approx(run.history[-1]["reward_mean"])
    with pytest.raises(HrfError, match="already holds a run"):
        hrf.train(cfg, tmp_path / "run", progress=False)
    resumed = hrf.train(None, tmp_path / "run", resume=True, overrides=["train.max_epochs=2"], progress=False)
    assert resumed.summary["epochs"] == 2 and len(resumed.history) == 1  # this call trained one more epoch

    images = hrf.sample(run.final, 5, steps=4, seed=3, out=tmp_path / "s")
    assert images.shape == (5, 3, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, hrf.sample(str(run.final), 5, steps=4, seed=3))  # the seed fixes the noise
    with np.load(tmp_path / "s" / "samples.npz") as f:
        assert f["images"].shape == (5, 8, 8, 3)
    assert json.loads((tmp_path / "s" / "sample_args.json").read_text())["seed"] == 3

    report = hrf.evaluate(
        {"base": model, "tuned": run.final},
        tmp_path / "eval",
        num=6,
        steps=4,
        rewards=["tests.test_trainer:brightness"],
        embedders=["pixels"],
        n_boot=0,
        is_splits=1,
        progress=False,
    )
    assert list(report["models"]) == ["base", "tuned"]
    assert report == json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (tmp_path / "eval" / "metrics.md").is_file()
    # every model from the same noise: the base model's samples are the ones hrf.sample draws with that seed
    base = hrf.sample(model, 6, steps=4, seed=0)
    value = report["models"]["base"]["reward/tests.test_trainer:brightness"]["value"]
    assert value == pytest.approx(float(base.mean(dim=(1, 2, 3)).mean()), abs=1e-2)
