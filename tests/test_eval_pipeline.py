"""evaluate_models: every model from the same noise, cached per model, rewards with their options."""

from __future__ import annotations

import numpy as np
import pytest

from hrf.config import RewardConfig
from hrf.evaluation.pipeline import evaluate_models, metric_values


def _model(tmp_path, name, seed):
    from diffusers import DDPMScheduler

    from hrf.models import save_model, tiny_unet

    return str(save_model(tiny_unet(8, seed=seed), DDPMScheduler(clip_sample=True), tmp_path / name / "model"))


def test_models_share_noise_and_samples_are_cached(tmp_path):
    a, b = _model(tmp_path, "a", 0), _model(tmp_path, "b", 1)
    models = {"a": a, "a again": a, "b": b}
    cache = tmp_path / "cache"
    kwargs = dict(num=6, seed=3, steps=2, cache_dir=cache, rewards=[RewardConfig("jpeg_compressibility")])
    report = evaluate_models(models, **kwargs)
    assert report["models"]["a"] == report["models"]["a again"]  # same weights, same noise: same samples
    assert metric_values(report, "a") != metric_values(report, "b")
    files = sorted(p.name for p in cache.iterdir())
    assert files == ["samples_a.npz", "samples_a_again.npz", "samples_b.npz"]
    stamps = {f: (cache / f).stat().st_mtime_ns for f in files}
    assert evaluate_models(models, **kwargs)["models"] == report["models"]
    assert stamps == {f: (cache / f).stat().st_mtime_ns for f in files}  # nothing resampled


def test_reward_values_are_the_mean_of_per_sample_rewards(tmp_path, monkeypatch):
    from hrf.images import from_uint8_hwc
    from hrf.rewards.registry import REWARDS

    monkeypatch.setitem(REWARDS, "test_offset", lambda offset: lambda x: (x.double().mean(dim=(1, 2, 3)) + offset, {}))
    a = _model(tmp_path, "a", 0)
    report = evaluate_models(
        {"a": a},
        num=5,
        seed=0,
        steps=2,
        cache_dir=tmp_path,
        rewards=[RewardConfig("test_offset", options={"offset": 10.0})],
        return_arrays=True,
    )
    with np.load(tmp_path / "samples_a.npz") as f:
        per_sample = from_uint8_hwc(f["images"]).double().mean(dim=(1, 2, 3)).numpy() + 10.0
    entry = report["models"]["a"]["reward/test_offset"]
    assert entry["value"] == pytest.approx(per_sample.mean())
    assert entry["err"] == pytest.approx(per_sample.std(ddof=1) / np.sqrt(5), rel=1e-4)  # rewards are float32
    assert report["images"]["a"].shape == (5, 3, 8, 8)
