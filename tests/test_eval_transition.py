"""The phase-transition measurement: branching, flip rates, crossings and windows, ``hrf transition`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrf.evaluation.transition import any_flip_rate, crossing, flip_rates, suggest_windows, transition_curves
from hrf.models import make_ddim_scheduler, save_model, tiny_unet
from hrf.sampling import branch_images


def test_flip_rates_by_hand():
    ref = {"a": np.array([0, 1]), "b": np.array([2, 2])}
    branches = {"a": np.array([0, 1, 1, 1]), "b": np.array([2, 2, 2, 1])}  # two branches per reference
    assert flip_rates(ref, branches) == {"a": 0.25, "b": 0.25}
    assert any_flip_rate(ref, branches, ["a", "b"]) == 0.5
    assert any_flip_rate(ref, branches, ["b"]) == 0.25


def test_crossing_interpolates_and_windows_stay_in_range():
    grid, curve = [0, 10, 20, 30], [1.0, 0.8, 0.4, 0.0]
    assert crossing(grid, curve, 0.6) == pytest.approx(15.0)
    assert crossing(grid, curve, 1.0) == 0.0
    assert crossing([0, 10], [1.0, 0.9], 0.5) is None
    windows = suggest_windows(grid, curve, [0.9, 0.6, 0.05], num_steps=40, half_width=2)
    assert [w["window"] for w in windows] == [[3, 7], [13, 17], [27, 31]]
    assert suggest_windows([0, 1], [1.0, 0.0], [0.99], num_steps=40)[0]["window"] == [0, 4]
    # The last step (k = 39) is deterministic: no window may start there.
    assert suggest_windows([0, 39], [1.0, 0.0], [0.01], num_steps=40)[0]["window"] == [34, 38]


def test_branches_from_the_last_steps_stay_close_to_their_reference(ddim40):
    unet = tiny_unet(8, seed=0).eval()
    ddim = make_ddim_scheduler(ddim40, 8)
    refs = torch.rand(3, 3, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    early, late = branch_images(unet, ddim, refs, 0, 2, gen), branch_images(unet, ddim, refs, 7, 2, gen)
    assert early.shape == late.shape == (3, 2, 3, 8, 8)
    dist = lambda b: (b - refs[:, None]).abs().mean().item()  # noqa: E731
    assert dist(late) < 0.5 * dist(early)


def test_transition_curves_collects_one_value_per_step(ddim40):
    unet = tiny_unet(8, seed=0).eval()
    ddim = make_ddim_scheduler(ddim40, 6)
    calls = []

    def measure(refs, branches):
        calls.append(branches.shape)
        return {"d": float((branches - refs[:, None]).abs().mean())}

    result = transition_curves(unet, ddim, [0, 2, 5], refs=2, branches=3, seed=1, measure=measure)
    assert result["grid"] == [0, 2, 5] and len(result["curves"]["d"]) == 3
    assert calls == [(2, 3, 3, 8, 8)] * 3
    assert result["curves"]["d"][2] < result["curves"]["d"][0]


def test_cli_transition_on_pixels(tmp_path, train_scheduler, capsys):
    from hrf.cli.main import main

    model = save_model(tiny_unet(8, seed=0), train_scheduler, tmp_path / "m")
    out = tmp_path / "transition"
    assert (
        main(
            [
                "transition",
                "--model",
                str(model),
                "--out",
                str(out),
                "--steps",
                "6",
                "--grid",
                "0",
                "2",
                "4",
                "5",
                "--refs",
                "2",
                "--branches",
                "2",
                "--levels",
                "0.6",
                "0.3",
            ]
        )
        == 0
    )
    report = json.loads((out / "transition.json").read_text())
    assert report["grid"] == [0, 2, 4, 5] and report["window_curve"] == "cosine distance (pixels)"
    assert report["relative_change"][0] == pytest.approx(1.0)
    assert len(report["suggested_windows"]) == 2
    assert (out / "transition.png").is_file() and (out / "transition_args.json").is_file()
    assert "suggested HRF windows" in capsys.readouterr().out
    assert main(["transition", "--model", str(model), "--out", str(out), "--steps", "6", "--grid", "6"]) == 2
    with pytest.raises(SystemExit) as exit_info:  # argparse reports bad values itself, with exit code 2
        main(["transition", "--model", str(model), "--out", str(out), "--levels", "1.5"])
    assert exit_info.value.code == 2


def test_cli_transition_on_the_faces_benchmark(tmp_path, train_scheduler, monkeypatch):
    """Flip rates with the shipped classifier (a random 32 px UNet as the model)."""
    from hrf.cli.main import main

    model = save_model(tiny_unet(32, seed=0), train_scheduler, tmp_path / "m")
    out = tmp_path / "transition"
    assert (
        main(
            [
                "transition",
                "--model",
                str(model),
                "--out",
                str(out),
                "--benchmark",
                "faces",
                "--steps",
                "4",
                "--grid",
                "0",
                "3",
                "--refs",
                "2",
                "--branches",
                "2",
            ]
        )
        == 0
    )
    curves = json.loads((out / "transition.json").read_text())["curves"]
    assert {"high-level (any)", "low-level (any)", "flip background"} <= set(curves)
    assert all(0.0 <= v <= 1.0 for values in curves.values() for v in values)
