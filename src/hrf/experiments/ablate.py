"""``hrf ablate``: the paper's §5.3 window ablation (regimes × seeds), evaluated and drawn as Figure 5.

Regimes in the step-index convention (k: 0 = noise, T = clean) for T = 40, as the paper lists them:
baseline [(8,12),(18,22),(28,32)], early [(3,7),(18,22),(28,32)], later [(8,12),(28,32)] ("middle window
removed, iterating more on the last window": the last window gets twice the iterations, so every regime
trains the same number of epochs). For another T the windows keep their fraction of the chain
(:func:`scaled_windows`). Each cell (regime, seed) trains, samples and is evaluated once; its
result is kept in ``cells/`` and reused while its training config, base model and evaluation are the
same (:mod:`hrf.experiments.cells`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from hrf.config import Config, last_trainable_start, load_config, preset_path
from hrf.experiments.cells import (
    cell_key,
    seed_summary,
    stored_cell,
    train_and_evaluate,
    write_json,
)

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


def cell_config(preset: str, regime: str, seed: int, per_window: int, overrides: Sequence[str] = ()) -> Config:
    """The training config of one (regime, seed) cell: the preset with the regime's windows and budget."""
    iters = regime_iterations(regime, per_window)
    base = load_config(preset_path(preset), list(overrides))
    windows = scaled_windows(regime, base.sampling.num_steps, base.train.skip_last_steps)
    return load_config(
        preset_path(preset),
        [
            f"schedule.windows={windows}",
            f"schedule.iterations={iters}",
            "schedule.after_last=stop",
            f"train.max_epochs={sum(iters)}",
            f"train.seed={seed}",
            *overrides,
        ],
    )


def run_cell(
    out: Path,
    preset: str,
    regime: str,
    seed: int,
    per_window: int,
    num_eval: int,
    eval_seed: int,
    overrides: Sequence[str],
    progress: bool,
    device: str | None = None,
) -> dict:
    """Train and evaluate one (regime, seed) cell on ``device``, or read its stored result if computed with the
    same key."""
    from hrf.benchmarks import benchmark_of_model
    from hrf.models import resolve_device

    name = f"{regime}-seed{seed}"
    cfg = cell_config(preset, regime, seed, per_window, overrides)
    key = cell_key(cfg, num_eval, eval_seed)
    if (stored := stored_cell(out / "cells" / f"{name}.json", key)) is not None:
        return stored
    metrics = train_and_evaluate(
        cfg,
        out / "runs" / name,
        num_eval,
        eval_seed,
        benchmark_of_model(cfg.model.path),
        progress=progress,
        device=device,
    )
    cell = {
        "regime": regime,
        "seed": seed,
        "windows": cfg.schedule.windows,
        "iterations": cfg.schedule.iterations,
        "reward": metrics[f"reward/{cfg.reward.name}"],
        "vendi": {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("vendi/")},
        "metrics": metrics,
        "device": str(resolve_device(device)),
        **key,
    }
    write_json(out / "cells" / f"{name}.json", cell)
    return cell


def summarise(cells: list[dict], vendi_key: str) -> list[dict]:
    """Per regime: mean reward and Vendi over seeds with standard errors (Figure 5's points; 0 for one seed)."""
    points = []
    for regime in dict.fromkeys(c["regime"] for c in cells):
        group = [c for c in cells if c["regime"] == regime]
        r = seed_summary([c["reward"] for c in group])
        v = seed_summary([c["vendi"][vendi_key] for c in group])
        points.append(
            {
                "label": regime,
                "group": regime,
                "reward": r["mean"],
                "reward_err": r["se"] or 0.0,
                "vendi": v["mean"],
                "vendi_err": v["se"] or 0.0,
                "seeds": len(group),
            }
        )
    return points


def run_ablation(
    out: Path,
    preset: str = "faces32/compressibility-hrf",
    regimes=tuple(REGIMES),
    seeds=(0, 1, 2),
    per_window: int = 4,
    num_eval: int = 256,
    eval_seed: int = 1234,
    overrides: Sequence[str] = (),
    progress: bool = True,
    device: str | None = None,
) -> dict:
    """All cells (trained and evaluated on ``device``), then ``ablation.json``, ``ablation.md`` and
    ``figure5_windows.png`` in ``out``."""
    from tqdm.auto import tqdm

    from hrf.evaluation.plots import figure_reward_vs_vendi

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(r, s) for r in regimes for s in seeds]
    cells = [
        run_cell(out, preset, r, s, per_window, num_eval, eval_seed, list(overrides), False, device)
        for r, s in tqdm(todo, desc="ablation cells", disable=not progress, unit="cell")
    ]
    vendi_key = "pixels"
    points = summarise(cells, vendi_key)
    reward_name = load_config(preset_path(preset)).reward.name
    figure = figure_reward_vs_vendi(
        points, out / "figure5_windows.png", f"reward ({reward_name}), mean over seeds", "raw pixels, cosine"
    )
    summary = {
        "preset": preset,
        "per_window": per_window,
        "seeds": list(seeds),
        "num_eval": num_eval,
        "points": points,
        "cells": cells,
        "figure": figure.name,
    }
    (out / "ablation.json").write_text(json.dumps(summary, indent=2))
    rows = [
        "| regime | windows | seeds | reward (mean ± SE) | Vendi pixels (mean ± SE) |",
        "| --- | --- | --- | --- | --- |",
    ]
    windows = {c["regime"]: c["windows"] for c in cells}
    rows += [
        f"| {p['label']} | {windows[p['label']]} | {p['seeds']} | {p['reward']:.4g} ± {p['reward_err']:.2g} | "
        f"{p['vendi']:.4g} ± {p['vendi_err']:.2g} |"
        for p in points
    ]
    (out / "ablation.md").write_text("\n".join(rows) + "\n")
    return summary
