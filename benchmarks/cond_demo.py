"""Within-prompt collapse on the class-conditional faces model: one seed of DDPO_IS and HRF, as a picture.

    python benchmarks/cond_demo.py run --task smile --out DIR [--model SPEC] [--epochs 60] [--every 20]
                                       [--num 16] [--jobs 2] [--quick] [--no-progress]

A demonstration, not a study: one training seed per method, so its numbers show what the regime looks like
and test nothing. The model (``--model``, default ``hrf:faces32-cond``, or a class-conditional model directory
made by ``hrf pretrain --condition hair_color,background``) is fine-tuned with the task's presets
``configs/faces32-cond/TASK-{ddpo,hrf}.toml`` in the collapse regime of :mod:`hrf.experiments.collapse`
(``--epochs`` epochs, HRF with the paper's windows in thirds of the budget, a checkpoint every ``--every``),
both runs at once, each in its own single-thread process (:func:`hrf.experiments.demo.train_and_sample`).
A rerun continues an interrupted run and reuses a finished one; the evaluation is redone (minutes).

The base model, every checkpoint and the final models are then sampled per prompt from the same noise
(:func:`hrf.evaluation.prompted.evaluate_per_prompt`; ``--num`` samples per prompt, the presets' guidance
scale and steps) and read by the task's reward, Vendi of the independent evaluator classifier's features
within each prompt, and that evaluator's prompt fidelity and free-factor coverage. ``DIR`` gets
``report.json``, ``REPORT.md``, ``grids/grid_PROMPT.png`` (base and final models, a row each) and
``curves.png`` (prompt-averaged reward gain against within-prompt Vendi as a fraction of the base's).
``--quick``: two prompts, four sampling steps, two epochs: a smoke run of the pipeline in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hrf.config import Config
from hrf.errors import HrfError

PRESETS = "faces32-cond"
TASKS = ("smile", "compressibility")
METHODS = ("ddpo", "hrf")  # the pair the collapse study compares
SEED = 0  # training seed (the demo's)
DIVERSITY = "vendi/evaluator"  # within-prompt Vendi of the independent evaluator's features (pixels without one)
QUICK = ["sampling.num_steps=4", "prompts.classes=[0, 1]", "train.sample_batch_size=8", "train.train_batch_size=64"]
QUICK_METHOD = {  # T = 4 leaves start steps 0 and 1 to train (skip_last_steps = 1)
    "ddpo": ["train.references=4"],
    "hrf": [
        "train.references=2",
        "train.branches=2",
        "schedule.windows=[[0, 0], [1, 1]]",
        "schedule.iterations=[1, 1]",
    ],
}


def cond_configs(task: str, model: str, epochs: int, every: int, quick: bool) -> dict[str, Config]:
    """DDPO_IS's and HRF's configs on ``model`` in the collapse regime (``--quick``: tiny)."""
    from hrf.experiments.collapse import collapse_config

    if task not in TASKS:
        raise HrfError(f"--task must be one of {', '.join(TASKS)}; got '{task}'")
    if epochs < 1 or every < 1:
        raise HrfError(f"--epochs and --every must be at least 1; got {epochs} and {every}")
    return {
        m: collapse_config(
            task,
            m,
            SEED,
            every,
            QUICK + QUICK_METHOD[m] if quick else [],
            epochs,
            presets=PRESETS,
            model=model,
        )
        for m in METHODS
    }


def check_model(spec: str) -> dict:
    """The condition record of a class-conditional faces model, or a one-line error."""
    from hrf.evaluation.prompted import condition_of

    cond = condition_of(spec)  # resolves the spec: a missing model is a one-line HrfError
    if cond is None:
        raise HrfError(f"'{spec}' is not a class-conditional faces model (make one with hrf pretrain --condition)")
    return cond


def evaluate(cfg: Config, models: dict[str, str], points: dict, num: int, grids: Path, progress: bool) -> dict:
    """``{prompt: {model: {metric: value}}}`` of the base and final ``models`` (with per-prompt grids) and of
    every checkpoint in ``points``, all drawn from the same noise per prompt."""
    import torch
    from tqdm.auto import tqdm

    from hrf.benchmarks import get_benchmark
    from hrf.evaluation.prompted import evaluate_per_prompt, faces_prompt_metrics
    from hrf.rewards import make_reward

    bench = get_benchmark("faces")
    common: dict[str, Any] = {
        "prompts": list(cfg.prompts.classes),
        "num": num,
        "seed": SEED,
        "steps": cfg.sampling.num_steps,
        "guidance_scale": cfg.sampling.guidance_scale,
        "null_class": cfg.prompts.null_class,
        "rewards": {cfg.reward.name: make_reward(cfg.reward.name, **cfg.reward.options)},
        "embedders": ["pixels"],
        "benchmark": bench,  # adds the domain classifier's and the independent evaluator's features
        "prompt_metrics": faces_prompt_metrics(models["base"], bench, SEED),
    }
    grids.mkdir(parents=True, exist_ok=True)
    groups = [(models, grids)] + [({name: spec}, None) for name, (_, _, spec) in points.items()]
    torch.set_num_threads(1)  # the demo's metric threads: fixed, so the numbers do not depend on the machine
    per_prompt: dict[str, dict[str, dict[str, float]]] = {}
    for group, out_dir in tqdm(groups, desc="evaluate models", unit="group", disable=not progress):
        report = evaluate_per_prompt(group, out_dir=out_dir, **common)
        for prompt, rows in report["prompts"].items():
            per_prompt.setdefault(prompt, {}).update(rows)
    return per_prompt


def curve_point(per_prompt: dict, name: str, epoch: int, reward: str) -> dict:
    """Prompt-averaged metrics of model ``name``: reward and its gain over the base, within-prompt Vendi as
    a fraction of the base's on the same prompt, prompt fidelity and free-coverage ratio."""
    rows = [(per_prompt[p][name], per_prompt[p]["base"]) for p in per_prompt]
    metric = DIVERSITY if DIVERSITY in rows[0][0] else "vendi/pixels"
    mean = lambda values: float(np.mean(values))  # noqa: E731
    return {
        "epoch": epoch,
        "reward": mean([m[reward] for m, _ in rows]),
        "gain": mean([m[reward] - b[reward] for m, b in rows]),
        "fraction": mean([m[metric] / b[metric] for m, b in rows]),
        "pixel_fraction": mean([m["vendi/pixels"] / b["vendi/pixels"] for m, b in rows]),
        "prompt_fidelity": mean([m["prompt_fidelity"] for m, _ in rows]),
        "free_coverage_ratio": mean([m["free_coverage_ratio"] for m, _ in rows]),
    }


def curves(per_prompt: dict, points: dict, budgets: dict, reward: str) -> dict[str, list[dict]]:
    """Per method: the base (epoch 0), its checkpoints and its final model, prompt-averaged."""
    out = {}
    for label, budget in budgets.items():
        mine = sorted((epoch, name) for name, (lab, epoch, _) in points.items() if lab == label)
        out[label] = [curve_point(per_prompt, "base", 0, reward)]
        out[label] += [curve_point(per_prompt, name, epoch, reward) for epoch, name in mine]
        out[label].append(curve_point(per_prompt, label, budget["epochs"], reward))
    return out


def markdown(report: dict, names: list[str]) -> str:
    c = report["config"]
    lines = [
        f"# Within-prompt collapse on {c['model']}: {c['task']}",
        "",
        f"One training seed ({c['train_seed']}) of DDPO_IS and HRF: a picture, not a test. The presets "
        f"configs/{PRESETS}/{c['task']}-{{ddpo,hrf}}.toml "
        + (
            "at --quick's tiny sizes (a smoke run, not the regime)"
            if c["quick"]
            else "in the collapse regime (HRF's windows at the paper's fractions of the chain, a third of the "
            "budget each)"
        )
        + f", {c['epochs']} epochs, a checkpoint every {c['every']}; {c['num_per_prompt']} "
        f"samples per prompt from the same noise for every model, {len(c['prompts'])} prompts, guidance "
        f"{c['guidance_scale']}, T = {c['steps']}. Metrics are averages over prompts; Vendi is within each prompt "
        f"({c['diversity']}) as a fraction of the base model's on that prompt; fidelity and free coverage as "
        "read by the independent evaluator (coverage over that of as many true faces of the prompt).",
        "",
        f"| method | epoch | {c['reward']} | gain | Vendi / base | pixel Vendi / base | prompt fidelity "
        "| free coverage ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, pts in report["curves"].items():
        for p in pts:
            lines.append(
                f"| {label} | {p['epoch']} | {p['reward']:.4g} | {p['gain']:+.4g} | {p['fraction']:.3f} "
                f"| {p['pixel_fraction']:.3f} | {p['prompt_fidelity']:.3f} | {p['free_coverage_ratio']:.3f} |"
            )
    lines += ["", "## Final models per prompt (Vendi / base)", "", "| prompt | " + " | ".join(names) + " |"]
    lines.append("| --- " * (len(names) + 1) + "|")
    for p, rows in report["per_prompt"].items():
        fr = [rows[n][c["diversity"]] / rows["base"][c["diversity"]] for n in names]
        lines.append(f"| {c['prompt_names'].get(p, p)} | " + " | ".join(f"{v:.3f}" for v in fr) + " |")
    lines += ["", "## Budgets", ""]
    lines += [f"- {n}: {b['epochs']} epochs ({b['stopped']})" for n, b in report["budgets"].items()]
    lines += ["", "## Figures", "", "![curves](curves.png)", ""]
    lines += [f"![prompt {p}](grids/grid_{p}.png)" for p in report["per_prompt"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate, write the report; returns it."""
    import json

    from hrf.atomic import write_json, write_text_atomic
    from hrf.evaluation.plots import figure_training_curves
    from hrf.experiments.demo import METHODS as LABELS
    from hrf.experiments.demo import checkpoint_models, train_and_sample
    from hrf.models import resolve_device

    start = time.perf_counter()
    cond = check_model(args.model)
    epochs, every, num = (2, 1, 4) if args.quick else (args.epochs, args.every, args.num)
    if args.jobs < 1:
        raise HrfError(f"--jobs must be at least 1; got {args.jobs}")
    if num < 2:
        raise HrfError(f"--num must be at least 2 (Vendi of one sample is 1); got {num}")
    configs = cond_configs(args.task, args.model, epochs, every, args.quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    where = resolve_device(None)
    jobs = args.jobs if where.type == "cpu" else 1
    models, timings = train_and_sample(out, configs, {}, False, args.progress, where, jobs, draw=False)
    timings.pop("sample every model (sum over processes)", None)
    budgets = {LABELS[m]: json.loads((out / m / "summary.json").read_text()) for m in configs}
    points = checkpoint_models(out, configs)
    t0 = time.perf_counter()
    cfg = configs["ddpo"]
    per_prompt = evaluate(cfg, models, points, num, out / "grids", args.progress)
    timings["evaluate (one thread)"] = time.perf_counter() - t0
    reward = f"reward/{cfg.reward.name}"
    along = curves(per_prompt, points, budgets, reward)
    report: dict[str, Any] = {
        "config": {
            "task": args.task,
            "model": args.model,
            "quick": args.quick,
            "epochs": epochs,
            "every": every,
            "train_seed": SEED,
            "num_per_prompt": num,
            "eval_seed": SEED,
            "prompts": list(cfg.prompts.classes),
            "prompt_names": {str(c): cond["names"][c] for c in cfg.prompts.classes if c < len(cond["names"])},
            "steps": cfg.sampling.num_steps,
            "guidance_scale": cfg.sampling.guidance_scale,
            "reward": reward,
            "diversity": DIVERSITY if DIVERSITY in per_prompt[next(iter(per_prompt))]["base"] else "vendi/pixels",
            "jobs": jobs,
            "models": models,
        },
        "note": "one training seed per method: a picture, not a test",
        "budgets": budgets,
        "curves": along,
        "per_prompt": per_prompt,
    }
    figure_training_curves(along, out / "curves.png", reward, f"within-prompt Vendi ({DIVERSITY})")
    timings["total (wall)"] = time.perf_counter() - start
    report["timings_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    write_json(out / "report.json", report)
    write_text_atomic(out / "REPORT.md", markdown(report, [LABELS[m] for m in configs]))
    if args.progress:
        print(f"cond_demo: wrote {out / 'report.json'}, {out / 'REPORT.md'}, curves.png and grids/")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train DDPO_IS and HRF (seed 0), evaluate per prompt, write the report")
    p.add_argument("--task", default="smile", help=f"one of {', '.join(TASKS)}")
    p.add_argument("--out", required=True, help="output directory (a rerun resumes in it)")
    p.add_argument("--model", default="hrf:faces32-cond", help="a class-conditional faces model (spec or directory)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs per method (the collapse regime's 60)")
    p.add_argument("--every", type=int, default=20, help="epochs between evaluated checkpoints")
    p.add_argument("--num", type=int, default=16, help="samples per prompt per model")
    p.add_argument("--jobs", type=int, default=2, help="training processes at once on a CPU (1: in this process)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress output")
    args = parser.parse_args(argv)
    try:
        run(args)
    except HrfError as exc:
        print(f"cond_demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
