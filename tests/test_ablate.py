"""`hrf ablate` on a tiny budget: every cell trains once, Figure 5 is drawn, a rerun recomputes nothing."""

from __future__ import annotations

import json

import pytest

from hrf.cli.main import main
from hrf.experiments.ablate import REGIMES, regime_iterations, scaled_windows, summarise
from hrf.models import save_model, tiny_unet
from tests.helpers import celebahq_like_scheduler


def test_regime_iterations_keep_totals_equal():
    totals = {r: sum(regime_iterations(r, 4)) for r in REGIMES}
    assert totals == {"baseline": 12, "early": 12, "later": 12}
    assert regime_iterations("later", 4) == [4, 8]


def test_windows_scale_with_the_number_of_steps():
    assert scaled_windows("baseline", 40) == REGIMES["baseline"]
    assert scaled_windows("early", 20) == [[2, 4], [9, 11], [14, 16]]
    assert scaled_windows("later", 10) == [[2, 3], [7, 8]]


def test_summarise_means_and_standard_errors():
    cells = [
        {"regime": "a", "reward": 1.0, "vendi": {"pixels": 2.0}},
        {"regime": "a", "reward": 3.0, "vendi": {"pixels": 4.0}},
    ]
    (p,) = summarise(cells, "pixels")
    assert p["reward"] == 2.0 and p["vendi"] == 3.0 and p["reward_err"] == pytest.approx(1.0)


@pytest.mark.slow
def test_ablate_tiny_end_to_end(tmp_path):
    model = save_model(tiny_unet(16), celebahq_like_scheduler(), tmp_path / "m")
    args = [
        "ablate",
        "--out",
        str(tmp_path / "abl"),
        "--seeds",
        "0",
        "1",
        "--regimes",
        "early",
        "later",
        "--per-window",
        "1",
        "--num-eval",
        "8",
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
    ]
    assert main(args) == 0
    summary = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert len(summary["cells"]) == 4 and {p["label"] for p in summary["points"]} == {"early", "later"}
    assert (tmp_path / "abl" / "figure5_windows.png").stat().st_size > 1000
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "abl" / "cells").iterdir()}
    assert main(args) == 0  # resumable: nothing recomputed
    assert stamps == {p: p.stat().st_mtime for p in (tmp_path / "abl" / "cells").iterdir()}
