"""Matched-reward reading and the study's statistics, on constructed inputs with known answers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hrf.evaluation.matched import holm, t_interval, value_at_reward, verdict, welch


def import_benchmark(name: str):
    """benchmarks/NAME.py as a module (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REWARDS = [0.0, 0.1, 0.3, 0.2, 0.5]
VALUES = [1.0, 0.9, 0.5, 0.6, 0.2]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0.2, 0.7),  # halfway between the points at 0.1 and 0.3
        (0.3, 0.5),  # exactly on a point
        (0.25, 0.6),  # the first crossing (0.1 → 0.3), not the later 0.2 → 0.5 one
        (0.45, 0.6 + (0.45 - 0.2) / 0.3 * (0.2 - 0.6)),  # only the last point reaches it: from the dip's 0.2 to 0.5
        (-1.0, 1.0),  # already reached at the start
    ],
)
def test_value_at_reward_interpolates_at_first_crossing(level, expected):
    assert value_at_reward(REWARDS, VALUES, level) == pytest.approx(expected, abs=1e-12)


def test_value_at_reward_unreached_is_none_and_bad_input_refused():
    assert value_at_reward(REWARDS, VALUES, 0.51) is None
    with pytest.raises(ValueError):
        value_at_reward([0.0, 1.0], [1.0], 0.5)


def test_t_interval_known_answer():
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.3026527297 / math.sqrt(3), rel=1e-10)  # t_{0.975, 2} · s/√n, s = 1
    assert t_interval([5.0]) == (5.0, None)


def test_welch_matches_the_formulas_and_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 7), rng.normal(0.2, 2.0, 11)
    out = welch(a, b)
    va, vb = a.var(ddof=1) / 7, b.var(ddof=1) / 11
    df = (va + vb) ** 2 / (va**2 / 6 + vb**2 / 10)
    assert out["diff"] == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert out["se"] == pytest.approx(math.sqrt(va + vb), rel=1e-12)
    assert out["df"] == pytest.approx(df, rel=1e-12)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert out["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert out["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert out["ci"] == pytest.approx([out["diff"] - half, out["diff"] + half], rel=1e-10)
    with pytest.raises(ValueError):
        welch([1.0], [1.0, 2.0])


def test_holm_known_answer():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])


def test_verdict():
    assert verdict(0.1, 0.01) == "confirmed"
    assert verdict(-0.1, 0.01) == "refuted"
    assert verdict(0.1, 0.2) == "inconclusive"
    assert verdict(0.0, None) == "not measurable"


def _cell(collapse, task, method, seed, gains, fracs):
    """A study cell whose reward gains and primary-metric fractions (domain Vendi) are given per checkpoint."""
    base_reward, base_vendi = 1.0, 3.0
    curve = [
        {
            "epoch": 10 * i,
            f"reward/{collapse.TASKS[task]}": base_reward + g,
            "vendi/domain": base_vendi * f,
            "confident/domain": 0.9,
        }
        for i, (g, f) in enumerate(zip(gains, fracs, strict=True))
    ]
    return {"task": task, "method": method, "seed": seed, "reward": collapse.TASKS[task], "curve": curve}


def test_analyse_reads_levels_from_tuning_seeds_and_holm_corrects():
    collapse = import_benchmark("collapse")
    gains = [0.0, 0.1, 0.2, 0.3, 0.4]
    cells = [
        _cell(collapse, task, "ddpo", s, [g * k for g in gains], [1.0, 0.9, 0.8, 0.7, 0.6])
        for task in collapse.TASKS
        for s, k in ((0, 1.0), (1, 1.0))
    ]  # tuning: mean final gain 0.4
    # test seeds: DDPO_IS's fraction falls 1 → 0.6 over gains 0 → 0.4; HRF's falls half as fast, ± seed noise
    for task in collapse.TASKS:
        for s in collapse.SEEDS["test"][:4]:
            e = 0.01 * (s % 3 - 1)
            cells.append(_cell(collapse, task, "ddpo", s, gains, [1.0, 0.9 + e, 0.8 + e, 0.7 + e, 0.6 + e]))
            cells.append(_cell(collapse, task, "hrf", s, gains, [1.0, 0.95 + e, 0.9 - e, 0.85 + e, 0.8 - e]))
    report = collapse.analyse(cells)
    assert report["primary_metric"] == collapse.PRIMARY_FALLBACK
    task = report["tasks"]["compressibility"]
    assert task["levels"] == pytest.approx([0.1, 0.2, 0.3])  # 25/50/75 % of 0.4
    primary = task["contrasts"][collapse.PRIMARY_LEVEL]
    assert primary["level"] == pytest.approx(0.2)  # read exactly at the third checkpoint
    hrf_vals = task["methods"]["hrf"]["at_levels"][1]["values"]
    assert hrf_vals == pytest.approx([0.9 - 0.01 * (s % 3 - 1) for s in collapse.SEEDS["test"][:4]])
    assert primary["welch"]["diff"] == pytest.approx(
        np.mean(hrf_vals) - np.mean([0.8 + 0.01 * (s % 3 - 1) for s in collapse.SEEDS["test"][:4]])
    )
    ps = [c["welch"]["p"] for c in report["primary_contrasts"]]
    assert [c["p_holm"] for c in report["primary_contrasts"]] == pytest.approx(holm(ps))
    assert {c["verdict"] for c in report["primary_contrasts"]} == {"confirmed"}
    [stopped] = task["stopped_at"]  # HRF-D and the KL baselines have not run
    assert (stopped["method"], stopped["reference"]) == ("hrf", "ddpo")
    # HRF reaches DDPO_IS's final gain (0.4) on every seed, at 0.8 ∓ e against DDPO_IS's 0.6 ± e
    assert stopped["n_reached"] == 4 and stopped["minus_reference"][0] == pytest.approx(0.2)
    # 4 of the 10 declared test seeds: an interim look, which the report does not call a verdict
    assert not any(c["final"] for c in report["primary_contrasts"])
    text = collapse.markdown(report, cells)
    assert "interim reading *confirmed* (4 ddpo, 4 hrf of 10 declared test seeds" in text
    assert "**confirmed**" not in text
    more = [
        _cell(collapse, task, m, s, gains, [1.0, 0.9, 0.8 + 0.05 * (m == "hrf") + 0.001 * s, 0.7, 0.6])
        for task in collapse.TASKS
        for s in collapse.SEEDS["test"][4:]
        for m in ("ddpo", "hrf")
    ]
    full = collapse.analyse(cells + more)
    assert all(c["final"] for c in full["primary_contrasts"])
    assert "→ **confirmed**" in collapse.markdown(full, cells + more)


def test_pareto_contrasts_are_welch_over_seeds_with_holm_over_diversity():
    contrasts = import_benchmark("contrasts")
    rng = np.random.default_rng(1)

    def row(method, label):
        return {
            "task": "t",
            "method": method,
            "label": label,
            **{k: {"values": rng.normal(0, 1, 6).tolist()} for k in contrasts.QUANTITIES},
        }

    rows = [row("ddpo", "DDPO_IS"), row("hrf", "HRF"), row("kl", "KL")]
    items = contrasts.contrasts(rows)
    assert len(items) == 2 * len(contrasts.QUANTITIES)
    first = items[1]  # HRF's first diversity quantity
    expected = welch(rows[1][first["key"]]["values"], rows[0][first["key"]]["values"])
    assert first["diff"] == pytest.approx(expected["diff"]) and first["p"] == pytest.approx(expected["p"])
    family = [c for c in items if c["key"] != "reward_gain"]
    assert [c["p_holm"] for c in family] == pytest.approx(holm([c["p"] for c in family]))
    assert all("p_holm" not in c for c in items if c["key"] == "reward_gain")


@pytest.mark.slow
def test_collapse_study_runs_resumes_and_reports(tmp_path, monkeypatch):
    """Two cells at toy size end to end: curves with a base point and one per checkpoint; a cell file deleted
    is rebuilt from the kept run and samples without training again; the report reads the cells."""
    collapse = import_benchmark("collapse")
    monkeypatch.setattr(collapse, "EPOCHS", 2)
    monkeypatch.setattr(collapse, "EVAL_EVERY", 1)
    monkeypatch.setattr(collapse, "NUM_EVAL", 8)
    monkeypatch.setitem(collapse.SEEDS, "tuning", [0])
    small = ["train.references=4", "train.sample_batch_size=4"]
    monkeypatch.setitem(collapse.METHODS, "ddpo", ("DDPO_IS", "ddpo", small))
    args = ["run", "--stage", "tuning", "--tasks", "compressibility", "--methods", "ddpo", "--out", str(tmp_path)]
    assert collapse.main(args) == 0
    cell_file = tmp_path / "cells" / "compressibility" / "ddpo" / "seed0.json"
    cell = json.loads(cell_file.read_text())
    assert [p["epoch"] for p in cell["curve"]] == [0, 1, 2]
    assert all(math.isfinite(p["vendi/domain"]) and 0 <= p["confident/domain"] <= 1 for p in cell["curve"])
    metrics_log = tmp_path / "work" / "compressibility" / "ddpo" / "seed0" / "run" / "metrics.jsonl"
    before = metrics_log.stat().st_mtime_ns
    cell_file.unlink()
    assert collapse.main(args) == 0
    assert json.loads(cell_file.read_text())["curve"] == cell["curve"]
    assert metrics_log.stat().st_mtime_ns == before  # not trained again
    assert collapse.main(["report", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.json").is_file() and (tmp_path / "curves_tuning.png").is_file()


def test_collapse_cells_are_reused_only_for_the_same_training():
    collapse = import_benchmark("collapse")
    cfg = {
        "train": {"lr": 1e-4, "seed": 100},
        "reward": {"name": "r", "options": {"a": 1}},
        "output": {"checkpoint_every": 10},
    }
    assert collapse.same_training(cfg, cfg)
    assert collapse.same_training(cfg, {**cfg, "output": {"checkpoint_every": 5, "trackers": []}})  # output only
    assert collapse.same_training(cfg, {**cfg, "train": {**cfg["train"], "new_field": 0}})  # added since
    assert not collapse.same_training(cfg, {**cfg, "train": {"lr": 3e-4, "seed": 100}})
    assert not collapse.same_training(cfg, {**cfg, "reward": {"name": "r", "options": {"a": 2}}})
    assert not collapse.same_training(cfg, {**cfg, "train": {"lr": 1e-4}})  # a field dropped


def test_every_committed_collapse_cell_is_the_same_training_as_its_config():
    """The committed cells stay reusable: each one's stored config trains as its cell's config does today."""
    import dataclasses

    collapse = import_benchmark("collapse")
    paths = sorted((Path(__file__).resolve().parents[1] / "benchmarks/results/collapse/cells").rglob("*.json"))
    assert len(paths) >= 90
    for path in paths:
        cell = json.loads(path.read_text())
        current = dataclasses.asdict(collapse.cell_config(cell["task"], cell["method"], cell["seed"]))
        assert collapse.same_training(cell["config"], current), path
        changed = dict(current, train={**current["train"], "lr": current["train"]["lr"] * 2})
        assert not collapse.same_training(cell["config"], changed), path


def test_collapse_report_fills_only_its_markdown_block(tmp_path):
    collapse = import_benchmark("collapse")
    doc = tmp_path / "R.md"
    doc.write_text(f"before\n{collapse.MARKERS[0]}\nold\n{collapse.MARKERS[1]}\nafter\n")
    collapse.insert_report(doc, "new table")
    assert doc.read_text() == f"before\n{collapse.MARKERS[0]}\nnew table\n{collapse.MARKERS[1]}\nafter\n"
    (tmp_path / "S.md").write_text("no markers")
    with pytest.raises(Exception, match="collapse-report"):
        collapse.insert_report(tmp_path / "S.md", "x")


def test_checkpoint_metrics_give_every_metric_the_report_reads():
    """The study's lean metric set has every diversity metric, the primary and the evaluator's confidence,
    each in its range; the confidence is the evaluator's own score of the same samples."""
    import torch

    from hrf.data.classifier_b import evaluator_confidence, load_evaluator_classifier

    collapse = import_benchmark("collapse")
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = collapse.checkpoint_metrics(images)
    assert set(collapse.DIVERSITY) | {collapse.PRIMARY, collapse.PRIMARY_FALLBACK} <= set(out)
    for name in collapse.TASKS.values():
        assert math.isfinite(out[f"reward/{name}"]) and out[f"reward_sem/{name}"] > 0
    for key in ("vendi/pixels", "vendi/domain", "vendi/evaluator"):
        assert 1.0 <= out[key] <= len(images) + 1e-9
    for key in ("factors/domain_coverage", "factors/evaluator_coverage", "confident/domain", "confident/evaluator"):
        assert 0.0 <= out[key] <= 1.0
    probs = {k: v.float().numpy() for k, v in load_evaluator_classifier().probs(images).items()}
    assert out["confidence/evaluator"] == pytest.approx(evaluator_confidence(probs))


def test_mean_curve_and_secondary_contrasts_on_known_curves():
    """The mean curve averages the seeds' readings where ≥ 2 reach a gain; a secondary difference is Welch's
    interval at the primary level, and waits for 2 seeds of each method."""
    collapse = import_benchmark("collapse")
    gains = [0.0, 0.1, 0.2, 0.3, 0.4]
    a = _cell(collapse, "smile", "hrf", 100, gains, [1.0, 0.9, 0.8, 0.7, 0.6])
    b = _cell(collapse, "smile", "hrf", 101, gains, [1.0, 0.8, 0.6, 0.4, 0.2])
    short = _cell(collapse, "smile", "hrf", 102, [0.0, 0.1, 0.1, 0.1, 0.1], [1.0, 0.5, 0.5, 0.5, 0.5])
    xs, ys = collapse.mean_curve([a, b, short], collapse.PRIMARY_FALLBACK, num=5)
    assert xs == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4][: len(xs)]) and len(xs) == 5
    assert ys == pytest.approx([1.0, (0.9 + 0.8 + 0.5) / 3, 0.7, 0.55, 0.4])

    tuning = [_cell(collapse, "smile", "ddpo", s, [g * 1.0 for g in gains], [1.0] * 5) for s in (0, 1)]
    tests_ = [
        _cell(collapse, "smile", m, s, gains, [1.0, 0.9, f + 0.01 * (s - 100), 0.7, 0.6])
        for s in (100, 101, 102)
        for m, f in (("ddpo", 0.5), ("hrf", 0.6), ("hrf_noise", 0.4), ("ddpo_T40", 0.7), ("hrfd", 0.55))
    ]
    tests_.append(_cell(collapse, "smile", "hrf_T40", 100, gains, [1.0, 0.9, 0.8, 0.7, 0.6]))
    # a KL baseline that ends at +0.15, short of the primary level, keeping 0.94
    kl_gains, kl_fracs = [0.0, 0.05, 0.1, 0.12, 0.15], [1.0, 0.98, 0.96, 0.95, 0.94]
    tests_ += [_cell(collapse, "smile", "kl0.1", s, kl_gains, kl_fracs) for s in (100, 101, 102)]
    entry = collapse.analyse(tuning + tests_)["tasks"]["smile"]
    by = {(c["a"], c["b"]): c for c in entry["secondary_contrasts"]}
    assert set(by) == {
        ("hrf_noise", "hrf"),
        ("ddpo_T40", "ddpo"),
        ("hrf_T40", "ddpo_T40"),
        ("hrfd", "ddpo"),
        ("kl0.1", "hrf"),
    }
    assert by["kl0.1", "hrf"]["diff"] is None and by["kl0.1", "hrf"]["n"] == [0, 3]
    assert by["hrfd", "ddpo"]["diff"] == pytest.approx(0.05)
    # §5.2 for HRF-D: it ends where DDPO_IS does (gain 0.4, fraction 0.6), so it keeps the same there
    stopped = {(d["method"], d["reference"]): d for d in entry["stopped_at"]}
    assert set(stopped) == {("hrf", "ddpo"), ("hrfd", "ddpo"), ("hrf", "kl0.1")}
    # HRF read at the KL run's final +0.15: halfway from 0.9 to 0.6 + 0.01 (s − 100), against the KL's 0.94
    assert stopped["hrf", "kl0.1"]["minus_reference"][0] == pytest.approx(0.75 + 0.005 - 0.94)
    assert stopped["hrfd", "ddpo"]["minus_reference"][0] == pytest.approx(0.0, abs=1e-12)
    assert stopped["hrfd", "ddpo"]["n_reached"] == 3
    noise = by["hrf_noise", "hrf"]
    expected = welch([0.4, 0.41, 0.42], [0.6, 0.61, 0.62])  # the primary level 0.2 falls on the third checkpoint
    assert noise["diff"] == pytest.approx(-0.2) and noise["ci"] == pytest.approx(expected["ci"])
    assert by["hrf_T40", "ddpo_T40"]["diff"] is None and by["hrf_T40", "ddpo_T40"]["n"] == [1, 3]
    text = collapse.markdown(collapse.analyse(tuning + tests_), tuning + tests_)
    assert "| HRF (T = 40) − DDPO_IS (T = 40) | 1, 3 | — (1, 3) | — (1, 3) | — (1, 3) |" in text
    # away from the primary level the near-noise windows' curve is HRF's: no difference there
    assert [d["diff"] for d in noise["levels"]] == pytest.approx([0.0, -0.2, 0.0], abs=1e-12)


def test_readings_on_broken_checkpoints_are_counted_and_dropped_in_a_sensitivity_reading():
    collapse = import_benchmark("collapse")
    gains = [0.0, 0.1, 0.2, 0.3, 0.4]
    cells = [_cell(collapse, "smile", "ddpo", s, gains, [1.0] * 5) for s in (0, 1)]  # levels 0.1, 0.2, 0.3
    for s in (100, 101, 102):
        e = 0.01 * (s - 101)
        cells.append(_cell(collapse, "smile", "ddpo", s, gains, [1.0, 0.9, 0.5 + e, 0.4, 0.3]))
        cells.append(_cell(collapse, "smile", "hrf", s, gains, [1.0, 0.9, 0.7 + e, 0.6, 0.5]))
    bad = cells[-1]  # HRF seed 102 breaks at epoch 20, the first checkpoint at the primary level 0.2
    bad["curve"][2]["confident/domain"] = 0.1
    assert collapse.broken(bad) == [20]
    assert collapse.reads_broken(bad, 0.15) and not collapse.reads_broken(bad, 0.25)
    entry = collapse.analyse(cells)["tasks"]["smile"]
    assert [a["n_broken"] for a in entry["methods"]["hrf"]["at_levels"]] == [0, 1, 0]
    primary = entry["contrasts"][collapse.PRIMARY_LEVEL]
    assert primary["welch"]["n_a"] == 3  # the protocol's test keeps every reading
    assert primary["welch_unbroken"]["n_a"] == 2
    assert primary["welch_unbroken"]["diff"] == pytest.approx(welch([0.69, 0.70], [0.49, 0.50, 0.51])["diff"])
    assert "welch_unbroken" not in entry["contrasts"][0]
    text = collapse.markdown(collapse.analyse(cells), cells)
    assert "0.700 ± " in text and "(3; 1 broken)" in text and "a sensitivity reading, no verdict" in text
