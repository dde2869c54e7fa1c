"""`hrf demo --quick` end to end on the shipped faces model (the pipeline, not the method's numbers)."""

from __future__ import annotations

import json

import pytest

from hrf.cli.main import main


@pytest.mark.slow
def test_demo_quick_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["models"]) == {"base", "DDPO_IS", "HRF", "HRF-D"}
    for name in ("DDPO_IS", "HRF", "HRF-D"):
        entry = report["models"][name]["reward/jpeg_compressibility"]
        assert entry["value"] < 0 and entry["err"] > 0  # −kB, with a standard error
        assert "factors/entropy" in report["models"][name] or any(k.startswith("factors/") for k in report["models"][name])
    assert (out / "REPORT.md").read_text().startswith("# hrf demo")
    # every method run finished and a rerun reuses it (nothing is retrained)
    before = {m: (out / m / "summary.json").stat().st_mtime for m in ("ddpo", "hrf", "hrfd")}
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert before == {m: (out / m / "summary.json").stat().st_mtime for m in ("ddpo", "hrf", "hrfd")}
