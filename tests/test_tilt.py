"""`hrf tilt`: batches drawn with the tilted weights, β from a gain as on the frontier, off-support gains
refused with one line, and a tiny end-to-end run that writes its model and info and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hrf.cli.main import main
from hrf.errors import HrfError
from hrf.evaluation.frontier import beta_for_gain, effective_sample_size, largest_reachable_gain, tilted_weights
from hrf.models import save_model, tiny_unet
from hrf.training.pretrain import ddpm_train_scheduler, make_batch_fn, pool_indices
from hrf.training.tilt import choose_beta, shifted_state


def brightness(images: torch.Tensor):
    """A synthetic reward: the mean pixel of each image."""
    return images.flatten(1).mean(1), {}


def test_weighted_draws_match_the_weights():
    """Each index's frequency within 4 binomial standard errors of its weight, and a chi-square that passes."""
    from scipy.stats import chisquare

    w = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    n = 40_000
    idx = torch.cat([pool_indices(len(w), 1000, w)(s) for s in range(n // 1000)])
    counts = torch.bincount(idx, minlength=len(w)).double()
    freq = counts / n
    se = (w.double() * (1 - w.double()) / n).sqrt()
    assert ((freq - w.double()).abs() <= 4 * se + 1e-12).all(), freq.tolist()
    assert counts[-1] == 0  # a zero weight is never drawn
    assert chisquare(counts[:-1].numpy(), n * w[:-1].double().numpy()).pvalue > 1e-3
    assert torch.equal(pool_indices(len(w), 7, w)(3), pool_indices(len(w), 7, w)(3))  # seeded


def test_uniform_weights_are_exactly_the_unweighted_draw():
    pool = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = make_batch_fn("pool", 8, 16, pool)
    flat = make_batch_fn("pool", 8, 16, pool, torch.full((50,), 0.02))
    for s in (0, 1, 12345):
        assert torch.equal(plain(s), flat(s))
    with pytest.raises(HrfError, match="weights"):
        pool_indices(50, 4, torch.ones(49))
    with pytest.raises(HrfError, match="non-negative"):
        pool_indices(3, 4, torch.tensor([1.0, -1.0, 1.0]))


def test_beta_of_a_gain_is_the_frontiers_and_off_support_is_refused():
    r = np.random.default_rng(0).normal(size=20_000)
    chosen = choose_beta(r, gain=0.5)
    assert chosen["beta"] == beta_for_gain(r, 0.5)
    assert chosen["gain"] == pytest.approx(0.5, abs=1e-8)
    assert chosen["ess"] == pytest.approx(effective_sample_size(tilted_weights(r, chosen["beta"])))
    assert choose_beta(r, beta=0.0)["ess"] == pytest.approx(20_000) and choose_beta(r, beta=0.0)["kl"] == 0
    top = largest_reachable_gain(r)
    with pytest.raises(HrfError) as err:
        choose_beta(r, gain=top + 0.3)
    message = str(err.value)
    assert "\n" not in message and "off the base model's support" in message and f"{top:.4g}" in message
    with pytest.raises(HrfError, match="off the base model's support"):
        choose_beta(r, beta=50.0)
    with pytest.raises(HrfError, match="exactly one"):
        choose_beta(r, beta=1.0, gain=0.5)


def test_shifted_state_is_base_plus_scale_times_the_difference_and_refuses_mismatches():
    g = torch.Generator().manual_seed(0)
    base, tilted, twin = ({"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)} for _ in range(3))
    out = shifted_state(base, tilted, twin, 1.6)
    for k in base:  # the formula in float64, independently
        want = base[k].double().numpy() + 1.6 * (tilted[k].double().numpy() - twin[k].double().numpy())
        assert out[k].dtype == base[k].dtype and np.allclose(out[k].double().numpy(), want, atol=1e-6)
    assert all(torch.equal(shifted_state(base, tilted, tilted, 2.0)[k], base[k]) for k in base)  # no change
    with pytest.raises(HrfError, match="different parameters"):
        shifted_state(base, {"w": tilted["w"]}, twin, 1.0)
    with pytest.raises(HrfError, match="different shapes"):
        shifted_state(base, tilted | {"b": torch.zeros(5)}, twin, 1.0)


def _tiny_model(tmp_path):
    return save_model(tiny_unet(8), ddpm_train_scheduler("v_prediction"), tmp_path / "base")


def _tilt(model, out, work, steps: int, *extra: str) -> int:
    return main(
        [
            "tilt",
            "--model",
            str(model),
            "--reward",
            "tests.test_tilt:brightness",
            "--beta",
            "5",
            "--num",
            "2000",
            "--steps-sampling",
            "2",
            "--work",
            str(work),
            "--train-steps",
            str(steps),
            "--lr",
            "1e-3",
            "--batch-size",
            "8",
            "--warmup-steps",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.slow
def test_tilt_end_to_end_writes_the_model_and_resumes_exactly(tmp_path, capsys):
    model = _tiny_model(tmp_path)
    work = tmp_path / "work"
    assert _tilt(model, tmp_path / "full", work, 4) == 0
    info = json.loads((tmp_path / "full" / "tilt_info.json").read_text())
    assert info["num"] == 2000 and info["base"] == str(model) and info["reward"] == "tests.test_tilt:brightness"
    assert info["beta"] == 5 and info["gain"] > 0 and info["gain_target"] is None
    assert 1000 <= info["ess"] < 2000 and info["kl"] > 0 and info["lr"] == 1e-3 and info["train_steps"] == 4
    assert (tmp_path / "full" / "model" / "diffusion_pytorch_model.safetensors").is_file()
    hrf_info = json.loads((tmp_path / "full" / "model" / "hrf_info.json").read_text())
    assert hrf_info["tilt"]["beta"] == info["beta"] and hrf_info["config"]["init"] == str(model)
    assert "data_weights_sha256" in hrf_info  # drawn with the tilted weights
    sched = json.loads((tmp_path / "full" / "model" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "v_prediction"  # the base model's schedule is kept

    # stopped after 2 steps and resumed to 4: the same weights, to the bit (the cached base samples reused)
    assert _tilt(model, tmp_path / "split", work, 2) == 0
    assert _tilt(model, tmp_path / "split", work, 4, "--resume") == 0
    full = load_file(tmp_path / "full" / "model" / "diffusion_pytorch_model.safetensors")
    split = load_file(tmp_path / "split" / "model" / "diffusion_pytorch_model.safetensors")
    assert full.keys() == split.keys() and all(torch.equal(full[k], split[k]) for k in full)
    base = load_file(model / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(full[k], base[k]) for k in full)  # and training moved it

    # an annealed lr reaches the training: recorded, and the weights differ from the constant-lr run's
    assert _tilt(model, tmp_path / "annealed", work, 4, "--decay-steps", "4") == 0
    assert json.loads((tmp_path / "annealed" / "tilt_info.json").read_text())["decay_steps"] == 4
    annealed = load_file(tmp_path / "annealed" / "model" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(full[k], annealed[k]) for k in full)

    # the uniform twin: out/model is the base plus 1.5 × (tilted − twin), the twin drew its images uniformly
    assert _tilt(model, tmp_path / "twin", work, 4, "--twin", "--scale", "1.5") == 0
    info = json.loads((tmp_path / "twin" / "tilt_info.json").read_text())
    assert info["twin"] is True and info["scale"] == 1.5
    tilted = load_file(tmp_path / "twin" / "tilted" / "model" / "diffusion_pytorch_model.safetensors")
    twin = load_file(tmp_path / "twin" / "twin" / "model" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(full[k], tilted[k]) for k in full)  # the tilted half is the plain run, bit for bit
    assert any(not torch.equal(tilted[k], twin[k]) for k in full)
    shifted = load_file(tmp_path / "twin" / "model" / "diffusion_pytorch_model.safetensors")
    for k in base:
        want = base[k].double() + 1.5 * (tilted[k].double() - twin[k].double())
        assert torch.allclose(shifted[k].double(), want, atol=1e-6)
    twin_info = json.loads((tmp_path / "twin" / "twin" / "model" / "hrf_info.json").read_text())
    assert twin_info["tilt"]["twin_run"] is True
    assert twin_info["data_weights_sha256"] != hrf_info["data_weights_sha256"]  # uniform draws, not the tilt's
    # stopped and resumed, the pair ends where the uninterrupted pair did
    assert _tilt(model, tmp_path / "twin-split", work, 2, "--twin", "--scale", "1.5") == 0
    assert _tilt(model, tmp_path / "twin-split", work, 4, "--twin", "--scale", "1.5", "--resume") == 0
    resumed = load_file(tmp_path / "twin-split" / "model" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(shifted[k], resumed[k]) for k in shifted)

    # another β on --resume trains on other weights: refused with one line
    capsys.readouterr()
    assert _tilt(model, tmp_path / "split", work, 6, "--resume", "--beta", "4") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "changed" in err


def test_tilt_refuses_bad_input_with_one_line(tmp_path, capsys):
    import hrf

    model = _tiny_model(tmp_path)
    with pytest.raises(HrfError) as err:
        hrf.tilt(
            model, "tests.test_tilt:brightness", tmp_path / "far", gain=5.0, num=2000, steps_sampling=2,
            work=tmp_path / "work", train_steps=2, device="cpu", progress=False,
        )  # fmt: skip
    assert "\n" not in str(err.value) and "largest reachable gain" in str(err.value)
    assert not (tmp_path / "far" / "model").exists()
    assert _tilt(tmp_path / "nope", tmp_path / "x", tmp_path / "work", 2) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert _tilt(model, tmp_path / "few", tmp_path / "work", 2, "--num", "999") == 2
    assert "below 1000" in capsys.readouterr().err
