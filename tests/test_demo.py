"""`hrf demo --quick` end to end on the shipped faces model (the pipeline, not the method's numbers)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hrf.cli.main import main
from hrf.errors import HrfError
from hrf.experiments.collapse import collapse_config
from hrf.experiments.demo import demo_configs, paired_changes, training_curves


def test_paired_changes_are_per_sample_differences():
    base = np.array([1.0, 2.0, 3.0, 4.0])
    deltas = {"DDPO_IS": np.array([0.1, 0.2, 0.3, 0.4]), "HRF": np.array([-1.0, 1.0, -1.0, 1.0]), "HRF-D": np.zeros(4)}
    rewards = {"base": {"r": base}, **{name: {"r": base + d} for name, d in deltas.items()}}
    out = paired_changes(rewards, "r", list(deltas))
    for name, d in deltas.items():
        assert out[name]["mean"] == pytest.approx(d.mean())
        assert out[name]["sem"] == pytest.approx(d.std(ddof=1) / 2.0)  # √4 samples
    # the base model's own spread does not enter: HRF's change is 0 ± 0.58, below the base's 0.65
    assert out["HRF"]["sem"] < base.std(ddof=1) / 2.0


def _report(models: dict[str, dict[str, float]]) -> dict:
    return {"models": {name: {k: {"value": v} for k, v in values.items()} for name, values in models.items()}}


def _values(reward: float, vendi: float) -> dict[str, float]:
    return {"reward/r": reward, "vendi/evaluator": vendi, "vendi/domain": 2 * vendi, "confidence/evaluator": 0.9}


def test_training_curves_read_each_method_at_half_ddpo_final_gain():
    # DDPO_IS gains 0 → 1 → 2 while its evaluator Vendi falls 10 → 6 → 2: the level is a gain of 1.0
    final = _report({"base": _values(-1.0, 10.0), "DDPO_IS": _values(1.0, 2.0), "HRF": _values(0.5, 7.0)})
    along = _report({"DDPO_IS@20": _values(0.0, 6.0), "HRF@20": _values(-0.5, 9.0)})
    points = {"DDPO_IS@20": ("DDPO_IS", 20, "x"), "HRF@20": ("HRF", 20, "y")}
    budgets = {"DDPO_IS": {"epochs": 40}, "HRF": {"epochs": 40}}
    curves = training_curves(final, along, points, "r", budgets)
    assert [p["epoch"] for p in curves["points"]["HRF"]] == [0, 20, 40]
    assert [p["gain"] for p in curves["points"]["DDPO_IS"]] == [0.0, 1.0, 2.0]
    assert [p["fraction"] for p in curves["points"]["HRF"]] == [1.0, 0.9, 0.7]
    assert curves["points"]["HRF"][1]["domain_fraction"] == pytest.approx(0.9)
    assert curves["level"] == pytest.approx(1.0)
    # DDPO_IS reaches the level exactly at epoch 20 (0.6); HRF crosses it halfway from a gain of 0.5 to 1.5: 0.8
    assert curves["matched"]["DDPO_IS"] == pytest.approx(0.6)
    assert curves["matched"]["HRF"] == pytest.approx(0.8)


def test_training_curves_say_when_a_method_never_reaches_the_level():
    final = _report({"base": _values(0.0, 4.0), "DDPO_IS": _values(2.0, 2.0), "HRF": _values(0.5, 4.0)})
    curves = training_curves(final, _report({}), {}, "r", {"DDPO_IS": {"epochs": 5}, "HRF": {"epochs": 5}})
    assert curves["matched"] == {"DDPO_IS": pytest.approx(0.75), "HRF": None}


def test_the_demo_reads_each_method_end_against_the_shipped_frontier(monkeypatch):
    import hrf.evaluation.frontier as fr
    from hrf.experiments.demo import _curves_markdown, frontier_reading

    key = "frac/vendi/evaluator"
    shipped = {
        "curve": [{"gain": g, "reached": g <= 1.0, key: 1.0 - 0.2 * g} for g in (0.0, 0.5, 1.0, 1.5)],
        "largest_reachable_gain": 1.0,
        "key": {"num": 20000},
    }
    monkeypatch.setattr(fr, "shipped_frontier", lambda spec, reward, steps: shipped)
    final = _report({"base": _values(0.0, 10.0), "DDPO_IS": _values(2.0, 2.0), "HRF": _values(0.5, 8.1)})
    curves = training_curves(final, _report({}), {}, "r", {"DDPO_IS": {"epochs": 5}, "HRF": {"epochs": 5}})
    curves["frontier"] = frontier_reading(curves, "hrf:faces32", "r", 10)
    # HRF ends at +0.5 keeping 0.81, where the frontier keeps 0.9; DDPO_IS ends beyond the frontier's reach
    assert curves["frontier"]["ends"]["HRF"]["frontier"] == pytest.approx(0.9)
    assert curves["frontier"]["ends"]["DDPO_IS"]["frontier"] is None
    assert curves["frontier"]["curve"] == [(0.0, 1.0), (0.5, 0.9), (1.0, 0.8)]  # only the reached part
    text = "\n".join(_curves_markdown({"curves": curves}))
    assert "frontier keeps 0.900 there (0.90 of it)" in text
    assert "beyond the frontier's reach (+1)" in text


def test_demo_configs_are_the_collapse_regime_and_refuse_bad_methods():
    cfgs = demo_configs("compressibility", quick=False)
    assert set(cfgs) == {"ddpo", "hrf"}
    assert cfgs["ddpo"].train.max_epochs == cfgs["hrf"].train.max_epochs == 30
    assert cfgs["hrf"].schedule.windows == [[2, 3], [4, 6], [6, 7]]
    assert cfgs["hrf"].schedule.iterations == [10, 10, 10]  # a third of the demo's budget per window
    assert collapse_config("compressibility", "hrf", 0).schedule.iterations == [20, 20, 20]  # the study's 60
    assert cfgs["ddpo"].output.checkpoint_every == 10
    assert demo_configs("smile", quick=False, overrides=["train.seed=3"])["hrf"].train.seed == 3
    with pytest.raises(HrfError, match="include 'ddpo'"):
        demo_configs("compressibility", quick=False, methods=["hrf"])
    with pytest.raises(HrfError, match="must be some of"):
        demo_configs("compressibility", quick=False, methods=["ddpo", "ppo"])


def test_train_and_sample_samples_each_run_as_it_ends_and_matches_rewards_on_one_thread(tmp_path, monkeypatch):
    import torch

    import hrf.experiments.demo as demo

    order, threads = [], []

    def fake_train(cfg, out, progress, device):
        threads.append(torch.get_num_threads())
        order.append(("train", out.name, cfg.train.target_reward))
        for epoch in (1, 2):
            (out / "checkpoints" / f"epoch_{epoch:06d}").mkdir(parents=True)
            (out / "checkpoints" / f"epoch_{epoch:06d}" / "state.pt").write_bytes(b"")
        (out / "summary.json").write_text(json.dumps({"epochs": 3, "last_reward_mean": -0.5}))
        return out / "final"

    def fake_sample(spec, path, num, seed, steps, device):
        threads.append(torch.get_num_threads())
        order.append(("sample", path.name, None))

    monkeypatch.setattr(demo, "train_to_completion", fake_train)
    monkeypatch.setattr(demo, "_sample", fake_sample)
    configs = demo_configs("compressibility", quick=True)
    common = {"num": 4, "seed": 0, "steps": 10, "cache_dir": tmp_path / "eval"}
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's count: the tasks run on TASK_THREADS whatever it is
    try:
        models, timings = demo.train_and_sample(tmp_path, configs, common, True, False, torch.device("cpu"), 1)
        assert torch.get_num_threads() == 3 and set(threads) == {demo.TASK_THREADS}
    finally:
        torch.set_num_threads(before)
    assert models == {
        "base": "hrf:faces32",
        "DDPO_IS": str(tmp_path / "ddpo" / "final"),
        "HRF": str(tmp_path / "hrf" / "final"),
    }
    # --match-reward: HRF starts after DDPO_IS, with its last reward as the target; each run's final model
    # and checkpoints before its last epoch are sampled once it ends, into the cache the evaluation reads
    assert order == [
        ("train", "ddpo", None),
        ("sample", "samples_base.npz", None),
        ("train", "hrf", -0.5),
        ("sample", "samples_DDPO_IS.npz", None),
        ("sample", "samples_DDPO_IS_1.npz", None),
        ("sample", "samples_DDPO_IS_2.npz", None),
        ("sample", "samples_HRF.npz", None),
        ("sample", "samples_HRF_1.npz", None),
        ("sample", "samples_HRF_2.npz", None),
    ]
    assert set(timings) == {"train DDPO_IS", "train HRF", "sample every model (sum over processes)"}


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One ``hrf demo --quick`` run, made once: one test reads it, another reruns a copy of it."""
    out = tmp_path_factory.mktemp("quick") / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_demo_quick_end_to_end(quick_demo):
    out = quick_demo
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["models"]) == {"base", "DDPO_IS", "HRF"}
    for name in ("DDPO_IS", "HRF"):
        entry = report["models"][name]["reward/jpeg_compressibility"]
        assert entry["value"] < 0 and entry["err"] > 0  # −kB, with a standard error
        entries = report["models"][name]
        assert "factors/entropy" in entries or any(k.startswith("factors/") for k in entries)
        assert 0 < entries["confidence/evaluator"]["value"] <= 1 and entries["vendi/evaluator"]["value"] >= 1
    assert (out / "REPORT.md").read_text().startswith("# hrf demo")
    assert set(report["paired_change"]) == {"DDPO_IS", "HRF"}
    # the curves run over every checkpoint: the quick runs keep one per epoch (DDPO_IS 2 epochs, HRF 3)
    assert [p["epoch"] for p in report["curves"]["points"]["DDPO_IS"]] == [0, 1, 2]
    assert [p["epoch"] for p in report["curves"]["points"]["HRF"]] == [0, 1, 2, 3]
    assert (out / "eval" / "curves.png").is_file()
    assert "Reward and diversity over training" in (out / "REPORT.md").read_text()
    assert all(np.isfinite(c["mean"]) and c["sem"] > 0 for c in report["paired_change"].values())
    assert "paired over the same initial noise" in (out / "REPORT.md").read_text()


@pytest.mark.slow
def test_demo_match_reward_stops_hrf_at_ddpo_reward_and_reuses_finished_runs(quick_demo, tmp_path):
    from hrf.config import load_config

    out = tmp_path / "demo"
    shutil.copytree(quick_demo, out)  # a finished demo, rerun with --match-reward
    before = {m: (out / m / "summary.json").stat().st_mtime_ns for m in ("ddpo", "hrf")}
    # in this process (--jobs 1): the fixture's run covers the worker processes
    argv = ["demo", "--quick", "--match-reward", "--methods", "ddpo", "hrf", "hrfd", "--out", str(out), "--jobs", "1"]
    argv.append("--no-progress")
    assert main(argv) == 0
    # DDPO_IS's config is unchanged, so its finished run is reused; HRF's now has a target reward: retrained
    assert (out / "ddpo" / "summary.json").stat().st_mtime_ns == before["ddpo"]
    assert (out / "hrf" / "summary.json").stat().st_mtime_ns != before["hrf"]
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
