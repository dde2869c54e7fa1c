"""The mode-collapse study: reward–diversity curves per method × seed, compared at pre-declared reward levels.

    python benchmarks/collapse.py run --stage tuning|test|replication [--tasks ...] [--methods ...] [--seeds ...]
                                      [--shard I/N] --out benchmarks/results/collapse
    python benchmarks/collapse.py report --out benchmarks/results/collapse

The protocol (tasks, budgets, primary metric, reward levels, test, seeds) is ``benchmarks/RESULTS.md``
§ "Collapse study: protocol"; this file implements it. A *cell* is one (task, method, seed): the base model
fine-tuned for ``EPOCHS`` epochs with a checkpoint every ``EVAL_EVERY``; every checkpoint is sampled on the
same ``NUM_EVAL`` evaluation noises (seed ``EVAL_SEED``, used nowhere else) and measured. The cell's curve
(epoch 0 = the base model) is written to ``OUT/cells/TASK/METHOD/seedS.json`` — small, committed — and is
reused only for the same training config and base weights. Training runs, samples and metric caches live
in ``OUT/work/`` (not committed): a killed study resumes the training run from its last checkpoint and
skips every checkpoint already sampled. ``--shard I/N`` runs every N-th pending cell, so two single-thread
processes share two cores. ``report`` reads the committed cells only and writes ``OUT/report.json``,
``OUT/report.md`` and the curve figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from hrf.config import Config, config_changes, load_config
from hrf.evaluation.matched import holm, t_interval, value_at_reward, verdict, welch
from hrf.experiments.cells import config_fingerprint, write_json
from hrf.experiments.collapse import EPOCHS, EVAL_EVERY, METHODS, MODEL, collapse_config

NUM_EVAL = 1000  # evaluation samples per checkpoint
EVAL_BATCH = 250  # the evaluation noise depends on it (EVAL_NOISE): every committed cell was sampled at 250
# How the evaluation noise is drawn, recorded in every cell: one CPU generator seeded with EVAL_SEED, drawn
# batch after batch of EVAL_BATCH (each batch's initial noise, then its per-step noise: the "sequential"
# scheme of hrf.sampling.noise), on the CPU so that a GPU machine reproduces the cells. Cells without the
# field were drawn this way too.
EVAL_NOISE = f"sequential/{EVAL_BATCH}"
EVAL_SEED = 2_026_113_001  # the evaluation noise; training draws derive from (train.seed, epoch, rank, purpose)
TASKS = {"compressibility": "jpeg_compressibility", "smile": "faces_smile"}
PRIMARY_METHODS = ("ddpo", "hrf")
# (method, reference): the method read at the reward its same-seed reference run ended with. Against DDPO_IS
# it is the paper's §5.2 protocol; against a KL baseline that never reaches the primary level it places the
# baseline's endpoint against HRF's curve (no test).
STOPPED_AT = (("hrf", "ddpo"), ("hrfd", "ddpo"), ("hrf", "kl0.03"), ("hrf", "kl0.1"), ("hrf", "kl0.3"))
# The secondary conditions' questions, each a difference of two methods at every reward level. Protocol §7:
# reported with an interval, no test and no verdict.
SECONDARY_CONTRASTS = (
    ("hrf_batchnorm", "ddpo", "HRF with DDPO_IS's own advantage normalisation, against DDPO_IS"),
    ("hrf_batchnorm", "hrf", "HRF's advantages normalised over the batch instead of per reference"),
    ("hrf_noise", "hrf", "HRF's windows near noise instead of at the paper's fractions"),
    ("hrfd", "ddpo", "HRF-D against DDPO_IS"),
    *((f"kl{c}", "hrf", f"the KL-to-base baseline at {c} against HRF") for c in ("0.03", "0.1", "0.3")),
    ("ddpo_T40", "ddpo", "DDPO_IS at T = 40 against T = 10 (each against its own base model)"),
    ("hrf_T40", "ddpo_T40", "the primary pair at the paper's T = 40"),
)
# "replication": the confirmatory smile replication of HRF against DDPO_IS (RESULTS.md § R), disjoint from both
SEEDS = {"tuning": [0, 1], "test": list(range(100, 110)), "replication": list(range(110, 130))}
# cells record whether the independent evaluator measured them (cells from before it shipped did not)
EVALUATOR_SHIPPED = True
METRICS_VERSION = 3  # bump when checkpoint_metrics changes: cached metrics are recomputed from the samples
# 3 added the gold readings (hrf.evaluation.gold) and changed nothing else: a version-2 cell is still valid,
# it only lacks the gold keys
COMPATIBLE_METRICS_VERSIONS = (2, 3)
# Diversity metrics of a checkpoint, reported as a fraction of the base model's. The primary one is fixed by
# the protocol; cells measured before the evaluator shipped lack its keys.
DIVERSITY = {
    "vendi/evaluator": "Vendi (independent evaluator features)",
    "vendi/domain": "Vendi (domain classifier features)",
    "vendi/pixels": "Vendi (pixels)",
    "factors/evaluator_entropy": "combo entropy (evaluator)",
    "factors/evaluator_coverage": "combo coverage (evaluator)",
    "factors/domain_entropy": "combo entropy (domain classifier)",
}
PRIMARY_FALLBACK = "vendi/domain"  # the protocol's primary metric if the evaluator fails its acceptance test
PRIMARY = "vendi/evaluator"
LEVELS_QUANTILES = (0.25, 0.5, 0.75)  # reward levels: these fractions of DDPO_IS's mean final gain (tuning seeds)
PRIMARY_LEVEL = 1  # index of the primary level in LEVELS_QUANTILES
BROKEN_CONFIDENCE = 0.5  # a checkpoint whose confident fraction falls below this × the base's is "broken"


# ---------------------------------------------------------------- cells


def cell_config(task: str, method: str, seed: int) -> Config:
    """The training config of one cell: the task's preset for the method, the study's budget and seed."""
    return collapse_config(task, method, seed, EVAL_EVERY, epochs=EPOCHS)


def same_training(stored: dict, current: dict) -> bool:
    """Whether a cell's stored config trains as ``current`` does: every field both have is equal, except
    ``output.*`` (where checkpoints and logs go). A field the library added since the cell ran is accepted
    (the cell ran with the behaviour that field's default keeps); a field the library dropped is not."""
    changes = config_changes(stored, current)
    return all(old is dataclasses.MISSING for key, (old, _) in changes.items() if not key.startswith("output."))


def checkpoint_metrics(images) -> dict[str, float]:
    """Rewards and diversity of one checkpoint's evaluation samples (model space, [-1, 1] NCHW)."""
    from hrf.data.classifier import load_face_classifier
    from hrf.data.classifier_b import evaluator_confidence, load_evaluator_classifier
    from hrf.data.faces import HIGH_LEVEL, combo_ids, num_combos
    from hrf.evaluation.diversity import combo_coverage, factor_entropy
    from hrf.evaluation.gold import gold_name, gold_values
    from hrf.evaluation.metrics import reward_values
    from hrf.evaluation.vendi import vendi_score
    from hrf.images import to_unit
    from hrf.rewards import make_reward

    out: dict[str, float] = {}
    for name, values in reward_values(images, {r: make_reward(r) for r in TASKS.values()}).items():
        out[f"reward/{name}"] = float(values.mean())
        out[f"reward_sem/{name}"] = float(values.std(ddof=1) / math.sqrt(len(values)))
    out["vendi/pixels"] = vendi_score(to_unit(images).flatten(1).double().numpy())  # the paper's raw pixels in [0, 1]
    for tag, clf in (("domain", load_face_classifier()), ("evaluator", load_evaluator_classifier())):
        probs = {k: v.float().numpy() for k, v in clf.probs(images).items()}
        out[f"vendi/{tag}"] = vendi_score(clf.features(images).double().numpy())
        codes = combo_ids({k: probs[k].argmax(-1) for k in HIGH_LEVEL})
        out[f"factors/{tag}_entropy"] = factor_entropy(codes, num_combos())["nats"]
        out[f"factors/{tag}_coverage"] = combo_coverage(codes, num_combos())
        # share of samples the classifier reads confidently on every high-level factor: falls on noise images
        confident = np.min(np.stack([probs[k].max(-1) for k in HIGH_LEVEL]), axis=0) >= 0.9
        out[f"confident/{tag}"] = float(confident.mean())
        if tag == "evaluator":
            # reward hacking leaves the face manifold: the independent evaluator grows unsure of what it sees
            out["confidence/evaluator"] = evaluator_confidence(probs)
            for reward in TASKS.values():
                if (gold := gold_values(reward, probs)) is not None:
                    out[str(gold_name(reward))] = float(gold.mean())
    return out


def measured(spec: str, work: Path, steps: int) -> dict[str, float]:
    """Metrics of model ``spec`` on the evaluation noise, and the seconds its sampling and its metrics took
    when first computed (``timing/...``); samples and metrics cached in ``work``."""
    from hrf.evaluation.samples import sample_or_load, weights_fingerprint

    key = {
        "weights": weights_fingerprint(spec),
        "num": NUM_EVAL,
        "seed": EVAL_SEED,
        "steps": steps,
        "metrics_version": METRICS_VERSION,
        "evaluator": EVALUATOR_SHIPPED,
    }
    cache = work / "metrics.json"
    if cache.is_file() and (stored := json.loads(cache.read_text())).get("key") == key:
        return stored["metrics"] | {f"timing/{k}": v for k, v in stored.get("timing", {}).items()}
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images = sample_or_load(
        spec, work / "samples.npz", NUM_EVAL, EVAL_SEED, steps, batch_size=EVAL_BATCH, noise="sequential", device="cpu"
    )
    t1 = time.perf_counter()
    metrics = checkpoint_metrics(images)
    # what measuring costs against sampling; samples read from the cache (well under a second) time no sampling
    timing = {"seconds_metrics": round(time.perf_counter() - t1, 2)}
    if t1 - t0 > 1.0:
        timing["seconds_sampling"] = round(t1 - t0, 2)
    write_json(cache, {"key": key, "metrics": metrics, "timing": timing})
    return metrics | {f"timing/{k}": v for k, v in timing.items()}


def base_point(out: Path, steps: int) -> dict[str, float]:
    """The base model's metrics: epoch 0 of every curve."""
    return measured(MODEL, out / "work" / "base" / f"T{steps}", steps)


def cell_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / "cells" / task / method / f"seed{seed}.json"


def stored_cell(out: Path, task: str, method: str, seed: int) -> dict | None:
    """A committed cell of the same training config, base weights and evaluation settings, else None."""
    from hrf.evaluation.samples import weights_fingerprint

    path = cell_path(out, task, method, seed)
    if not path.is_file():
        return None
    cell = json.loads(path.read_text())
    key = (weights_fingerprint(MODEL), NUM_EVAL, EVAL_SEED, EVALUATOR_SHIPPED)
    stored = (cell["base_weights"], cell["num_eval"], cell["eval_seed"], cell["evaluator"])
    same = same_training(cell["config"], dataclasses.asdict(cell_config(task, method, seed)))
    same_noise = cell.get("eval_noise", EVAL_NOISE) == EVAL_NOISE
    compatible = cell["metrics_version"] in COMPATIBLE_METRICS_VERSIONS
    return cell if stored == key and same_noise and compatible and same else None


def run_cell(out: Path, task: str, method: str, seed: int) -> dict:
    """Train one cell (resuming), measure every checkpoint, write its curve."""
    from hrf.evaluation.samples import weights_fingerprint
    from hrf.training.checkpoint import checkpoint_dirs
    from hrf.training.run_dir import run_totals, train_to_completion

    if (cell := stored_cell(out, task, method, seed)) is not None:
        return cell
    cfg = cell_config(task, method, seed)
    work = out / "work" / task / method / f"seed{seed}"
    t0 = time.perf_counter()
    saved = work / "run" / "config.toml"
    finished = (
        (work / "run" / "summary.json").is_file()
        and saved.is_file()
        and same_training(dataclasses.asdict(load_config(saved)), dataclasses.asdict(cfg))
    )
    if not finished:  # a finished run is kept even if the library added config fields since (only remeasured)
        train_to_completion(cfg, work / "run", progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    steps = cfg.sampling.num_steps
    curve = [{"epoch": 0, **base_point(out, steps)}]
    for ckpt in checkpoint_dirs(work / "run"):
        epoch = int(ckpt.name.split("_")[1])
        curve.append({"epoch": epoch, **measured(str(ckpt / "model"), work / "evals" / ckpt.name, steps)})
    history = [json.loads(ln) for ln in (work / "run" / "metrics.jsonl").read_text().splitlines() if ln]
    cell = {
        "task": task,
        "method": method,
        "label": METHODS[method][0],
        "seed": seed,
        "reward": TASKS[task],
        "config_hash": config_fingerprint(cfg),
        "config": dataclasses.asdict(cfg),
        "base_weights": weights_fingerprint(MODEL),
        "num_eval": NUM_EVAL,
        "eval_seed": EVAL_SEED,
        "eval_noise": EVAL_NOISE,
        "metrics_version": METRICS_VERSION,
        "evaluator": EVALUATOR_SHIPPED,
        "totals": run_totals(work / "run"),
        "seconds_train_this_session": round(train_s, 1),
        "seconds_eval_this_session": round(time.perf_counter() - t0, 1),
        "train_reward_by_epoch": [h["reward_mean"] for h in history],
        "curve": curve,
    }
    write_json(cell_path(out, task, method, seed), cell)
    return cell


# ---------------------------------------------------------------- the analysis


def load_cells(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/*/seed*.json"))]


def primary_metric(cells: list[dict]) -> str:
    """The protocol's primary metric, or its declared fallback while no cell has the evaluator."""
    return PRIMARY if any(PRIMARY in c["curve"][0] for c in cells) else PRIMARY_FALLBACK


def curve_arrays(cell: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(reward gain over the base, metric as a fraction of the base's) along a cell's curve."""
    base = cell["curve"][0]
    rk = f"reward/{cell['reward']}"
    gains = np.array([p[rk] - base[rk] for p in cell["curve"]])
    fracs = np.array([p.get(metric, np.nan) / base[metric] if base.get(metric) else np.nan for p in cell["curve"]])
    return gains, fracs


def reward_levels(cells: list[dict], task: str) -> list[float] | None:
    """The task's reward levels (gains over the base): LEVELS_QUANTILES × DDPO_IS's mean final gain over the
    tuning seeds, so that no test seed decides where the methods are compared."""
    finals = [
        curve_arrays(c, PRIMARY_FALLBACK)[0][-1]
        for c in cells
        if c["task"] == task and c["method"] == "ddpo" and c["seed"] in SEEDS["tuning"]
    ]
    if not finals:
        return None
    mean = float(np.mean(finals))
    return [q * mean for q in LEVELS_QUANTILES]


def broken(cell: dict) -> list[int]:
    """Epochs at which the denoiser broke: the domain classifier's confident share fell below
    BROKEN_CONFIDENCE × the base model's (noise images, not a collapse)."""
    base = cell["curve"][0]["confident/domain"]
    return [p["epoch"] for p in cell["curve"] if p["confident/domain"] < BROKEN_CONFIDENCE * base]


def reads_broken(cell: dict, level: float) -> bool:
    """Whether reading ``cell`` at ``level`` interpolates towards a broken checkpoint (the first to reach it)."""
    gains = curve_arrays(cell, PRIMARY_FALLBACK)[0]
    reached = np.nonzero(gains >= level)[0]
    return len(reached) > 0 and cell["curve"][int(reached[0])]["epoch"] in broken(cell)


def analyse(cells: list[dict]) -> dict:
    """Every number of the report, from the cells: per task the collapse, the matched-level table, the
    primary contrasts (Welch, Holm-adjusted) and the §5.2 reading at DDPO_IS's final reward."""
    metric = primary_metric(cells)
    test = [c for c in cells if c["seed"] in SEEDS["test"]]
    report: dict = {"primary_metric": metric, "tasks": {}, "primary_contrasts": []}
    for task in TASKS:
        levels = reward_levels(cells, task)
        tc = [c for c in test if c["task"] == task]
        if levels is None or not tc:
            continue
        methods = [m for m in METHODS if any(c["method"] == m for c in tc)]
        entry: dict = {"levels": levels, "methods": {}}
        for m in methods:
            mc = sorted((c for c in tc if c["method"] == m), key=lambda c: c["seed"])
            finals = {key: [curve_arrays(c, key)[1][-1] for c in mc] for key in DIVERSITY}
            gains = [curve_arrays(c, metric)[0][-1] for c in mc]
            row = {
                "label": METHODS[m][0],
                "seeds": [c["seed"] for c in mc],
                "final_gain": t_interval(gains),
                "final_gain_values": gains,
                "broken": {c["seed"]: broken(c) for c in mc if broken(c)},
                "final_fraction": {k: t_interval(v) for k, v in finals.items() if np.all(np.isfinite(v))},
                "final_evaluator_confidence": t_interval([c["curve"][-1]["confidence/evaluator"] for c in mc])
                if all("confidence/evaluator" in c["curve"][-1] for c in mc)
                else None,
                "at_levels": [],
            }
            for level in levels:
                vals = [value_at_reward(*curve_arrays(c, metric), level) for c in mc]
                got = [v for v in vals if v is not None]
                bad = [reads_broken(c, level) for c in mc]
                row["at_levels"].append(
                    {
                        "level": level,
                        "values": vals,
                        "n_reached": len(got),
                        "reads_broken": bad,
                        "n_broken": sum(bad),
                        "mean_ci": t_interval(got) if got else None,
                    }
                )
            # every diversity metric at the primary level, reported with intervals and no test (protocol §7)
            row["metrics_at_primary_level"] = {}
            for key in DIVERSITY:
                vals = [
                    value_at_reward(curve_arrays(c, key)[0], curve_arrays(c, key)[1], levels[PRIMARY_LEVEL]) for c in mc
                ]
                got = [v for v in vals if v is not None and math.isfinite(v)]
                row["metrics_at_primary_level"][key] = t_interval(got) if got else None
            entry["methods"][m] = row
        if all(m in entry["methods"] for m in PRIMARY_METHODS):
            hrf_row, ddpo_row = entry["methods"]["hrf"], entry["methods"]["ddpo"]
            for i, level in enumerate(levels):
                a = [v for v in hrf_row["at_levels"][i]["values"] if v is not None]
                b = [v for v in ddpo_row["at_levels"][i]["values"] if v is not None]
                test_ = welch(a, b) if len(a) >= 2 and len(b) >= 2 else None
                contrast = {
                    "task": task,
                    "level_index": i,
                    "level": level,
                    "welch": test_,
                    "primary": i == PRIMARY_LEVEL,
                }
                # a sensitivity reading, not the protocol's test: the same without readings on broken checkpoints
                a2, b2 = (
                    [
                        v
                        for v, bad in zip(r["at_levels"][i]["values"], r["at_levels"][i]["reads_broken"], strict=True)
                        if v is not None and not bad
                    ]
                    for r in (hrf_row, ddpo_row)
                )
                if (len(a2), len(b2)) != (len(a), len(b)) and len(a2) >= 2 and len(b2) >= 2:
                    contrast["welch_unbroken"] = welch(a2, b2)
                entry.setdefault("contrasts", []).append(contrast)
                if contrast["primary"]:
                    report["primary_contrasts"].append(contrast)
        entry["stopped_at"] = [
            stopped_at(tc, metric, m, ref) for m, ref in STOPPED_AT if m in entry["methods"] and ref in entry["methods"]
        ]
        entry["secondary_contrasts"] = secondary_contrasts(entry["methods"])
        report["tasks"][task] = entry
    measurable = [c for c in report["primary_contrasts"] if c["welch"] is not None]
    for c, p in zip(measurable, holm([c["welch"]["p"] for c in measurable]), strict=True):
        c["p_holm"] = p
    for c in report["primary_contrasts"]:
        c["verdict"] = verdict(c["welch"]["diff"] if c["welch"] else 0.0, c.get("p_holm"))
        # the protocol's test is taken once every declared test seed has run; before that it is an interim look
        seeds = report["tasks"][c["task"]]["methods"]
        c["seeds_run"] = {m: len(seeds[m]["seeds"]) for m in PRIMARY_METHODS}
        c["final"] = all(n == len(SEEDS["test"]) for n in c["seeds_run"].values())
    return report


def secondary_contrasts(rows: dict[str, dict]) -> list[dict]:
    """Each of SECONDARY_CONTRASTS whose two methods have run: the difference of their primary-metric values
    at every reward level, with its Welch interval where each has two seeds that reach the level. The
    primary level's reading is also kept at the top (``n``, ``diff``, ``ci``)."""
    out = []
    for a, b, question in SECONDARY_CONTRASTS:
        if a not in rows or b not in rows:
            continue
        per_level = []
        for i in range(len(rows[a]["at_levels"])):
            va, vb = ([v for v in rows[m]["at_levels"][i]["values"] if v is not None] for m in (a, b))
            w = welch(va, vb) if len(va) >= 2 and len(vb) >= 2 else None
            per_level.append(
                {
                    "level": rows[a]["at_levels"][i]["level"],
                    "n": [len(va), len(vb)],
                    "diff": w["diff"] if w else None,
                    "ci": w["ci"] if w else None,
                }
            )
        primary = per_level[PRIMARY_LEVEL]
        out.append(
            {
                "a": a,
                "b": b,
                "question": question,
                "seeds_run": [len(rows[a]["seeds"]), len(rows[b]["seeds"])],
                "n": primary["n"],
                "diff": primary["diff"],
                "ci": primary["ci"],
                "levels": per_level,
            }
        )
    return out


def stopped_at(task_cells: list[dict], metric: str, method: str, reference: str) -> dict:
    """``method`` stopped at the reward its same-seed ``reference`` run ended with: its metric there minus the
    reference's final one, over the seeds where it reaches that reward (the paper's §5.2 for DDPO_IS)."""
    by = {(c["method"], c["seed"]): c for c in task_cells}
    pairs = []
    for (m, seed), c in sorted(by.items()):
        if m != reference or (method, seed) not in by:
            continue
        gains, fracs = curve_arrays(c, metric)
        val = value_at_reward(*curve_arrays(by[method, seed], metric), gains[-1])
        pairs.append({"seed": seed, "reference_gain": gains[-1], "reference": fracs[-1], "method": val})
    diffs = [p["method"] - p["reference"] for p in pairs if p["method"] is not None]
    return {
        "method": method,
        "reference": reference,
        "pairs": pairs,
        "n_reached": len(diffs),
        "minus_reference": t_interval(diffs) if diffs else None,
    }


# ---------------------------------------------------------------- the report


def _ci(mean_half, single: str = " (1 seed)") -> str:
    """``mean ± half-width``; a lone value is marked by ``single`` (empty where a seed count stands beside)."""
    if mean_half is None:
        return "—"
    mean, half = mean_half
    return f"{mean:.3f}" + (f" ± {half:.3f}" if half is not None else single)


def markdown(report: dict, cells: list[dict]) -> str:
    """The verdict tables, from ``analyse``'s output."""
    metric = report["primary_metric"]
    lines = [
        f"Primary diversity metric: **{DIVERSITY[metric]}** (`{metric}`), as a fraction of the base "
        "model's. Reward gains in the task's reward units over the base model on the same evaluation "
        "noise. Intervals are 95 % Student-t over test seeds. A level's cell gives the seeds that reach it and, "
        "if any, how many of those readings interpolate towards a checkpoint flagged as a broken denoiser.",
        "",
    ]
    for task, entry in report["tasks"].items():
        lines += [
            f"### {task} (`{TASKS[task]}`)",
            "",
            "Reward levels (gain over base): "
            + ", ".join(f"{lv:+.4g}" for lv in entry["levels"])
            + f" (primary: {entry['levels'][PRIMARY_LEVEL]:+.4g})",
            "",
            "| method | seeds | final reward gain | final primary fraction | "
            + " | ".join(f"at {lv:+.3g} (n reached)" for lv in entry["levels"])
            + " |",
            "| --- | --- | --- | --- |" + " --- |" * len(entry["levels"]),
        ]
        for row in entry["methods"].values():
            at = " | ".join(
                f"{_ci(a['mean_ci'], '')} ({a['n_reached']}"
                + (f"; {a['n_broken']} broken" if a["n_broken"] else "")
                + ")"
                for a in row["at_levels"]
            )
            lines.append(
                f"| {row['label']} | {len(row['seeds'])} | {_ci(row['final_gain'])} | "
                f"{_ci(row['final_fraction'].get(metric))} | {at} |"
            )
        base_conf = next((c["curve"][0].get("confidence/evaluator") for c in cells if c["task"] == task), None)
        if base_conf is not None:
            lines.append("")
            lines.append(
                f"Independent evaluator's confidence (mean least-sure factor's top probability; base "
                f"{base_conf:.3f}), at the end of training: "
                + "; ".join(
                    f"{row['label']} {_ci(row['final_evaluator_confidence'])}" for row in entry["methods"].values()
                )
            )
        lines += [
            "",
            f"Every diversity metric at the primary level ({entry['levels'][PRIMARY_LEVEL]:+.4g}), as a fraction "
            "of the base's (mean ± 95 % CI over the seeds that reach it; no test):",
            "",
            "| method | " + " | ".join(DIVERSITY.values()) + " |",
            "| --- |" + " --- |" * len(DIVERSITY),
        ]
        for row in entry["methods"].values():
            at = row["metrics_at_primary_level"]
            lines.append(f"| {row['label']} | " + " | ".join(_ci(at[k]) for k in DIVERSITY) + " |")
        for row in entry["methods"].values():
            if row["broken"]:
                lines.append(f"\n{row['label']}: denoiser broken (seed: epochs) {row['broken']}")
        lines.append("")
        for c in entry.get("contrasts", []):
            w = c["welch"]
            text = (
                "not measurable (fewer than 2 seeds reach it)"
                if w is None
                else (
                    f"{w['diff']:+.3f} [{w['ci'][0]:+.3f}, {w['ci'][1]:+.3f}], Welch p = {w['p']:.3g}"
                    f" (n = {w['n_a']}, {w['n_b']})"
                )
            )
            if c["primary"]:
                text += f", Holm p = {c['p_holm']:.3g}" if "p_holm" in c else ""
                if c["final"]:
                    text += f" → **{c['verdict']}**"
                else:
                    ran = ", ".join(f"{n} {m}" for m, n in c["seeds_run"].items())
                    text += (
                        f" → interim reading *{c['verdict']}* ({ran} of {len(SEEDS['test'])} declared test seeds;"
                        " the verdict is taken when all have run)"
                    )
            lines.append(f"- HRF − DDPO_IS at {c['level']:+.4g}{' (primary)' if c['primary'] else ''}: {text}")
            if u := c.get("welch_unbroken"):
                lines.append(
                    f"  - without the readings on broken checkpoints (a sensitivity reading, no verdict): "
                    f"{u['diff']:+.3f} [{u['ci'][0]:+.3f}, {u['ci'][1]:+.3f}], Welch p = {u['p']:.3g}"
                    f" (n = {u['n_a']}, {u['n_b']})"
                )
        for d in entry.get("stopped_at", []):
            label, ref = (entry["methods"][d[k]]["label"] for k in ("method", "reference"))
            lines.append(
                f"- {'§5.2, ' if d['reference'] == 'ddpo' else ''}{label} read at its seed's {ref} final reward: "
                f"{label} − {ref} {_ci(d['minus_reference'], '')} ({d['n_reached']} of {len(d['pairs'])} seeds "
                "reached it)"
            )
        if entry.get("secondary_contrasts"):
            lines += [
                "",
                "Secondary differences, primary metric, at each reward level: mean difference, 95 % Welch "
                "interval, and the seeds of each method that reach the level; no test, no verdict:",
                "",
                "| difference | seeds run | "
                + " | ".join(
                    f"at {lv:+.3g}{' (primary)' if i == PRIMARY_LEVEL else ''}" for i, lv in enumerate(entry["levels"])
                )
                + " | question |",
                "| --- | --- |" + " --- |" * len(entry["levels"]) + " --- |",
            ]
            for c in entry["secondary_contrasts"]:
                la, lb = entry["methods"][c["a"]]["label"], entry["methods"][c["b"]]["label"]
                cells_ = [
                    (f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d["diff"] is not None else "—")
                    + f" ({d['n'][0]}, {d['n'][1]})"
                    for d in c["levels"]
                ]
                lines.append(
                    f"| {la} − {lb} | {c['seeds_run'][0]}, {c['seeds_run'][1]} | "
                    + " | ".join(cells_)
                    + f" | {c['question']} |"
                )
        lines.append("")
    # one row per T: sampling cost grows with the steps, so a median over both would describe neither
    timing: dict[int, list[tuple[float, float]]] = {}
    for c in cells:
        for p in c["curve"][1:]:
            if p.get("timing/seconds_sampling"):
                timing.setdefault(c["config"]["sampling"]["num_steps"], []).append(
                    (p["timing/seconds_sampling"], p["timing/seconds_metrics"])
                )
    if not timing:
        lines.append("Evaluating a checkpoint: these cells were measured from cached samples; they time no sampling.")
    for steps, rows in sorted(timing.items()):
        sampling, metrics = np.median(np.array(rows), axis=0)
        lines.append(
            f"Evaluating a checkpoint at T = {steps} ({NUM_EVAL} samples, median of {len(rows)}): "
            f"sampling {sampling:.0f} s, "
            f"metrics {metrics:.1f} s ({metrics / sampling:.2f}× the sampling), one thread."
        )
    return "\n".join(lines)


def mean_curve(cells: list[dict], metric: str, num: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' mean curve: at gains from 0 to the largest any seed reaches, the mean of each seed's metric
    fraction read there (as ``value_at_reward`` reads a level), over the seeds that reach it, where ≥ 2 do."""
    curves = [curve_arrays(c, metric) for c in cells]
    top = max((float(np.max(g)) for g, _ in curves), default=0.0)
    xs, ys = [], []
    for level in np.linspace(0.0, top, num):
        got = [v for g, f in curves if (v := value_at_reward(g, f, level)) is not None]
        if len(got) >= 2:
            xs.append(level)
            ys.append(float(np.mean(got)))
    return np.array(xs), np.array(ys)


def figure(cells: list[dict], metric: str, path: Path, seeds_of: tuple[str, ...], means_of: tuple[str, ...]) -> Path:
    """Reward gain vs primary-metric fraction over training, one panel per task: every seed's curve of the
    ``seeds_of`` methods (thin) and the mean curve of the ``means_of`` methods (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(c["task"] == t for c in cells)]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5.5 * max(1, len(tasks)), 4.2), squeeze=False)
    colours = {m: f"C{i}" for i, m in enumerate(METHODS)}
    for ax, task in zip(axes[0], tasks, strict=False):
        for m in METHODS:
            mc = [c for c in cells if c["task"] == task and c["method"] == m]
            if not mc:
                continue
            label = f"{METHODS[m][0]} ({len(mc)} seed{'s' * (len(mc) > 1)})"
            if m in seeds_of:
                for i, c in enumerate(mc):
                    g, f = curve_arrays(c, metric)
                    ax.plot(g, f, "-o", ms=2.5, lw=1, alpha=0.6, color=colours[m], label=label if i == 0 else None)
            if m in means_of:
                g, f = mean_curve(mc, metric)
                ax.plot(g, f, "-", lw=2.5, color=colours[m], label=f"{label}, mean" if m not in seeds_of else None)
        ax.set_title(f"{task}: curves over training (epoch 0 → {EPOCHS})")
        ax.set_xlabel(f"reward gain ({TASKS[task]})")
        ax.set_ylabel(f"{DIVERSITY[metric]} / base")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_grids(out: Path, seed: int, epochs: tuple[int, ...] = (30, 60)) -> list[Path]:
    """Sample grids (the first 64 evaluation noises) of the base model and of DDPO_IS and HRF on test seed
    ``seed`` at ``epochs``, from the study's cached samples; nothing is drawn when they are gone."""
    from hrf.images import from_uint8_hwc, save_grid

    made = []
    sources = {"base": out / "work" / "base" / "T10" / "samples.npz"}
    for task in TASKS:
        for m in PRIMARY_METHODS:
            for e in epochs:
                path = out / "work" / task / m / f"seed{seed}" / "evals" / f"epoch_{e:06d}" / "samples.npz"
                sources[f"{task}_{m}_seed{seed}_epoch{e}"] = path
    for name, path in sources.items():
        if path.is_file():
            images = from_uint8_hwc(np.load(path)["images"][:64])
            target = out / "grids" / f"{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            save_grid(images, target, scale=2)
            made.append(target)
    return made


MARKERS = ("<!-- collapse-report:start -->", "<!-- collapse-report:end -->")


def insert_report(path: Path, text: str, markers: tuple[str, str] = MARKERS) -> None:
    """Replace what lies between two report markers of a markdown file with ``text``."""
    from hrf.errors import HrfError

    doc = path.read_text()
    start, end = doc.find(markers[0]), doc.find(markers[1])
    if start < 0 or end < start:
        raise HrfError(f"{path} has no '{markers[0]}' … '{markers[1]}' block to fill")
    path.write_text(doc[: start + len(markers[0])] + "\n" + text.strip() + "\n" + doc[end:])


# ---------------------------------------------------------------- the confirmatory replication (RESULTS.md § R)

REPLICATION_TASK = "smile"
REPLICATION_MARKERS = ("<!-- replication-report:start -->", "<!-- replication-report:end -->")


def replication(cells: list[dict]) -> dict | None:
    """§ R: HRF − DDPO_IS on the replication seeds at every level (the primary level's test, once all 40
    cells ran), the same over seeds 100–129 pooled, the domain classifier's Vendi, and the gold gains."""
    from hrf.evaluation.gold import gold_name

    levels = reward_levels(cells, REPLICATION_TASK)
    if levels is None:
        return None
    task_cells = [c for c in cells if c["task"] == REPLICATION_TASK and c["method"] in PRIMARY_METHODS]
    declared = len(SEEDS["replication"])
    gold_key = gold_name(TASKS[REPLICATION_TASK])
    out: dict = {"levels": levels, "seeds_run": {}, "contrasts": {}, "gold": {}}

    def at(mc: list[dict], metric: str, level: float) -> list[float]:
        return [v for c in mc if (v := value_at_reward(*curve_arrays(c, metric), level)) is not None]

    for label, seeds in (("replication", SEEDS["replication"]), ("pooled", SEEDS["test"] + SEEDS["replication"])):
        by = {m: [c for c in task_cells if c["method"] == m and c["seed"] in seeds] for m in PRIMARY_METHODS}
        if label == "replication":
            out["seeds_run"] = {m: len(v) for m, v in by.items()}
        for metric in (PRIMARY, "vendi/domain"):
            rows = []
            for i, level in enumerate(levels):
                a, b = at(by["hrf"], metric, level), at(by["ddpo"], metric, level)
                row = {"level": level, "n": [len(a), len(b)], "primary": i == PRIMARY_LEVEL}
                if len(a) >= 2 and len(b) >= 2:
                    row |= welch(a, b)
                rows.append(row)
            out["contrasts"][f"{label} {metric}"] = rows
    done = all(n == declared for n in out["seeds_run"].values())
    primary = out["contrasts"][f"replication {PRIMARY}"][PRIMARY_LEVEL]
    out["final"] = done
    out["verdict"] = (
        (verdict(primary["diff"], primary.get("p")) if "p" in primary else "not measurable") if done else None
    )
    if gold_key is not None:
        for m in PRIMARY_METHODS:
            mc = [c for c in task_cells if c["method"] == m and all(gold_key in p for p in c["curve"])]
            out["gold"][m] = []
            for level in levels:
                vals = []
                for c in mc:
                    base = c["curve"][0][gold_key]
                    gold = [p[gold_key] - base for p in c["curve"]]
                    if (v := value_at_reward(curve_arrays(c, PRIMARY)[0], gold, level)) is not None:
                        vals.append(v)
                out["gold"][m].append({"level": level, "n": len(vals), "gold_gain": t_interval(vals) if vals else None})
    return out


def replication_markdown(rep: dict) -> str:
    """§ Rb's text, every number from :func:`replication`."""
    declared = len(SEEDS["replication"])
    run = rep["seeds_run"]
    lines = [
        f"Replication seeds run: DDPO_IS {run['ddpo']} of {declared}, HRF {run['hrf']} of {declared}. "
        "HRF − DDPO_IS in the metric named, mean difference and 95 % Welch interval, seeds reaching the level "
        "(HRF, DDPO_IS).",
        "",
    ]
    for name, rows in rep["contrasts"].items():
        seeds, metric = name.split(" ", 1)
        what = "seeds 110–129" if seeds == "replication" else "seeds 100–129 pooled"
        lines.append(f"**{DIVERSITY[metric]}, {what}:**")
        lines.append("")
        for r in rows:
            tag = " (primary)" if r["primary"] else ""
            if "diff" not in r:
                lines.append(
                    f"- at {r['level']:+.4g}{tag}: fewer than 2 seeds of a method (n = {r['n'][0]}, {r['n'][1]})"
                )
                continue
            lines.append(
                f"- at {r['level']:+.4g}{tag}: {r['diff']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}], "
                f"Welch p = {r['p']:.3g} (n = {r['n'][0]}, {r['n'][1]})"
            )
        lines.append("")
    if rep["verdict"] is not None:
        lines.append(f"**Verdict (protocol § R.3): {rep['verdict']}.**")
    else:
        lines.append("Interim: the verdict is read only when all 40 cells have run (protocol § R.3).")
    if rep["gold"]:
        lines += [
            "",
            "Gold gain (the independent evaluator's P(mouth = smile)) at each reward level, cells that measured it:",
            "",
        ]
        for m, rows in rep["gold"].items():
            parts = [
                f"at {r['level']:+.3g}: "
                + (
                    f"{r['gold_gain'][0]:+.3f}" + (f" ± {r['gold_gain'][1]:.3f}" if r["gold_gain"][1] else "")
                    if r["gold_gain"]
                    else "—"
                )
                + f" (n {r['n']})"
                for r in rows
            ]
            lines.append(f"- {METHODS[m][0]}: " + "; ".join(parts))
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and measure cells (resumable; rerun to continue)")
    run.add_argument("--stage", choices=list(SEEDS), required=True, help="tuning, test or replication seeds")
    run.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    run.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(PRIMARY_METHODS))
    run.add_argument("--seeds", nargs="+", type=int, default=None, help="a subset of the stage's seeds")
    run.add_argument("--shard", default="0/1", help="I/N: run every N-th pending cell starting at I")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("report", help="tables and figures from the committed cells")
    rep.add_argument("--out", type=Path, required=True)
    rep.add_argument(
        "--results",
        type=Path,
        default=None,
        help="also write the tables into this markdown file between its collapse-report markers",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm

    from hrf.errors import HrfError

    args = parse_args(argv)
    try:
        if args.command == "run":
            import torch

            torch.set_num_threads(args.threads)
            seeds = args.seeds or SEEDS[args.stage]
            if not set(seeds) <= set(SEEDS[args.stage]):
                raise HrfError(f"seeds {sorted(set(seeds) - set(SEEDS[args.stage]))} are not {args.stage} seeds")
            i, n = (int(x) for x in args.shard.split("/"))
            # methods alternate their order seed by seed, so each shard gets every method, not one method each
            todo = [
                (t, m, s)
                for s in seeds
                for t in args.tasks
                for m in (args.methods if s % 2 == 0 else args.methods[::-1])
            ]
            # a cell's shard is fixed by its place in the full list, so shards started at different times never meet
            mine = [c for j, c in enumerate(todo) if j % n == i and stored_cell(args.out, *c) is None]
            for t, m, s in tqdm(mine, desc=f"collapse cells (shard {args.shard})", unit="cell"):
                run_cell(args.out, t, m, s)
                print(f"done {t} {m} seed {s}", flush=True)
            return 0
        cells = load_cells(args.out)
        report = analyse(cells)
        metric = report["primary_metric"]
        test, tuning = ([c for c in cells if c["seed"] in SEEDS[k]] for k in ("test", "tuning"))
        secondary = tuple(m for m in METHODS if m not in PRIMARY_METHODS)
        figure(test, metric, args.out / "curves_test.png", PRIMARY_METHODS, PRIMARY_METHODS)
        # the secondary conditions' seeds against the primary pair's mean curves: the KL frontier among them
        figure(test, metric, args.out / "curves_secondary.png", secondary, PRIMARY_METHODS)
        figure(tuning, metric, args.out / "curves_tuning.png", tuple(METHODS), ())
        write_json(args.out / "report.json", report)
        text = markdown(report, cells)
        (args.out / "report.md").write_text(text)
        if args.results is not None:
            insert_report(args.results, text)
        if (rep := replication(cells)) is not None and any(rep["seeds_run"].values()):
            write_json(args.out / "replication.json", rep)
            rtext = replication_markdown(rep)
            (args.out / "replication.md").write_text(rtext)
            if args.results is not None:
                insert_report(args.results, rtext, REPLICATION_MARKERS)
            print(rtext)
        sample_grids(args.out, SEEDS["test"][0])
        print(text)
        return 0
    except HrfError as e:
        print(f"collapse: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
