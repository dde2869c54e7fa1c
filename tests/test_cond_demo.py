"""benchmarks/cond_demo.py --quick on a tiny class-conditional faces model: the report's structure and numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from tests.helpers import celebahq_like_scheduler, class_unet

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cond_demo.py"


def _script():
    spec = importlib.util.spec_from_file_location("cond_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cond_demo_quick_writes_a_report_of_finite_numbers(tmp_path):
    from hrf.models import save_model
    from hrf.training.pretrain import condition_info

    model = save_model(
        class_unet(17, size=32), celebahq_like_scheduler(), tmp_path / "m", condition_info("hair_color,background")
    )
    cond_demo = _script()
    out = tmp_path / "demo"
    argv = ["run", "--quick", "--out", str(out), "--model", str(model), "--jobs", "1", "--no-progress"]
    assert cond_demo.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["curves"]) == {"DDPO_IS", "HRF"} and set(report["per_prompt"]) == {"0", "1"}
    for pts in report["curves"].values():
        assert [p["epoch"] for p in pts] == [0, 1, 2]
        assert pts[0]["gain"] == 0 and pts[0]["fraction"] == pytest.approx(1.0)
        for p in pts:
            keys = ("reward", "gain", "fraction", "pixel_fraction", "prompt_fidelity", "free_coverage_ratio")
            assert all(math.isfinite(p[k]) for k in keys)
    assert report["config"]["diversity"] == "vendi/evaluator" and "one training seed" in report["note"]
    assert "a picture, not a test" in (out / "REPORT.md").read_text()
    assert (out / "curves.png").is_file() and (out / "grids" / "grid_0.png").is_file()
    assert cond_demo.main(["run", "--out", str(tmp_path / "x"), "--model", str(tmp_path / "nope")]) == 2
    assert cond_demo.main(["run", "--out", str(tmp_path / "x"), "--model", str(model), "--task", "sing"]) == 2
