"""``hrf demo``: the whole method on the embedded default, on a CPU.

The shipped faces model (hrf:faces32) is fine-tuned for one task with DDPO_IS, HRF and HRF-D (presets
``configs/faces32/TASK-{ddpo,hrf,hrfd}.toml``, each header saying how its budget was set), then the base
model and the three fine-tuned ones are sampled from the same noise and compared: reward ± SE, Vendi on
pixels and on the factor classifier's features, the classifier's IS, and the ground-truth diversity of
high-level factor combinations. Every stage resumes: a finished run or sample set is not redone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hrf.config import load_config
from hrf.experiments.runs import preset_path
from hrf.training.run_dir import train_to_completion

METHODS = {"ddpo": "DDPO_IS", "hrf": "HRF", "hrfd": "HRF-D"}
TASKS = {
    "compressibility": "jpeg_compressibility",
    "incompressibility": "jpeg_incompressibility",
    "smile": "faces_smile",
}
# --quick: the same pipeline at a size CI runs in a minute or two.
QUICK = {
    "ddpo": ["train.max_epochs=1", "train.references=8", "train.sample_batch_size=8", "train.train_batch_size=64"],
    "hrf": [
        "train.max_epochs=2",
        "train.references=2",
        "train.branches=4",
        "schedule.iterations=[1,1,1]",
        "train.sample_batch_size=8",
        "train.train_batch_size=64",
    ],
    "hrfd": [
        "train.max_epochs=1",
        "train.references=2",
        "train.branches=4",
        "schedule.candidates=[1,5]",
        "train.sample_batch_size=8",
        "train.train_batch_size=64",
    ],
}


def demo_configs(task: str, quick: bool, overrides: Sequence[str] = ()) -> dict:
    """The three method configs of the demo for ``task``."""
    from hrf.benchmarks import get_benchmark

    folder = get_benchmark("faces").presets
    return {
        m: load_config(preset_path(f"{folder}/{task}-{m}"), (QUICK[m] if quick else []) + list(overrides))
        for m in METHODS
    }


def run_demo(
    out: Path,
    task: str = "compressibility",
    quick: bool = False,
    num_eval: int = 512,
    seed: int = 0,
    overrides: Sequence[str] = (),
    progress: bool = True,
    match_reward: bool = False,
) -> dict:
    """Fine-tune with the three methods, evaluate against the base model, write ``REPORT.md``.

    ``match_reward`` is the paper's §5.2 protocol: DDPO_IS trains first, and HRF and HRF-D stop as soon as
    an epoch's mean reward reaches DDPO_IS's last one (or at the end of their preset budget).
    """
    from hrf.benchmarks import get_benchmark
    from hrf.evaluation.pipeline import evaluate_models
    from hrf.evaluation.report import metrics_markdown, report_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    configs = demo_configs(task, quick, overrides)
    models = {"base": configs["ddpo"].model.path}
    for method, cfg in configs.items():
        t0 = time.perf_counter()
        if progress:
            print(f"hrf demo: {METHODS[method]} ({cfg.schedule.kind} schedule) → {out / method}")
        models[METHODS[method]] = str(train_to_completion(cfg, out / method, progress=progress))
        timings[f"train {METHODS[method]}"] = time.perf_counter() - t0
        if match_reward and method == "ddpo":
            target = json.loads((out / method / "summary.json").read_text())["last_reward_mean"]
            for other in ("hrf", "hrfd"):
                configs[other].train.target_reward = target
    budgets = {METHODS[m]: json.loads((out / m / "summary.json").read_text()) for m in configs}
    t0 = time.perf_counter()
    num = 32 if quick else num_eval
    steps = configs["ddpo"].sampling.num_steps
    report = evaluate_models(
        models,
        num=num,
        seed=seed,
        steps=steps,
        cache_dir=out / "eval",
        rewards=[TASKS[task]],
        benchmark=get_benchmark("faces"),
        n_boot=0 if quick else 200,
        is_splits=1 if quick else 5,
        progress=progress,
        return_arrays=True,
    )
    figures = report_figures(report, report.pop("images"), out / "eval")
    report["paired_change"] = paired_changes(report.pop("arrays")["rewards"], TASKS[task])
    timings["evaluate"] = time.perf_counter() - t0
    report["timings_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    report["demo"] = {
        "task": task,
        "quick": quick,
        "num_eval": num,
        "seed": seed,
        "models": models,
        "match_reward": match_reward,
        "budgets": budgets,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    (out / "REPORT.md").write_text(_report_markdown(report, metrics_markdown(report), figures, out))
    return report


def paired_changes(rewards: dict[str, dict[str, np.ndarray]], reward: str) -> dict[str, dict[str, float]]:
    """Each fine-tuned model's per-sample reward minus the base model's on the same initial noise: mean and
    standard error. Pairing removes the sample-to-sample spread that the unpaired means carry."""
    from hrf.evaluation.metrics import mean_sem

    base = np.asarray(rewards["base"][reward], dtype=np.float64)
    out = {}
    for name in METHODS.values():
        mean, sem = mean_sem(np.asarray(rewards[name][reward], dtype=np.float64) - base)
        out[name] = {"mean": mean, "sem": sem}
    return out


def _report_markdown(report: dict, table: str, figures: list[Path], out: Path) -> str:
    task = report["demo"]["task"]
    reward_key = f"reward/{TASKS[task]}"
    base = report["models"]["base"][reward_key]["value"]
    lines = [
        f"# hrf demo — {task} on the faces benchmark",
        "",
        f"Base model {report['demo']['models']['base']} fine-tuned with DDPO_IS, HRF and HRF-D "
        f"(presets configs/faces32/{task}-*.toml); {report['demo']['num_eval']} samples per model from the "
        f"same initial noise (seed {report['demo']['seed']}).",
        "",
        table,
        "## Reward change over the base model, paired over the same initial noise",
        "",
    ]
    for name in METHODS.values():
        entry, change = report["models"][name][reward_key], report["paired_change"][name]
        ratio = f" ({change['mean'] / change['sem']:+.1f} s.e.)" if change["sem"] > 0 else ""
        lines.append(
            f"- {name}: {change['mean']:+.4f} ± {change['sem']:.4f}{ratio}; mean {entry['value']:.4g} (base {base:.4g})"
        )
    protocol = (
        "HRF and HRF-D stopped at DDPO_IS's last training reward or at the end of their budget "
        "(`--match-reward`, the paper's §5.2)"
        if report["demo"]["match_reward"]
        else f"the presets' budgets, configs/faces32/{task}-*.toml"
    )
    lines += ["", f"## Budgets ({protocol})", ""]
    for name, b in report["demo"]["budgets"].items():
        done = (
            f", {b['trajectories']} trajectories, {b['trained_pairs']} trained (trajectory, step) pairs"
            if "trained_pairs" in b
            else ""
        )
        lines.append(
            f"- {name}: {b['epochs']} epochs ({b['stopped']}){done}; last training reward {b['last_reward_mean']:.4g}"
        )
    lines += ["", "## Time (seconds, this machine)", ""]
    lines += [f"- {k}: {v}" for k, v in report["timings_seconds"].items()]
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in figures]
    return "\n".join(lines) + "\n"
