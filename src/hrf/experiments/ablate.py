"""``hrf ablate``: the paper's §5.3 window ablation (regimes × seeds), evaluated and drawn as Figure 5.

Regimes in the step-index convention (k: 0 = noise, T = clean) for T = 40, as the paper lists them:
baseline [(8,12),(18,22),(28,32)], early [(3,7),(18,22),(28,32)], later [(8,12),(28,32)] ("middle window
removed, iterating more on the last window": the last window gets twice the iterations, so every regime
trains the same number of epochs). For another T the windows keep their fraction of the chain
(:func:`scaled_windows`). Each cell (regime, seed) trains, samples and is evaluated once; its
result is kept in ``cells/`` and never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hrf.config import last_trainable_start, load_config
from hrf.experiments.runs import preset_path, train_to_completion

REGIMES: dict[str, list[list[int]]] = {
    "baseline": [[8, 12], [18, 22], [28, 32]],
    "early": [[3, 7], [18, 22], [28, 32]],
    "later": [[8, 12], [28, 32]],
}


def scaled_windows(regime: str, num_steps: int, skip_last: int = 0) -> list[list[int]]:
    """The regime's windows for T = ``num_steps``: the paper's T = 40 windows at the same fractions of the chain,
    capped at the last start step that has a step to train."""
    scale = num_steps / 40
    last = last_trainable_start(num_steps, skip_last)
    return [[min(round(lo * scale), last), min(round(hi * scale), last)] for lo, hi in REGIMES[regime]]


def regime_iterations(regime: str, per_window: int) -> list[int]:
    """Epochs per window: ``per_window`` each; 'later' doubles its last window to keep the total equal."""
    n = len(REGIMES[regime])
    return [per_window] * (n - 1) + [per_window * (2 if regime == "later" else 1)]


def run_cell(out: Path, preset: str, regime: str, seed: int, per_window: int, num_eval: int, eval_seed: int,
             overrides: list[str], progress: bool) -> dict:
    """Train and evaluate one (regime, seed) cell, or read its stored result."""
    from hrf.evaluation.evaluate import evaluate_images, sample_or_load

    cell_file = out / "cells" / f"{regime}-seed{seed}.json"
    if cell_file.is_file():
        return json.loads(cell_file.read_text())
    iters = regime_iterations(regime, per_window)
    base = load_config(preset_path(preset), overrides)
    windows = scaled_windows(regime, base.sampling.num_steps, base.train.skip_last_steps)
    cfg = load_config(preset_path(preset), [
        f"schedule.windows={windows}", f"schedule.iterations={iters}", "schedule.after_last=stop",
        f"train.max_epochs={sum(iters)}", f"train.seed={seed}", *overrides])
    final = train_to_completion(cfg, out / "runs" / f"{regime}-seed{seed}", progress=progress)
    images = sample_or_load(str(final), out / "runs" / f"{regime}-seed{seed}" / "eval.npz", num_eval, eval_seed,
                            cfg.sampling.num_steps, progress=progress)
    report = evaluate_images({"model": images}, rewards=[cfg.reward.name], embedders=["pixels"],
                             benchmark=cfg.model.path == "hrf:faces32", n_boot=0, is_splits=1, seed=eval_seed)
    metrics = report["models"]["model"]
    cell = {"regime": regime, "seed": seed, "windows": windows, "iterations": iters,
            "reward": metrics[f"reward/{cfg.reward.name}"]["value"],
            "vendi": {k.split("/", 1)[1]: v["value"] for k, v in metrics.items() if k.startswith("vendi/")},
            "metrics": {k: v["value"] for k, v in metrics.items()}}
    cell_file.parent.mkdir(exist_ok=True)
    tmp = cell_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(cell, indent=2))
    tmp.replace(cell_file)
    return cell


def summarise(cells: list[dict], vendi_key: str) -> list[dict]:
    """Per regime: mean reward and Vendi over seeds with standard errors (Figure 5's points)."""
    points = []
    for regime in dict.fromkeys(c["regime"] for c in cells):
        rs = np.array([c["reward"] for c in cells if c["regime"] == regime])
        vs = np.array([c["vendi"][vendi_key] for c in cells if c["regime"] == regime])
        se = (lambda a: float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0)
        points.append({"label": regime, "group": regime, "reward": float(rs.mean()), "reward_err": se(rs),
                       "vendi": float(vs.mean()), "vendi_err": se(vs), "seeds": len(rs)})
    return points


def run_ablation(out: Path, preset: str = "faces32/compressibility-hrf", regimes=tuple(REGIMES),
                 seeds=(0, 1, 2), per_window: int = 4, num_eval: int = 256, eval_seed: int = 1234,
                 overrides: list[str] = (), progress: bool = True) -> dict:
    """All cells, then ``ablation.json``, ``ablation.md`` and ``figure5_windows.png`` in ``out``."""
    from tqdm.auto import tqdm

    from hrf.evaluation.plots import figure_reward_vs_vendi

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(r, s) for r in regimes for s in seeds]
    cells = [run_cell(out, preset, r, s, per_window, num_eval, eval_seed, list(overrides), False)
             for r, s in tqdm(todo, desc="ablation cells", disable=not progress, unit="cell")]
    vendi_key = "pixels"
    points = summarise(cells, vendi_key)
    reward_name = load_config(preset_path(preset)).reward.name
    figure = figure_reward_vs_vendi(points, out / "figure5_windows.png", f"reward ({reward_name}), mean over seeds",
                                    "raw pixels, cosine")
    summary = {"preset": preset, "per_window": per_window, "seeds": list(seeds), "num_eval": num_eval,
               "points": points, "cells": cells, "figure": figure.name}
    (out / "ablation.json").write_text(json.dumps(summary, indent=2))
    rows = ["| regime | windows | seeds | reward (mean ± SE) | Vendi pixels (mean ± SE) |", "| --- | --- | --- | --- | --- |"]
    windows = {c["regime"]: c["windows"] for c in cells}
    rows += [f"| {p['label']} | {windows[p['label']]} | {p['seeds']} | {p['reward']:.4g} ± {p['reward_err']:.2g} | "
             f"{p['vendi']:.4g} ± {p['vendi_err']:.2g} |" for p in points]
    (out / "ablation.md").write_text("\n".join(rows) + "\n")
    return summary
