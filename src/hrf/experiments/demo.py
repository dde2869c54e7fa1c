"""``hrf demo``: the whole method on the embedded default, on a CPU, on the way to DDPO_IS's collapse.

The shipped faces model (hrf:faces32) is fine-tuned for one task with DDPO_IS and HRF (HRF-D on request) in
the collapse study's regime (:mod:`hrf.experiments.collapse`: the task's preset, HRF with windows at the
paper's fractions of the chain) for ``EPOCHS`` epochs, half the study's budget. Every ``CURVE_EVERY``
epochs a checkpoint is kept, and the base model, every checkpoint and the final models are sampled from the
same noise. The report gives the final models' reward ± SE, Vendi on pixels, on the domain classifier's and
on the independent evaluator's features, the classifier's IS and the diversity of high-level factor
combinations; and, per method, the curve of reward gain against diversity over training, read at a matched
reward and against the shipped frontier. Every stage resumes: a finished run or sample set is not redone.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from hrf.config import Config
from hrf.errors import HrfError
from hrf.experiments.collapse import EPOCHS as STUDY_EPOCHS
from hrf.experiments.collapse import collapse_config
from hrf.training.checkpoint import checkpoint_dirs
from hrf.training.run_dir import train_to_completion

METHODS = {"ddpo": "DDPO_IS", "hrf": "HRF", "hrfd": "HRF-D"}
DEFAULT_METHODS = ("ddpo", "hrf")  # the pair the collapse study compares; HRF-D is a secondary condition there
TASKS = {
    "compressibility": "jpeg_compressibility",
    "incompressibility": "jpeg_incompressibility",
    "smile": "faces_smile",
}
SEED = 0  # training seed: a tuning seed of the study (its test seeds are 100 and up)
# Half the collapse study's 60 epochs: far enough for DDPO_IS to lose much of its diversity, near enough that
# the frontier still reaches the methods' gains by reweighting base samples (so each method's distance from it
# is a number, not "beyond its reach"), and short enough for the demo's 6-minute target on 2 cores.
EPOCHS = STUDY_EPOCHS // 2
CURVE_EVERY = 10  # epochs between the checkpoints on the curves
CURVE_METRIC = "vendi/evaluator"  # the study's primary diversity metric
MATCH_FRACTION = 0.5  # the curves are read at this fraction of DDPO_IS's final reward gain (the study's primary level)
# Thread counts fixed whatever the machine or OMP_NUM_THREADS: a kernel's result can depend on how many threads
# split its reductions, so fixed counts make the numbers the same on every machine with the same torch build.
# Every training run and every model's sampling is one task on one thread (JOBS tasks run at once, so the
# numbers do not depend on JOBS either), and so are the metrics: with two threads they took 7x longer beside
# other busy processes (benchmarks/RESULTS.md § D), for a few seconds saved on idle cores.
TASK_THREADS = 1
METRIC_THREADS = 1
JOBS = 2  # worker processes on a CPU: faster than one process of two threads (benchmarks/RESULTS.md § D)
# --quick: the same pipeline at a size CI runs in a minute or two.
QUICK = {
    "ddpo": [
        "train.max_epochs=2",
        "train.references=8",
        "train.sample_batch_size=8",
        "train.train_batch_size=64",
    ],
    "hrf": [
        "train.max_epochs=3",
        "train.references=2",
        "train.branches=4",
        "schedule.iterations=[1,1,1]",
        "train.sample_batch_size=8",
        "train.train_batch_size=64",
    ],
    "hrfd": [
        "train.max_epochs=2",
        "train.references=2",
        "train.branches=4",
        "schedule.candidates=[1,5]",
        "train.sample_batch_size=8",
        "train.train_batch_size=64",
    ],
}


def demo_configs(
    task: str, quick: bool, overrides: Sequence[str] = (), methods: Sequence[str] = DEFAULT_METHODS
) -> dict[str, Config]:
    """The demo's config of every method in ``methods`` for ``task``."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise HrfError(f"demo methods must be some of {', '.join(METHODS)}; got {list(methods)}")
    if "ddpo" not in methods:
        raise HrfError("the demo compares with DDPO_IS: include 'ddpo' in its methods")
    every = 1 if quick else CURVE_EVERY
    return {
        m: collapse_config(task, m, SEED, every, (QUICK[m] if quick else []) + list(overrides), EPOCHS)
        for m in dict.fromkeys(methods)
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
    methods: Sequence[str] = DEFAULT_METHODS,
    device: str | None = None,
    jobs: int = JOBS,
) -> dict:
    """Fine-tune with each method, evaluate the final models and the checkpoints against the base model,
    write ``REPORT.md``. Everything runs on ``device`` (:func:`hrf.models.resolve_device`); the evaluation
    draws ``per_sample`` noise.

    ``match_reward`` is the paper's §5.2 protocol: DDPO_IS trains first, and the others stop as soon as an
    epoch's mean reward reaches DDPO_IS's last one (or at the end of their budget). ``jobs``: how many runs
    and sample sets are made at once on a CPU (:func:`train_and_sample`); the numbers do not depend on it.
    """
    from hrf.benchmarks import get_benchmark
    from hrf.evaluation.pipeline import evaluate_models
    from hrf.evaluation.report import metrics_markdown, report_figures
    from hrf.models import resolve_device

    start = time.perf_counter()
    where = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = demo_configs(task, quick, overrides, methods)
    num = 32 if quick else num_eval
    common: dict[str, Any] = {
        "num": num,
        "seed": seed,
        "steps": configs["ddpo"].sampling.num_steps,
        "cache_dir": out / "eval",
        "rewards": [TASKS[task]],
        "benchmark": get_benchmark("faces"),
        "progress": progress,
        "device": where,
    }
    # a GPU runs one task at a time; worker processes would each hold a copy of the CUDA context
    jobs = jobs if where.type == "cpu" else 1
    t0 = time.perf_counter()
    models, timings = train_and_sample(out, configs, common, match_reward, progress, where, jobs)
    timings[f"train and sample ({jobs} processes, wall)"] = time.perf_counter() - t0
    budgets = {METHODS[m]: json.loads((out / m / "summary.json").read_text()) for m in configs}
    points = checkpoint_models(out, configs)
    t0 = time.perf_counter()
    with _threads(METRIC_THREADS):
        report = evaluate_models(
            models, n_boot=0 if quick else 200, is_splits=1 if quick else 5, return_arrays=True, **common
        )
        figures = report_figures(report, report.pop("images"), out / "eval")
        report["paired_change"] = paired_changes(report.pop("arrays")["rewards"], TASKS[task], list(budgets))
        timings["metrics of the final models"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        along = evaluate_models({name: spec for name, (_, _, spec) in points.items()}, n_boot=0, is_splits=1, **common)
    report["curves"] = training_curves(report, along, points, TASKS[task], budgets)
    report["curves"]["frontier"] = frontier_reading(report["curves"], models["base"], TASKS[task], common["steps"])
    figures.append(curves_figure(report["curves"], TASKS[task], out / "eval" / "curves.png"))
    timings["metrics of the checkpoints"] = time.perf_counter() - t0
    timings["total (wall)"] = time.perf_counter() - start
    report["timings_seconds"] = {k: round(v, 1) for k, v in timings.items()}
    report["demo"] = {
        "task": task,
        "quick": quick,
        "num_eval": num,
        "seed": seed,
        "train_seed": configs["ddpo"].train.seed,
        "models": models,
        "match_reward": match_reward,
        "budgets": budgets,
        "device": str(where),
        "threads": {"task": TASK_THREADS, "metrics": METRIC_THREADS, "jobs": jobs},
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    (out / "REPORT.md").write_text(_report_markdown(report, metrics_markdown(report), figures, out))
    return report


class _threads:
    """``torch.set_num_threads(n)`` inside the block, the caller's count restored after it."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.before)


def _task(fn: Callable, *args) -> tuple[Any, float]:
    """``fn(*args)`` on ``TASK_THREADS``, and its seconds: how the demo runs each training run and sample set."""
    t0 = time.perf_counter()
    with _threads(TASK_THREADS):
        result = fn(*args)
    return result, time.perf_counter() - t0


def _train(cfg: Config, out: Path, progress: bool, device: str) -> str:
    return str(train_to_completion(cfg, out, progress=progress, device=device))


def _sample(spec: str, path: Path, num: int, seed: int, steps: int, device: str) -> None:
    from hrf.evaluation.samples import sample_or_load

    sample_or_load(spec, path, num, seed, steps, device=device)


class _Inline:
    """The executor of ``jobs = 1``: each task runs when submitted, in this process."""

    def submit(self, fn: Callable, *args) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:
        pass


def train_and_sample(
    out: Path,
    configs: dict[str, Config],
    common: dict[str, Any],
    match_reward: bool,
    progress: bool,
    where,
    jobs: int,
    draw: bool = True,
) -> tuple[dict[str, str], dict[str, float]]:
    """Train every method and draw the evaluation samples of the base model, every final model and every
    checkpoint into the evaluation's cache (``common["cache_dir"]``), ``jobs`` tasks at a time, each on
    ``TASK_THREADS`` (``jobs`` > 1: in worker processes). A run's samples are drawn as soon as it ends, beside
    the runs still training (``draw=False``: train only; ``common`` is then unused). Returns the evaluated
    models ``{name: spec}`` (base first) and each task's seconds."""
    from hrf.evaluation.pipeline import sample_paths

    base = configs["ddpo"].model.path
    finals: dict[str, str] = {}
    timings: dict[str, float] = {"sample every model (sum over processes)": 0.0}
    bars = progress and jobs == 1  # bars of parallel processes would overwrite each other
    # spawn, not fork: a forked child would inherit this process's torch thread pools and any CUDA state
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) if jobs > 1 else _Inline()
    with pool:
        pending: dict[Future, tuple[str, str]] = {}

        def train(method: str) -> None:
            if progress:
                epochs, kind = configs[method].train.max_epochs, configs[method].schedule.kind
                print(f"hrf demo: {METHODS[method]} ({epochs} epochs, {kind} schedule) → {out / method}")
            pending[pool.submit(_task, _train, configs[method], out / method, bars, where.type)] = ("train", method)

        def sample(name: str, spec: str) -> None:
            if not draw:
                return
            path = sample_paths({name: spec}, common["cache_dir"])[name]
            task = (spec, path, common["num"], common["seed"], common["steps"], str(where))
            pending[pool.submit(_task, _sample, *task)] = ("sample", name)

        for method in configs:
            if method == "ddpo" or not match_reward:
                train(method)
        sample("base", base)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                kind, method = pending.pop(future)
                result, seconds = future.result()
                if kind == "sample":
                    timings["sample every model (sum over processes)"] += seconds
                    continue
                timings[f"train {METHODS[method]}"] = seconds
                if progress and not bars:
                    print(f"hrf demo: {METHODS[method]} trained in {seconds:.0f} s")
                finals[METHODS[method]] = result
                if match_reward and method == "ddpo":
                    target = json.loads((out / method / "summary.json").read_text())["last_reward_mean"]
                    for other in configs:
                        if other != "ddpo":
                            configs[other].train.target_reward = target
                            train(other)
                sample(METHODS[method], result)
                for point, (_, _, spec) in checkpoint_models(out, {method: configs[method]}).items():
                    sample(point, spec)
    return {"base": base, **{METHODS[m]: finals[METHODS[m]] for m in configs}}, timings


def checkpoint_models(out: Path, configs: dict[str, Config]) -> dict[str, tuple[str, int, str]]:
    """``{name: (method label, epoch, model spec)}`` of every kept checkpoint before each run's last epoch
    (the final model stands for the last)."""
    points = {}
    for method in configs:
        last = json.loads((out / method / "summary.json").read_text())["epochs"]
        for ckpt in checkpoint_dirs(out / method):
            epoch = int(ckpt.name.rsplit("_", 1)[1])
            if epoch < last:
                points[f"{METHODS[method]}@{epoch}"] = (METHODS[method], epoch, str(ckpt / "model"))
    return points


def training_curves(
    final: dict, along: dict, points: dict[str, tuple[str, int, str]], reward: str, budgets: dict[str, dict]
) -> dict:
    """Per method, its curve over training (epoch, reward gain over the base, ``CURVE_METRIC`` and the domain
    classifier's Vendi as fractions of the base's, the evaluator's confidence), the matched reward level
    (``MATCH_FRACTION`` of DDPO_IS's final gain) and each curve's diversity read there."""
    from hrf.evaluation.matched import value_at_reward
    from hrf.evaluation.pipeline import metric_values

    base = metric_values(final, "base")
    rk = f"reward/{reward}"

    def point(values: dict, epoch: int) -> dict:
        return {
            "epoch": epoch,
            "gain": values[rk] - base[rk],
            "fraction": values[CURVE_METRIC] / base[CURVE_METRIC],
            "domain_fraction": values["vendi/domain"] / base["vendi/domain"],
            "confidence": values["confidence/evaluator"],
        }

    curves = {}
    for label, budget in budgets.items():
        mine = sorted((e, name) for name, (lab, e, _) in points.items() if lab == label)
        curves[label] = [point(base, 0)]
        curves[label] += [point(metric_values(along, name), e) for e, name in mine]
        curves[label].append(point(metric_values(final, label), budget["epochs"]))
    level = MATCH_FRACTION * curves[METHODS["ddpo"]][-1]["gain"]
    matched = {
        label: value_at_reward([p["gain"] for p in c], [p["fraction"] for p in c], level) if level > 0 else None
        for label, c in curves.items()
    }
    return {"metric": CURVE_METRIC, "points": curves, "level": level, "matched": matched}


def frontier_reading(curves: dict, base: str, reward: str, steps: int) -> dict | None:
    """The shipped frontier of the base model (hrf.evaluation.frontier) as a curve of (gain, evaluator-Vendi
    fraction), and where each method's final point lies against it; None when hrf ships no frontier for it."""
    from hrf.evaluation.frontier import read_frontier, shipped_frontier

    fr = shipped_frontier(base, reward, steps)
    if fr is None:
        return None
    key = "frac/vendi/evaluator"
    ends = {}
    for label, pts in curves["points"].items():
        end = pts[-1]
        at = read_frontier(fr, end["gain"], key) if end["gain"] > 0 else None
        ends[label] = {"gain": end["gain"], "fraction": end["fraction"], "frontier": at}
    on = [(p["gain"], p[key]) for p in fr["curve"] if p["reached"] and p.get(key) is not None]
    return {"curve": on, "reach": fr["largest_reachable_gain"], "num": fr["key"]["num"], "ends": ends}


def curves_figure(curves: dict, reward: str, path: Path) -> Path:
    from hrf.evaluation.plots import figure_training_curves

    level = curves["level"] if curves["level"] > 0 else None
    frontier = curves.get("frontier")
    return figure_training_curves(
        curves["points"], path, reward, "Vendi (independent evaluator)", level, frontier["curve"] if frontier else None
    )


def paired_changes(
    rewards: dict[str, dict[str, np.ndarray]], reward: str, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Each fine-tuned model's per-sample reward minus the base model's on the same initial noise: mean and
    standard error. Pairing removes the sample-to-sample spread that the unpaired means carry."""
    from hrf.evaluation.metrics import mean_sem

    base = np.asarray(rewards["base"][reward], dtype=np.float64)
    out = {}
    for name in names:
        mean, sem = mean_sem(np.asarray(rewards[name][reward], dtype=np.float64) - base)
        out[name] = {"mean": mean, "sem": sem}
    return out


def _curves_markdown(report: dict) -> list[str]:
    curves = report["curves"]
    lines = [
        "## Reward and diversity over training",
        "",
        "Each checkpoint sampled from the same noise as the final models. Diversity as a fraction of the base "
        "model's: Vendi of the independent evaluator classifier's features (the collapse study's primary "
        "metric; no reward is built on that network) and of the domain classifier's. Evaluator confidence: "
        "the mean over samples of its least-sure factor's top probability (low off the face manifold).",
        "",
        "| method | epoch | reward gain | Vendi (evaluator) / base | Vendi (domain) / base | evaluator confidence |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, pts in curves["points"].items():
        for p in pts:
            lines.append(
                f"| {label} | {p['epoch']} | {p['gain']:+.4g} | {p['fraction']:.3f} | {p['domain_fraction']:.3f} "
                f"| {p['confidence']:.3f} |"
            )
    lines.append("")
    if curves["level"] > 0:
        read = "; ".join(
            f"{label} {v:.3f}" if v is not None else f"{label} never reaches it"
            for label, v in curves["matched"].items()
        )
        lines.append(
            f"At a matched reward gain of {curves['level']:+.4g} ({MATCH_FRACTION:.0%} of DDPO_IS's final gain; "
            f"each curve interpolated at its first crossing), Vendi (evaluator) / base: {read}. One training "
            "seed: a picture of the regime, not a test. The collapse study (benchmarks/RESULTS.md in the "
            "repository) compares the methods this way over ten seeds."
        )
    else:
        lines.append("DDPO_IS did not raise the reward, so no matched reward level is read.")
    if (fr := curves.get("frontier")) is not None:
        lines += [
            "",
            f"Against the frontier (the base model reweighted by exp(β·reward), {fr['num']:,} base samples: the "
            "most diversity any model that makes the base model's images keeps at each mean reward; it reaches "
            f"gains up to {fr['reach']:+.4g} by reweighting):",
            "",
        ]
        for label, end in fr["ends"].items():
            if end["gain"] <= 0:
                lines.append(f"- {label} ends without a reward gain ({end['gain']:+.4g}).")
            elif end["frontier"] is None:
                lines.append(
                    f"- {label} ends at {end['gain']:+.4g}, keeping {end['fraction']:.3f} of the base's Vendi: "
                    f"beyond the frontier's reach ({fr['reach']:+.4g}), where the base model almost never makes "
                    "such images."
                )
            else:
                lines.append(
                    f"- {label} ends at {end['gain']:+.4g}, keeping {end['fraction']:.3f} of the base's Vendi; the "
                    f"frontier keeps {end['frontier']:.3f} there ({end['fraction'] / end['frontier']:.2f} of it)."
                )
    return lines + [""]


def _report_markdown(report: dict, table: str, figures: list[Path], out: Path) -> str:
    demo = report["demo"]
    task = demo["task"]
    reward_key = f"reward/{TASKS[task]}"
    base = report["models"]["base"][reward_key]["value"]
    names = list(demo["budgets"])
    lines = [
        f"# hrf demo — {task} on the faces benchmark",
        "",
        f"Base model {demo['models']['base']} fine-tuned with {', '.join(names)} in the collapse regime (the "
        f"presets configs/faces32/{task}-*.toml trained for {EPOCHS} epochs, half the collapse study's budget; "
        f"HRF's start windows at the paper's fractions of the chain; training seed {demo['train_seed']}); "
        f"{demo['num_eval']} samples per model "
        f"from the same initial noise (seed {demo['seed']}, drawn per sample); run on {demo['device']}.",
        "",
        table,
        "## Reward change over the base model, paired over the same initial noise",
        "",
    ]
    for name in names:
        entry, change = report["models"][name][reward_key], report["paired_change"][name]
        ratio = f" ({change['mean'] / change['sem']:+.1f} s.e.)" if change["sem"] > 0 else ""
        lines.append(
            f"- {name}: {change['mean']:+.4f} ± {change['sem']:.4f}{ratio}; mean {entry['value']:.4g} (base {base:.4g})"
        )
    lines += ["", *_curves_markdown(report)]
    protocol = (
        "the others stopped at DDPO_IS's last training reward or at the end of their budget "
        "(`--match-reward`, the paper's §5.2)"
        if demo["match_reward"]
        else "fixed budgets"
    )
    lines += [f"## Budgets ({protocol})", ""]
    for name, b in demo["budgets"].items():
        done = (
            f", {b['trajectories']} trajectories, {b['trained_pairs']} trained (trajectory, step) pairs"
            if "trained_pairs" in b
            else ""
        )
        lines.append(
            f"- {name}: {b['epochs']} epochs ({b['stopped']}){done}; last training reward {b['last_reward_mean']:.4g}"
        )
    threads = demo["threads"]
    lines += ["", "## Time (seconds, this machine)", ""]
    lines += [f"- {k}: {v}" for k, v in report["timings_seconds"].items()]
    lines += [
        "",
        f"Threads: {threads['task']} per training run and per model's samples ({threads['jobs']} of them at a "
        f"time), {threads['metrics']} for the metrics. These counts are fixed "
        "whatever the machine, so another machine with the same torch build repeats these numbers bit for "
        "bit when its CPU takes the same kernels. A CPU with other vector instructions (AVX2 against "
        "AVX-512) may take kernels that round some sums differently; such differences can grow over the "
        "training epochs, so there the numbers are expected close, not identical.",
    ]
    lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in figures]
    return "\n".join(lines) + "\n"
