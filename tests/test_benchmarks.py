"""The benchmark scripts run end to end with --quick and write well-formed JSON (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _numbers(obj):
    """Every int/float leaf of a JSON value (bools and None excluded)."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _load_script(name: str):
    """A benchmark script imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: str, *args: str) -> None:
    res = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *args], capture_output=True, text=True, timeout=1800
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.slow
def test_perf_quick_writes_finite_json(tmp_path):
    out = tmp_path / "perf.json"
    _run("perf.py", "--out", str(out))
    res = json.loads(out.read_text())
    assert {"machine", "targets", "models", "metrics", "memory"} <= set(res)
    assert res["machine"]["torch_threads"] == 1 and res["machine"]["cpu"]
    for key in ("base", "paper"):
        model = res["models"][key]
        assert {"hrf_vs_floor", "diffusers_vs_floor", "hrf_vs_diffusers"} <= set(model["sampling"])
        lo, hi = model["sampling"]["hrf_vs_diffusers_range"]
        assert lo <= model["sampling"]["hrf_vs_diffusers"] <= hi
        assert {"ddpo_epoch_vs_floor", "hrf_epoch_vs_floor", "hrf_vs_ddpo_epoch", "hrf_share_of_trained_steps"} <= set(
            model["epochs"]
        )
        # the floor mirrors the trainer's calls: DDPO trains every stochastic step (all but the last, and
        # the preset's skip_last_steps before it) of 4 trajectories
        e = model["epochs"]
        assert e["floor_calls"]["ddpo"]["trained_pairs"] == e["trajectories"] * (e["steps"] - 1 - e["skip_last_steps"])
    assert {"jpeg_reward", "vendi", "domain_features"} <= set(res["metrics"])
    assert set(res["memory"]["max_rss_mb"]) == {"baseline", "base/hrf_rollout"}
    numbers = list(_numbers(res))
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert out.with_suffix(".md").read_text().count("| base") >= 3


@pytest.mark.slow
def test_pareto_quick_writes_finite_json(tmp_path):
    from diffusers import DDPMScheduler

    from hrf.models import save_model, unet_from_preset

    model = "hrf:faces32"
    if not (Path(__file__).resolve().parents[1] / "src/hrf/assets/models/faces32/config.json").is_file():
        # a checkout without the shipped model: a fresh faces-shaped UNet runs the same pipeline
        model = str(save_model(unet_from_preset("tiny", 32), DDPMScheduler(), tmp_path / "model"))
    out = tmp_path / "study"
    _run("pareto.py", "--model", model, "--out", str(out))
    res = json.loads((out / "pareto.json").read_text())
    assert res["cells_done"] == res["cells_planned"] == 4
    assert {r["method"] for r in res["rows"]} == {"ddpo", "hrf", "hrfd", "kl"}
    for row in res["rows"]:
        assert {
            "reward_gain",
            "vendi/pixels/fraction",
            "vendi/domain/fraction",
            "is/domain/fraction",
            "factors/entropy/fraction",
            "factors/coverage/fraction",
        } <= set(row)
        # the gain is the cell's reward minus the base model's, evaluated from the same noise
        assert row["reward_gain"]["mean"] == pytest.approx(row["reward"]["mean"] - row["base_reward"])
    numbers = list(_numbers(res))  # strict JSON: an undefined fraction is null, never NaN
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert res["figures"] and all((out / name).is_file() for name in res["figures"])
    assert len(list((out / "cells").glob("*.json"))) == 4


def test_pareto_epochs_scale_keeps_budgets_equal_and_window_shares():
    pareto = _load_script("pareto")
    for method in ("ddpo", "hrf", "hrfd", "kl"):
        one = pareto.cell_config("compressibility", method, 0, "hrf:faces32", False)
        three = pareto.cell_config("compressibility", method, 0, "hrf:faces32", False, epochs_scale=3)
        assert three.train.max_epochs == 3 * one.train.max_epochs
        assert three.train.references == one.train.references and three.train.lr == one.train.lr
        if one.schedule.kind == "windows":
            assert three.schedule.windows == one.schedule.windows
            assert three.schedule.iterations == [3 * i for i in one.schedule.iterations]
            assert sum(three.schedule.iterations) == three.train.max_epochs


def test_suite_benchmark_passes_and_records_its_worker_count(tmp_path, monkeypatch):
    suite = _load_script("suite")
    seen = {}

    real_run = subprocess.run

    def fake_run(command, **kwargs):
        if "pytest" not in command:
            return real_run(command, **kwargs)  # platform.platform() asks uname
        seen["command"] = command
        xml = next(Path(a.split("=", 1)[1]) for a in command if a.startswith("--junitxml="))
        xml.write_text(
            '<testsuites><testsuite><testcase classname="tests.test_a" name="t" time="2.0"/></testsuite></testsuites>'
        )
        return subprocess.CompletedProcess(command, 0, stdout="1 passed in 2.0s\n", stderr="")

    monkeypatch.setattr(suite.subprocess, "run", fake_run)
    row = suite.run_suite(fast=True, pytest_args=["tests/test_a.py"], workers=0)
    assert seen["command"][-5:] == ["-n", "0", "-m", "not slow", "tests/test_a.py"]
    assert row["workers"] == 0 and row["test_seconds_summed"] == 2.0 and row["outcomes"]["passed"] == 1


def test_demo_benchmark_reads_the_demo_phase_times(tmp_path):
    bench = _load_script("demo")
    phases = {"train DDPO_IS": 120.5, "metrics of the final models": 30.0}
    threads = {"task": 1, "metrics": 2, "jobs": 2}
    report = {"timings_seconds": phases, "demo": {"threads": threads, "num_eval": 512}}
    (tmp_path / "metrics.json").write_text(json.dumps(report))
    row = bench.demo_row(tmp_path, 301.24, 0, ["--quick"])
    assert row["phases"] == phases and row["threads"] == threads and row["num_eval"] == 512
    assert row["seconds"] == 301.2 and row["target_seconds"] == 360.0 and row["demo_args"] == ["--quick"]
    assert bench.demo_row(tmp_path / "missing", 1.0, 1, [])["phases"] == {}  # a failed run still gives a row


def test_perf_verdict_reads_the_median_against_the_spread_of_repetitions():
    perf = _load_script("perf")
    assert perf.ratio_range([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == [0.5, 1.5]
    assert perf.check(0.99, 1.0) == "meets"
    assert perf.check(1.01, 1.0) == "MISSES"
    assert perf.check(1.01, 1.0, [1.005, 1.02]) == "MISSES"  # every repetition is slower
    assert perf.check(1.01, 1.0, [0.95, 1.08]).startswith("MISSES by the median")


def test_suite_benchmark_reads_the_slowest_tests_and_outcomes(tmp_path):
    suite = _load_script("suite")
    xml = tmp_path / "junit.xml"
    cases = "".join(
        f'<testcase classname="tests.test_{i}" name="test_{i}" time="{t}">{body}</testcase>'
        for i, (t, body) in enumerate([(0.5, ""), (3.25, "<failure/>"), (1.0, "<skipped/>")] + [(0.1, "")] * 10)
    )
    xml.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')
    slowest, outcomes, total = suite.slowest(xml)
    assert outcomes == {"passed": 11, "failed": 1, "skipped": 1}
    assert total == pytest.approx(0.5 + 3.25 + 1.0 + 10 * 0.1, abs=0.05)  # rounded to 0.1 s
    assert len(slowest) == 10 and [c["seconds"] for c in slowest[:3]] == [3.25, 1.0, 0.5]
    assert slowest[0] == {"test": "tests/test_1.py::test_1", "seconds": 3.25, "outcome": "failed"}


def test_suite_results_tables_come_from_the_rows_and_say_whether_each_target_is_met(tmp_path):
    suite = _load_script("suite")
    rows = {
        "suite_all": {"seconds": 290.04, "test_seconds_summed": 550.0, "target_seconds": 300.0},
        "suite_fast": {"seconds": 61.0, "test_seconds_summed": 90.0, "target_seconds": 60.0},
    }
    for name, row in rows.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(row | {"outcomes": {"passed": 5, "skipped": 1}}))
    demo = {"demo_args": [], "seconds": 359.0, "target_seconds": 360.0, "exit_code": 0, "phases": {"train": 12.34}}
    (tmp_path / "demo.json").write_text(json.dumps(demo))
    text = suite.rows_markdown(tmp_path)
    assert "| whole suite | **290.0 s** | 550.0 s | 5 / 1 | 300 s (met) |" in text
    assert "| 90.0 s | 5 / 1 | 60 s (missed) |" in text
    assert "**359.0 s** (target 360 s, met; exit code 0)" in text and "| train | 12.3 |" in text


def test_frontier_tilt_rows_read_each_model_against_the_base_and_the_frontier(tmp_path):
    frontier = _load_script("frontier")
    run = tmp_path / "probes" / "b1"
    run.mkdir(parents=True)
    info = {"reward": "r", "ema_decay": 0.999, "beta": 1.5, "gain": 0.3, "num": 5000, "steps_sampling": 10}
    info |= {"lr": 1e-4, "train_steps": 800}  # no decay_steps: written before the option, so no annealing
    (run / "tilt_info.json").write_text(json.dumps(info))
    models = {
        "base": {"reward/r": {"value": 0.25}, "vendi/evaluator": {"value": 20.0}},
        "tilted": {"reward/r": {"value": 0.45}, "vendi/evaluator": {"value": 18.0}},
        "tilted_raw": {"reward/r": {"value": 0.5}, "vendi/evaluator": {"value": 16.0}},
    }
    (run / "metrics.json").write_text(json.dumps({"models": models}))
    curve = [{"gain": 0.0, "reached": True, "frac/vendi/evaluator": 1.0}]
    curve += [{"gain": 0.4, "reached": True, "frac/vendi/evaluator": 0.9}]
    rows = frontier.tilt_rows(tmp_path / "probes", {"r": {"curve": curve}})
    assert [(r["run"], r["model"]) for r in rows] == [("b1", "EMA 0.999"), ("b1", "raw weights")]
    assert rows[0]["gain_measured"] == pytest.approx(0.2) and rows[0]["frac"] == pytest.approx(0.9)
    assert rows[0]["frontier_frac"] == pytest.approx(0.95) and rows[0]["decay_steps"] == 0
    assert rows[1]["frac"] == pytest.approx(0.8) and rows[1]["frontier_frac"] == pytest.approx(0.9375)
    table = frontier.tilt_markdown(rows)
    assert "| b1 | r | EMA 0.999 | 1.5 | +0.300 | 5,000 | 10 | 0.0001 | — | 800 | +0.200 | 0.900 | 0.950 |" in table


def test_frontier_tilt_cells_are_read_at_their_end_and_others_at_the_matched_gain():
    frontier = _load_script("frontier")
    gold = "gold/mouth=smile"
    base = {"reward/faces_smile": 0.2, "vendi/evaluator": 20.0, gold: 0.1}

    def tilt_cell(seed, reward, vendi):
        final = {"reward/faces_smile": reward, "vendi/evaluator": vendi, gold: reward - 0.1}
        tilt = {"wall_seconds": 9}
        return {
            "task": "smile",
            "seed": seed,
            "level": 0.3,
            "base": base,
            "final": final,
            "tilt": tilt,
            "seconds_this_session": 30.0,
        }

    tilts = [tilt_cell(100, 0.5, 19.0), tilt_cell(101, 0.4, 18.0), tilt_cell(0, 0.9, 1.0)]  # seed 0: tuning, unread

    def curve_cell(method, seed, fracs):  # gains 0, 0.2, 0.4 with these evaluator-Vendi fractions
        gains = (0, 0.2, 0.4)
        curve = [
            {"reward/faces_smile": 0.2 + g, "vendi/evaluator": 20.0 * f} for g, f in zip(gains, fracs, strict=True)
        ]
        return {"task": "smile", "reward": "faces_smile", "method": method, "seed": seed, "curve": curve}

    cells = [curve_cell("ddpo", 100, (1, 0.8, 0.6)), curve_cell("ddpo", 101, (1, 0.7, 0.5))]
    for c, seconds in zip(cells, (0.0, 10.0), strict=True):  # 0 s: trained in an earlier session, not counted
        c["seconds_train_this_session"] = seconds
    cells += [curve_cell("hrf", 100, (1, 0.9, 0.8)), curve_cell("hrf", 101, (1, 0.9, 0.7))]
    fr = {"faces_smile": {"curve": [{"gain": g, "reached": True, "frac/vendi/evaluator": 1.0} for g in (0, 1)]}}
    e = frontier.tilt_analysis(cells, tilts, fr)["smile"]
    assert e["seeds"] == [100, 101] and e["gain"][0] == pytest.approx(0.25) and e["matched_gain"] == pytest.approx(0.25)
    assert e["efficiency_values"] == pytest.approx([0.95, 0.9]) and e["gold_gain"][0] == pytest.approx(0.25)
    # DDPO_IS at gain 0.25: a quarter of the way from 0.2 to 0.4 along each curve
    assert e["others"]["ddpo"]["efficiency_values"] == pytest.approx([0.75, 0.65])
    assert e["others"]["hrf"]["efficiency_values"] == pytest.approx([0.875, 0.85])
    assert e["contrast"]["diff"] == pytest.approx(0.925 - 0.70)
    assert e["cost"] == {"tilt_seconds": (30.0, 0.0), "ddpo_seconds": 10.0, "ddpo_cells": 1}
    aim = frontier.aim_markdown(e)
    assert "mean gain +0.250 within 0.03 of the primary level +0.300: not met" in aim
    assert "mean frontier efficiency 0.925 ≥ 0.95: not met" in aim and "3.0× DDPO_IS's 60 epochs" in aim
    e["gain"], e["efficiency"] = (0.31, 0.01), (0.96, 0.02)
    assert frontier.aim_markdown(e).count(": met") == 2


def test_frontier_report_names_the_declared_conditions_that_did_not_run():
    frontier = _load_script("frontier")
    report = {"tasks": {"smile": {"methods": {"ddpo": {}, "klbeta": {}}}}, "tilt": {"smile": {}}}
    line = frontier.not_run_markdown(report)
    named = line.removeprefix("Declared in the protocol, not run (no test cells): ").removesuffix(".").split("; ")
    assert named == [
        "KL to q_β on compressibility",
        "RTB to q_β on compressibility",
        "HRF+KL to q_β on compressibility",
        "RTB to q_β on smile",  # the smile KL row exists
        "HRF+KL to q_β on smile",
        "tilted fine-tuning on compressibility",
    ]


def test_frontier_aim_table_says_met_only_when_every_seed_reaches_the_level_and_the_mean_clears_it():
    frontier = _load_script("frontier")

    def row(label, eff, reached, at_aim):
        levels = [{"efficiency": None, "n_reached": 0}] * 3
        levels[frontier.PRIMARY_LEVEL] = {"efficiency": eff, "n_reached": reached}
        return {"label": label, "seeds": [100, 101, 102], "at_levels": levels, "at_aim": at_aim}

    e = {
        "aim": {},
        "methods": {
            "a": row("A", (0.97, 0.01), 3, {"fraction": (0.91, 0.02), "n_reached": 3}),
            "b": row("B", (0.97, 0.01), 2, {"fraction": (0.95, 0.02), "n_reached": 2}),  # a seed never got there
            "c": row("C", (0.94, 0.01), 3, {"fraction": None, "n_reached": 0}),
        },
    }
    rows = [line for line in frontier.aim_table(e).splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == [
        "| A | 0.970 ± 0.010 | 3 of 3 | yes | 0.910 ± 0.020 (3) | yes |",
        "| B | 0.970 ± 0.010 | 2 of 3 | no | 0.950 ± 0.020 (2) | no |",
        "| C | 0.940 ± 0.010 | 3 of 3 | no | — (0) | no |",
    ]
