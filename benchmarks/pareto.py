"""Reward gained vs diversity kept: DDPO_IS, HRF, HRF-D and a KL-to-base baseline on the faces benchmark.

    python benchmarks/pareto.py [--quick] [--tasks ...] [--seeds ...] [--model SPEC] --out DIR

Every (task, method, seed) cell fine-tunes the base model from the presets' budgets
``configs/faces32/TASK-{ddpo,hrf,hrfd}.toml`` (the KL baseline is the DDPO preset with ``train.kl_coef``),
samples ``--num-eval`` images from the same initial noise as the base model and evaluates them with
``hrf.evaluation.evaluate_models``. A cell's result is kept in ``DIR/cells/`` and reused while its training
config, base model and evaluation are unchanged (``hrf.experiments.cells``); an interrupted training run
resumes from its checkpoint, so rerunning the same command continues the study.
Writes ``pareto.json`` / ``pareto.md`` (means over seeds with 95% t-intervals) and one Figure 5 per task.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from hrf.benchmarks import get_benchmark
from hrf.cli.common import positive_int
from hrf.config import Config, load_config, preset_path
from hrf.evaluation.samples import weights_fingerprint
from hrf.experiments.cells import (
    cell_key,
    seed_summary,
    stored_cell,
    train_and_evaluate,
    write_json,
)
from hrf.experiments.demo import TASKS
from hrf.training.run_dir import run_totals

FACES = get_benchmark("faces")  # the study's world: its presets and its classifier's factor metrics
# label, preset suffix, overrides. The KL coefficient: the per-step KL is a mean over C·H·W of
# Δμ²/(2σ²), the same per-dimension scale as the log-probs in the PPO ratio, and advantages are unit-std;
# 0.1 prices a one-σ drift of a step's mean (KL 0.5) at 0.05 per step, which restrains without freezing.
KL_COEF = 0.1
METHODS: dict[str, tuple[str, str, list[str]]] = {
    "ddpo": ("DDPO_IS", "ddpo", []),
    "hrf": ("HRF", "hrf", []),
    "hrfd": ("HRF-D", "hrfd", []),
    "kl": (f"DDPO_IS+KL({KL_COEF})", "ddpo", [f"train.kl_coef={KL_COEF}"]),
    # not in the default: DDPO_IS stopped at 2/3 of the epochs, a point at a lower reward on
    # DDPO's own path, to compare diversity at a comparable reward rather than at an equal budget
    "ddpo_short": ("DDPO_IS (8 epochs)", "ddpo", ["train.max_epochs=8"]),
}
DEFAULT_METHODS = ["ddpo", "hrf", "hrfd", "kl"]
# --quick: a handful of trajectories, one epoch; the pipeline end to end in a minute or two.
QUICK_COMMON = ["train.max_epochs=1", "train.sample_batch_size=8", "train.train_batch_size=64"]
QUICK = {
    "ddpo": ["train.references=4"],
    "hrf": ["train.references=2", "train.branches=2"],
    "hrfd": ["train.references=2", "train.branches=2"],  # and two of the preset's candidates (cell_config)
    "kl": ["train.references=4"],
    "ddpo_short": ["train.references=4"],
}
# Diversity metrics reported as a fraction of the base model's (evaluate_images keys).
DIVERSITY = {
    "vendi/pixels": "Vendi (pixels)",
    "vendi/domain": "Vendi (domain embedding)",
    "is/domain": "IS (domain, high-level combos)",
    "factors/entropy": "factor entropy",
    "factors/coverage": "combo coverage",
}


def cell_config(
    task: str, method: str, seed: int, model: str, quick: bool, scale: float = 1.0, epochs_scale: int = 1
) -> Config:
    """The training config of one cell.

    ``scale`` multiplies every method's trajectories per epoch alike; ``epochs_scale`` multiplies its epochs
    (and each HRF window's iterations, so the windows keep their shares of the run) alike.
    """
    _, suffix, extra = METHODS[method]
    overrides = [f"model.path={json.dumps(model)}", f"train.seed={seed}", "output.grid_every=0", *extra]
    if quick:
        overrides += QUICK_COMMON + QUICK[method]
    cfg = load_config(preset_path(f"{FACES.presets}/{task}-{suffix}"), overrides)
    if quick and cfg.schedule.kind == "dynamic":
        overrides.append(f"schedule.candidates={[cfg.schedule.candidates[0], cfg.schedule.candidates[-1]]}")
    if scale != 1.0:
        overrides.append(f"train.references={max(1, round(cfg.train.references * scale))}")
    if epochs_scale != 1:
        overrides.append(f"train.max_epochs={cfg.train.max_epochs * epochs_scale}")
        if cfg.schedule.kind == "windows":
            overrides.append(f"schedule.iterations={[i * epochs_scale for i in cfg.schedule.iterations]}")
    return load_config(preset_path(f"{FACES.presets}/{task}-{suffix}"), overrides)


def base_metrics(out: Path, model: str, num_eval: int, eval_seed: int, steps: int) -> dict:
    """The base model's metrics with every task's reward, computed once per study directory."""
    from hrf.evaluation.pipeline import evaluate_models, metric_values

    path = out / "base.json"
    key = {"model": model, "weights": weights_fingerprint(model), "num_eval": num_eval, "eval_seed": eval_seed}
    if (stored := stored_cell(path, key)) is not None:
        return stored["metrics"]
    report = evaluate_models(
        {"base": model},
        num=num_eval,
        seed=eval_seed,
        steps=steps,
        cache_dir=out,
        rewards=list(TASKS.values()),
        benchmark=FACES,
        noise="sequential",  # the study's noise (hrf.experiments.cells.STUDY_NOISE): its committed cells used it
        batch_size=64,
    )
    metrics = metric_values(report, "base")
    write_json(path, {**key, "metrics": metrics})
    return metrics


def run_cell(
    out: Path,
    task: str,
    method: str,
    seed: int,
    model: str,
    quick: bool,
    num_eval: int,
    eval_seed: int,
    scale: float = 1.0,
    epochs_scale: int = 1,
) -> dict:
    """Train and evaluate one cell, or read its stored result (kept only for the same config, weights and
    evaluation)."""
    name = f"{task}-{method}-seed{seed}"
    cfg = cell_config(task, method, seed, model, quick, scale, epochs_scale)
    key = cell_key(cfg, num_eval, eval_seed)
    if (stored := stored_cell(out / "cells" / f"{name}.json", key)) is not None:
        return stored
    t0 = time.perf_counter()
    metrics = train_and_evaluate(cfg, out / "runs" / name, num_eval, eval_seed, FACES)
    seconds = time.perf_counter() - t0
    totals = run_totals(out / "runs" / name)
    cell = {
        "task": task,
        "method": method,
        "label": METHODS[method][0],
        "seed": seed,
        "reward": cfg.reward.name,
        "model": model,
        **key,
        "scale": scale,
        "epochs_scale": epochs_scale,
        "epochs": totals["epochs"],
        "trajectories": totals["trajectories"],
        "trained_pairs": totals["trained_pairs"],
        "train_and_eval_seconds_this_session": round(seconds, 1),
        "metrics": metrics,
    }
    write_json(out / "cells" / f"{name}.json", cell)
    return cell


def measure_epochs(
    out: Path, tasks: list[str], methods: list[str], model: str, quick: bool, scale: float = 1.0
) -> dict[str, float]:
    """Seconds of one training epoch per method (first epoch of the first task), cached in ``timing.json``."""
    from hrf.training.run_dir import prepare_run

    path = out / "timing.json"
    key = f"{model}|{tasks[0]}|quick={quick}|scale={scale}"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    timing = stored.get(key, {})
    for method in methods:
        if method in timing:
            continue
        cfg = cell_config(tasks[0], method, 0, model, quick, scale)
        run = out / "timing_runs" / method
        trainer = prepare_run(cfg, run, force=True, progress=False)
        t0 = time.perf_counter()
        trainer.run_epoch(0)
        timing[method] = time.perf_counter() - t0
        shutil.rmtree(run, ignore_errors=True)
        stored[key] = timing
        write_json(path, stored)
    return timing


def summarise(cells: list[dict], base: dict) -> list[dict]:
    """Per (task, method): reward gain and diversity fractions of the base, mean and 95% t-interval over seeds."""
    rows = []
    for task, method in dict.fromkeys((c["task"], c["method"]) for c in cells):
        group = [c for c in cells if c["task"] == task and c["method"] == method]
        reward_key = f"reward/{TASKS[task]}"
        row = {
            "task": task,
            "method": method,
            "label": METHODS[method][0],
            "seeds": [c["seed"] for c in group],
            "base_reward": base[reward_key],
        }
        values = {"reward": np.array([c["metrics"][reward_key] for c in group])}
        values["reward_gain"] = values["reward"] - base[reward_key]
        for key in DIVERSITY:
            values[f"{key}/fraction"] = np.array(
                [c["metrics"][key] / base[key] if base[key] else np.nan for c in group]
            )
            values[key] = np.array([c["metrics"][key] for c in group])
        for name, v in values.items():
            row[name] = seed_summary(v)
        rows.append(row)
    return rows


def _fmt(entry: dict) -> str:
    text = f"{entry['mean']:.3g}"
    return text + (f" ± {entry['ci95_half']:.2g}" if entry["ci95_half"] is not None else " (1 seed)")


def markdown(rows: list[dict], base: dict) -> str:
    """One table per task: reward gain and each diversity metric as a fraction of the base model's."""
    lines = ["Mean over seeds ± half-width of the 95% t-interval; diversity as a fraction of the base model's.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        lines += [
            f"### {task} (reward `{TASKS[task]}`, base {base[f'reward/{TASKS[task]}']:.4g})",
            "",
            "| method | seeds | reward | reward gain | " + " | ".join(DIVERSITY.values()) + " |",
            "| --- | --- | --- | --- |" + " --- |" * len(DIVERSITY),
        ]
        for r in (r for r in rows if r["task"] == task):
            fracs = " | ".join(_fmt(r[f"{k}/fraction"]) for k in DIVERSITY)
            lines.append(
                f"| {r['label']} | {len(r['seeds'])} | {_fmt(r['reward'])} | {_fmt(r['reward_gain'])} | {fracs} |"
            )
        lines.append("")
    return "\n".join(lines)


def figures(rows: list[dict], base: dict, out: Path) -> list[str]:
    """Figure 5 per task and embedding: reward vs Vendi, base model and every method (95% t-interval bars)."""
    from hrf.evaluation.plots import figure_reward_vs_vendi

    names = []
    for task in dict.fromkeys(r["task"] for r in rows):
        reward_key = f"reward/{TASKS[task]}"
        for emb, label in (("pixels", "raw pixels, cosine"), ("domain", "domain classifier features")):
            key = f"vendi/{emb}"
            points = [
                {
                    "label": "base",
                    "group": "base",
                    "reward": base[reward_key],
                    "reward_err": 0.0,
                    "vendi": base[key],
                    "vendi_err": 0.0,
                }
            ]
            points += [
                {
                    "label": r["label"],
                    "group": r["label"],
                    "reward": r["reward"]["mean"],
                    "reward_err": r["reward"]["ci95_half"] or 0.0,
                    "vendi": r[key]["mean"],
                    "vendi_err": r[key]["ci95_half"] or 0.0,
                }
                for r in rows
                if r["task"] == task
            ]
            path = figure_reward_vs_vendi(
                points, out / f"figure5_{task}_{emb}.png", f"{TASKS[task]} (mean over seeds, 95% CI)", label
            )
            names.append(path.name)
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="study directory (rerun the same command to resume)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: 1 task, 1 seed, 1 epoch, a few trajectories")
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=None)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=DEFAULT_METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--model", default="hrf:faces32", help="base model spec (default: the shipped hrf:faces32)")
    p.add_argument("--num-eval", type=int, default=None, help="evaluation samples per model (default 256; quick 16)")
    p.add_argument("--eval-seed", type=int, default=1234, help="seed of the evaluation noise shared by all models")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply trajectories per epoch of every method alike (budgets stay equal; default 1)",
    )
    p.add_argument(
        "--epochs-scale",
        type=positive_int,
        default=1,
        help="multiply epochs (and HRF window iterations) of every method alike (default 1)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (the box is shared)")
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="train nothing: rewrite pareto.json/.md and the figures from the cells already done",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm.auto import tqdm

    from hrf.errors import HrfError

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tasks = args.tasks or (["compressibility"] if args.quick else list(TASKS))
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    num_eval = args.num_eval or (16 if args.quick else 256)
    model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        steps = cell_config(tasks[0], "ddpo", 0, model, args.quick).sampling.num_steps
        todo = [(t, s, m) for t in tasks for s in seeds for m in args.methods]
        pending = [
            c
            for c in todo
            if stored_cell(
                out / "cells" / f"{c[0]}-{c[2]}-seed{c[1]}.json",
                cell_key(
                    cell_config(c[0], c[2], c[1], model, args.quick, args.scale, args.epochs_scale),
                    num_eval,
                    args.eval_seed,
                ),
            )
            is None
        ]
        if args.summary_only:
            todo = [c for c in todo if c not in pending]
        elif pending:
            epoch_s = measure_epochs(out, tasks, args.methods, model, args.quick, args.scale)
            epochs = {
                m: cell_config(tasks[0], m, 0, model, args.quick, epochs_scale=args.epochs_scale).train.max_epochs
                for m in args.methods
            }
            traj = cell_config(tasks[0], "ddpo", 0, model, args.quick, args.scale).train.references
            eval_s = epoch_s[args.methods[0]] * num_eval / traj / 3  # sampling is about a third of a DDPO epoch
            total = sum(epochs[m] * epoch_s[m] + eval_s for _, _, m in pending)
            print(
                f"pareto: {len(pending)} of {len(todo)} cells to run; one epoch takes "
                + ", ".join(f"{m} {s:.0f} s" for m, s in epoch_s.items())
                + f"; estimated total {total / 3600:.2f} h ({total / 60:.0f} min)",
                flush=True,
            )
        base = base_metrics(out, model, num_eval, args.eval_seed, steps)
        info = {
            "command": " ".join(["python", *sys.argv]),
            "model": model,
            "quick": args.quick,
            "tasks": tasks,
            "seeds": seeds,
            "methods": args.methods,
            "scale": args.scale,
            "epochs_scale": args.epochs_scale,
            "kl_coef": KL_COEF,
            "num_eval": num_eval,
            "eval_seed": args.eval_seed,
            "threads": args.threads,
            "cells_planned": len(todo),
        }
        cells, text = [], "no cells done yet\n"
        for i, (t, s, m) in enumerate(tqdm(todo, desc="pareto cells", unit="cell")):
            cells.append(
                run_cell(out, t, m, s, model, args.quick, num_eval, args.eval_seed, args.scale, args.epochs_scale)
            )
            # the summary after every cell, so a killed study has a current one; the figures once, at the end
            text = write_summary(out, cells, base, info, draw=i == len(todo) - 1)
    except HrfError as e:
        print(f"pareto: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


def write_summary(out: Path, cells: list[dict], base: dict, info: dict, draw: bool = True) -> str:
    """``pareto.json``, ``pareto.md`` and (``draw``) the figures from the cells done so far; returns the
    markdown."""
    rows = summarise(cells, base)
    names = figures(rows, base, out) if draw else []
    summary = {
        **info,
        "cells_done": len(cells),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "base": base,
        "rows": rows,
        "cells": cells,
        "figures": names,
    }
    write_json(out / "pareto.json", summary)
    text = markdown(rows, base)
    (out / "pareto.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(main())
