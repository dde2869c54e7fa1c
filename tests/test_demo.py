"""`hrf demo --quick` end to end on the shipped faces model (the pipeline, not the method's numbers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrf.cli.main import main
from hrf.experiments.demo import paired_changes


def test_paired_changes_are_per_sample_differences():
    base = np.array([1.0, 2.0, 3.0, 4.0])
    deltas = {"DDPO_IS": np.array([0.1, 0.2, 0.3, 0.4]), "HRF": np.array([-1.0, 1.0, -1.0, 1.0]), "HRF-D": np.zeros(4)}
    rewards = {"base": {"r": base}, **{name: {"r": base + d} for name, d in deltas.items()}}
    out = paired_changes(rewards, "r")
    for name, d in deltas.items():
        assert out[name]["mean"] == pytest.approx(d.mean())
        assert out[name]["sem"] == pytest.approx(d.std(ddof=1) / 2.0)  # √4 samples
    # the base model's own spread does not enter: HRF's change is 0 ± 0.58, below the base's 0.65
    assert out["HRF"]["sem"] < base.std(ddof=1) / 2.0


@pytest.mark.slow
def test_demo_quick_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["models"]) == {"base", "DDPO_IS", "HRF", "HRF-D"}
    for name in ("DDPO_IS", "HRF", "HRF-D"):
        entry = report["models"][name]["reward/jpeg_compressibility"]
        assert entry["value"] < 0 and entry["err"] > 0  # −kB, with a standard error
        entries = report["models"][name]
        assert "factors/entropy" in entries or any(k.startswith("factors/") for k in entries)
    assert (out / "REPORT.md").read_text().startswith("# hrf demo")
    assert set(report["paired_change"]) == {"DDPO_IS", "HRF", "HRF-D"}
    assert all(np.isfinite(c["mean"]) and c["sem"] > 0 for c in report["paired_change"].values())
    assert "paired over the same initial noise" in (out / "REPORT.md").read_text()
    # every method run finished and a rerun reuses it (nothing is retrained)
    before = {m: (out / m / "summary.json").stat().st_mtime for m in ("ddpo", "hrf", "hrfd")}
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert before == {m: (out / m / "summary.json").stat().st_mtime for m in ("ddpo", "hrf", "hrfd")}


@pytest.mark.slow
def test_demo_match_reward_stops_hrf_at_ddpo_reward(tmp_path):
    from hrf.config import load_config

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--match-reward", "--out", str(out), "--no-progress"]) == 0
    ddpo_reward = json.loads((out / "ddpo" / "summary.json").read_text())["last_reward_mean"]
    for method in ("hrf", "hrfd"):
        assert load_config(out / method / "config.toml").train.target_reward == ddpo_reward
        summary = json.loads((out / method / "summary.json").read_text())
        # the run stopped at the target exactly when its last epoch reached it (else its budget ran out)
        stopped_at_target = summary["stopped"] == f"target reward {ddpo_reward} reached"
        assert stopped_at_target == (summary["last_reward_mean"] >= ddpo_reward)
    report = json.loads((out / "metrics.json").read_text())["demo"]
    assert report["match_reward"] and set(report["budgets"]) == {"DDPO_IS", "HRF", "HRF-D"}
    assert "--match-reward" in (out / "REPORT.md").read_text()
