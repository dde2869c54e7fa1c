"""Injection sampling: x̂0 as diffusers computes it, shared noise, zero distance before the switch."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler

from hrf.evaluation.inject import PAPER_STEPS, injection_distances, paper_to_index, switched_trajectory
from hrf.images import cosine_distance
from hrf.models import make_ddim_scheduler, save_model, tiny_unet
from hrf.sampling import make_noise, predicted_x0, sample_images


def test_paper_steps_convert_to_step_indices():
    assert paper_to_index(PAPER_STEPS, 40) == [2, 5, 10, 15, 20, 30]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_predicted_x0_matches_diffusers(train_scheduler, prediction_type):
    train_scheduler.register_to_config(prediction_type=prediction_type)
    ddim = make_ddim_scheduler(train_scheduler, 10)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 3, 4, 4, generator=g) * 2, torch.randn(2, 3, 4, 4, generator=g) * 2
    t = ddim.timesteps[3]
    reference = DDIMScheduler.from_config(ddim.config)
    reference.set_timesteps(10)
    expected = reference.step(out, t, x, eta=1.0, variance_noise=torch.zeros_like(x)).pred_original_sample
    torch.testing.assert_close(predicted_x0(ddim, out, t, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("noise", ["per_sample", "sequential"])
def test_unswitched_trajectory_is_what_sample_images_draws(ddim40, noise):
    unet = tiny_unet(8, seed=0).eval()
    ddim = make_ddim_scheduler(ddim40, 5)
    traj = switched_trajectory(unet, unet, ddim, 3, seed=9, switch_at=5, noise=noise)
    expected = sample_images(unet, ddim, 3, make_noise(noise, 9, 3), batch_size=3)
    torch.testing.assert_close(traj.images, expected)
    assert traj.x0.shape == (5, 3, 3, 8, 8)


def test_distances_are_zero_before_the_switch_and_not_after(ddim40):
    tuned, base = tiny_unet(8, seed=0).eval(), tiny_unet(8, seed=1).eval()
    ddim = make_ddim_scheduler(ddim40, 6)
    result = injection_distances(tuned, base, ddim, 4, seed=2, inject_at=[0, 3])
    d3 = result["distance"][3]
    assert d3.shape == (6, 4)
    switched = switched_trajectory(tuned, base, ddim, 4, seed=2, switch_at=3)
    assert torch.equal(switched.x0[:3], result["original"].x0[:3])  # same noise, same model so far
    assert torch.equal(switched.images, result["switched"][3])
    assert torch.all(d3[:3] < 1e-12)
    assert torch.all(d3[3:] > 1e-6)
    assert torch.all(result["distance"][0] > 0)
    # Switching to the same model changes nothing.
    same = injection_distances(tuned, tuned, ddim, 4, seed=2, inject_at=[2])
    assert torch.equal(same["switched"][2], same["original"].images)
    assert torch.all(same["distance"][2] < 1e-12)


def test_cosine_distance_known_values():
    a = torch.ones(2, 1, 2, 2)
    assert cosine_distance(a, a).tolist() == pytest.approx([0.0, 0.0])
    assert cosine_distance(a, -a).tolist() == pytest.approx([2.0, 2.0])


def test_cli_inject(tmp_path, train_scheduler, capsys):
    from hrf.cli.main import main

    tuned = save_model(tiny_unet(8, seed=0), train_scheduler, tmp_path / "tuned")
    base = save_model(tiny_unet(8, seed=1), train_scheduler, tmp_path / "base")
    out = tmp_path / "inj"
    assert (
        main(
            [
                "inject",
                "--model",
                str(tuned),
                "--base",
                str(base),
                "--inject",
                "3",
                "1",
                "--num",
                "3",
                "--steps",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "inject.json").read_text())
    assert [i["k"] for i in report["inject"]] == [1, 3]
    assert [i["paper_step"] for i in report["inject"]] == [4, 2]
    assert report["inject"][1]["mean_distance"][:3] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert min(report["inject"][1]["mean_distance"][3:]) > 1e-6
    for name in ("figure6_injection.png", "grid_injection.png", "inject_args.json"):
        assert (out / name).is_file()
    assert (
        main(["inject", "--model", str(tuned), "--base", str(base), "--inject", "5", "--steps", "5", "--out", str(out)])
        == 2
    )
    assert "outside 0..4" in capsys.readouterr().err
