"""hrf's speed against the floor (bare UNet calls) and against diffusers, on this machine.

    python benchmarks/perf.py [--quick] [--threads N] [--out benchmarks/results/perf.json]

Ratios are measured within one run: the compared variants alternate repetition by repetition and each
ratio is the median over repetitions of (variant / floor) in the same repetition, so the load of a
shared machine cancels out as far as it can. Peak memory is the peak RSS (``VmHWM``; ``ru_maxrss``
off Linux) of a fresh subprocess running one measurement once, beside a subprocess that only imports.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hrf.models.configs import CELEBAHQ_SCHEDULER, CELEBAHQ_UNET

TARGETS = {
    "sampling_vs_floor": 1.05,
    "sampling_vs_diffusers": 1.0,
    "epoch_vs_floor": 1.15,
    "hrf_share_tolerance": 0.10,
    "vendi_seconds": 5.0,
}


# ---------------------------------------------------------------- machine and timing helpers


def machine_info(threads: int) -> dict:
    """CPU model, cores, library versions, threads, load, date and the command."""
    import diffusers

    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "torch_threads": threads,
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python", *sys.argv]),
    }


def interleaved(variants: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds of each variant per repetition, variants alternating within every repetition (after a warm-up)."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over repetitions of a/b taken within the same repetition."""
    return float(np.median(np.asarray(a) / np.asarray(b)))


def ratio_range(a: list[float], b: list[float]) -> list[float]:
    """Smallest and largest a/b over repetitions: the spread a median ratio should be read against."""
    r = np.asarray(a) / np.asarray(b)
    return [float(r.min()), float(r.max())]


def _seconds(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: float(np.median(v)) for name, v in times.items()}


# ---------------------------------------------------------------- models


def base_model(quick: bool):
    """``(name, unet, train_scheduler)``: the shipped hrf:faces32, else a fresh tiny 32×32 UNet."""
    from diffusers import DDPMScheduler

    from hrf.models import load_scheduler, load_unet, unet_from_preset

    if Path(__file__).resolve().parents[1].joinpath("src/hrf/assets/models/faces32/config.json").is_file():
        return "hrf:faces32", load_unet("hrf:faces32"), load_scheduler("hrf:faces32")
    torch.manual_seed(0)
    return "tiny 32×32 (fresh; hrf:faces32 not installed)", unet_from_preset("tiny", 32), DDPMScheduler()


def paper_model(quick: bool, size: int):
    """``(name, unet, train_scheduler)``: the celebahq-256 UNet config at ``size`` px (channels ÷8 with quick)."""
    from diffusers import DDPMScheduler, UNet2DModel

    cfg = dict(CELEBAHQ_UNET)
    name = f"ddpm-celebahq-256 UNet config at {size}×{size}, random init"
    if quick:
        cfg.update(block_out_channels=tuple(c // 8 for c in cfg["block_out_channels"]), norm_num_groups=8)
        name += " (channels ÷8: --quick)"
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=3, out_channels=3, **cfg)
    return name, unet, DDPMScheduler(**CELEBAHQ_SCHEDULER)


def n_params(unet) -> float:
    return sum(p.numel() for p in unet.parameters()) / 1e6


# ---------------------------------------------------------------- sampling


def sampling_variants(unet, train_scheduler, steps: int, batch: int) -> dict[str, Callable[[], object]]:
    """hrf rollout with log-probs, diffusers' DDIMPipeline and the bare UNet forwards, from the same noise."""
    from diffusers import DDIMPipeline

    from hrf.models import make_ddim_scheduler
    from hrf.sampling import rollout

    unet = unet.eval()
    ddim = make_ddim_scheduler(train_scheduler, steps)
    pipe = DDIMPipeline(unet, copy.deepcopy(ddim))
    pipe.set_progress_bar_config(disable=True)
    size = unet.config.sample_size
    noise = torch.randn(batch, unet.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    timesteps = ddim.timesteps

    def hrf_rollout():
        return rollout(unet, ddim, noise, 0, 1.0, torch.Generator().manual_seed(1))

    def diffusers_pipe():
        return pipe(
            batch_size=batch,
            generator=torch.Generator().manual_seed(1),
            eta=1.0,
            num_inference_steps=steps,
            output_type="np",
        )

    @torch.no_grad()
    def floor():
        x = noise
        for t in timesteps:
            x = unet(x, t).sample
        return x

    return {"hrf_rollout": hrf_rollout, "diffusers_ddim": diffusers_pipe, "floor": floor}


def bench_sampling(unet, train_scheduler, steps: int, batch: int, reps: int) -> dict:
    times = interleaved(sampling_variants(unet, train_scheduler, steps, batch), reps)
    return {
        "steps": steps,
        "batch": batch,
        "reps": reps,
        "seconds_median": _seconds(times),
        "seconds": times,
        "hrf_vs_floor": median_ratio(times["hrf_rollout"], times["floor"]),
        "diffusers_vs_floor": median_ratio(times["diffusers_ddim"], times["floor"]),
        "hrf_vs_diffusers": median_ratio(times["hrf_rollout"], times["diffusers_ddim"]),
        "hrf_vs_diffusers_range": ratio_range(times["hrf_rollout"], times["diffusers_ddim"]),
        "hrf_vs_floor_range": ratio_range(times["hrf_rollout"], times["floor"]),
    }


# ---------------------------------------------------------------- training epochs


def epoch_config(method: str, steps: int, refs: int, branches: int, sample_bs: int, train_bs: int, window):
    """The faces32 preset of ``method`` resized; HRF keeps one window so every epoch costs alike."""
    from hrf.config import load_config, preset_path

    overrides = [
        f"sampling.num_steps={steps}",
        f"train.references={refs}",
        f"train.branches={branches}",
        f"train.sample_batch_size={sample_bs}",
        f"train.train_batch_size={train_bs}",
        "train.max_epochs=1000",
        "output.grid_every=0",
        "train.skip_last_steps=0",
    ]  # the paper's cost: every stochastic step trained
    if method == "hrf":
        overrides += [f"schedule.windows=[{list(window)}]", "schedule.iterations=[1000]"]
    return load_config(preset_path(f"faces32/compressibility-{method}"), overrides)


def epoch_floor_sizes(
    starts: np.ndarray,
    branches: int,
    refs_full: int,
    steps: int,
    sample_bs: int,
    pairs: int,
    updates: int,
    inner: int,
    train_bs: int,
) -> tuple[list[int], list[int]]:
    """Batch sizes of every UNet forward of an epoch's sampling, and of every training micro-batch.

    Mirrors the trainer: ``refs_full`` reference rollouts from noise, then trajectories (each reference's
    start repeated ``branches`` times) in chunks of ``sample_bs`` where only begun ones are evaluated;
    then ``pairs`` trained steps split into ``updates`` chunks per inner epoch, each in ``train_bs`` pieces.
    """
    fwd = []
    for i in range(0, refs_full, sample_bs):
        fwd += [min(sample_bs, refs_full - i)] * steps
    per_traj = np.repeat(starts, branches)
    for i in range(0, len(per_traj), sample_bs):
        chunk = per_traj[i : i + sample_bs]
        fwd += [int((chunk <= k).sum()) for k in range(steps) if (chunk <= k).any()]
    micro = []
    for _ in range(inner):
        for part in np.array_split(np.arange(pairs), updates):
            micro += [train_bs] * (len(part) // train_bs) + ([len(part) % train_bs] if len(part) % train_bs else [])
    return fwd, micro


def run_floor(unet, fwd: list[int], micro: list[int], size: int, channels: int) -> None:
    """The bare UNet calls of an epoch: forwards without grad, then forward+backward per micro-batch."""
    t = torch.tensor(500)
    x = {b: torch.randn(b, channels, size, size) for b in set(fwd) | set(micro)}
    with torch.no_grad():
        for b in fwd:
            unet(x[b], t)
    for b in micro:
        unet(x[b], t).sample.square().mean().backward()
    unet.zero_grad(set_to_none=True)


def bench_epochs(
    unet, train_scheduler, steps: int, refs: int, branches: int, sample_bs: int, train_bs: int, reps: int, window
) -> dict:
    """A DDPO epoch and an HRF epoch, each beside the floor of exactly its own UNet calls."""
    from hrf.rewards import make_reward
    from hrf.training.trainer import Trainer

    reward = make_reward("jpeg_compressibility")
    size, channels = unet.config.sample_size, unet.config.in_channels
    trainers, epochs = {}, {}
    tmp = Path(tempfile.mkdtemp(prefix="hrf-perf-"))
    for method, (r, b) in {"ddpo": (refs * branches, 1), "hrf": (refs, branches)}.items():
        cfg = epoch_config(method, steps, r, b, sample_bs, train_bs, window)
        trainers[method] = Trainer(
            cfg,
            tmp / method,
            unet=copy.deepcopy(unet),
            train_scheduler=train_scheduler,
            reward_fn=reward,
            progress=False,
        )
        epochs[method] = 0
    floor_unet = copy.deepcopy(unet).train()
    last: dict[str, dict] = {}

    def epoch(method):
        def fn():
            tr = trainers[method]
            last[method] = tr.run_epoch(epochs[method])
            epochs[method] += 1

        return fn

    def floor(method):
        def fn():
            m, cfg = last[method], trainers[method].cfg
            starts = np.repeat(list(map(int, m["start_step_histogram"])), list(m["start_step_histogram"].values()))
            refs_full = cfg.train.references if method == "hrf" else 0
            fwd, micro = epoch_floor_sizes(
                starts,
                cfg.train.branches,
                refs_full,
                steps,
                cfg.train.sample_batch_size,
                m["trained_pairs"],
                cfg.train.updates_per_epoch,
                cfg.train.inner_epochs,
                cfg.train.train_batch_size,
            )
            last[method + "_floor_calls"] = {
                "forwards": len(fwd),
                "forward_images": sum(fwd),
                "train_micro_batches": len(micro),
                "trained_pairs": sum(micro),
            }
            run_floor(floor_unet, fwd, micro, size, channels)

        return fn

    variants = {
        "ddpo_epoch": epoch("ddpo"),
        "ddpo_floor": floor("ddpo"),
        "hrf_epoch": epoch("hrf"),
        "hrf_floor": floor("hrf"),
    }
    times = interleaved(variants, reps)
    share_pairs = last["hrf"]["trained_pairs"] / last["ddpo"]["trained_pairs"]
    hrf_vs_ddpo = median_ratio(times["hrf_epoch"], times["ddpo_epoch"])
    return {
        "steps": steps,
        "skip_last_steps": trainers["ddpo"].cfg.train.skip_last_steps,
        "trajectories": refs * branches,
        "hrf_references": refs,
        "hrf_branches": branches,
        "hrf_window": list(window),
        "sample_batch_size": sample_bs,
        "train_batch_size": train_bs,
        "reps": reps,
        "seconds_median": _seconds(times),
        "seconds": times,
        "ddpo_epoch_vs_floor": median_ratio(times["ddpo_epoch"], times["ddpo_floor"]),
        "hrf_epoch_vs_floor": median_ratio(times["hrf_epoch"], times["hrf_floor"]),
        "hrf_vs_ddpo_epoch": hrf_vs_ddpo,
        "hrf_share_of_trained_steps": share_pairs,
        "hrf_vs_ddpo_floor": median_ratio(times["hrf_floor"], times["ddpo_floor"]),
        "hrf_cost_over_share": hrf_vs_ddpo / share_pairs,
        "last_epoch_phases": {
            m: {k: last[m][k] for k in ("seconds_sampling", "seconds_reward", "seconds_training", "trained_pairs")}
            for m in ("ddpo", "hrf")
        },
        "floor_calls": {m: last[m + "_floor_calls"] for m in ("ddpo", "hrf")},
    }


# ---------------------------------------------------------------- rewards and metrics


def face_images(n: int) -> torch.Tensor:
    """``n`` procedural faces in model space (what the faces benchmark's rewards and embedders see)."""
    from hrf.data.faces import generate_faces
    from hrf.images import from_uint8_hwc

    return from_uint8_hwc(generate_faces(n, 0)[0])


def throughput(fn: Callable[[], object], n: int, reps: int) -> dict:
    """Items per second of ``fn`` over ``n`` items (median of ``reps`` after a warm-up)."""
    s = interleaved({"fn": fn}, reps)["fn"]
    return {"n": n, "seconds_median": float(np.median(s)), "per_second": float(n / np.median(s))}


def bench_metrics(quick: bool, reps: int) -> dict:
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from hrf.evaluation.vendi import vendi_score
    from hrf.rewards import make_reward

    n = 64 if quick else 512
    images = face_images(n)
    out = {"jpeg_reward": throughput(lambda: make_reward("jpeg_compressibility")(images), n, reps)}
    rows = 500 if quick else 10_000
    X = np.random.default_rng(0).standard_normal((rows, 2048)).astype(np.float32)
    out["vendi"] = {**throughput(lambda: vendi_score(X), rows, 1 if quick else max(1, reps)), "shape": [rows, 2048]}
    domain = make_embedder("domain")
    out["domain_features"] = throughput(lambda: domain.embed(images), n, reps)
    if efficientnet_installed():
        eff = make_embedder("efficientnet_lite0")
        k = min(n, 16 if quick else 64)
        out["efficientnet_lite0_features"] = throughput(lambda: eff.embed(images[:k]), k, reps)
    else:
        out["efficientnet_lite0_features"] = None
    return out


# ---------------------------------------------------------------- peak memory (one subprocess per item)


def memory_items(quick: bool) -> list[str]:
    if quick:
        return ["base/hrf_rollout"]
    return [
        "base/hrf_rollout",
        "base/diffusers_ddim",
        "base/floor",
        "base/ddpo_epoch",
        "vendi",
        "paper/hrf_rollout",
        "paper/diffusers_ddim",
        "paper/floor",
        "jpeg_reward",
        "domain_features",
    ]


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM on Linux (reset by exec, unlike ru_maxrss, which a child inherits)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss is kB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def import_baseline_mb() -> float:
    """Import what every memory item imports; this process's peak RSS then, the item's import baseline."""
    import diffusers  # noqa: F401

    import hrf.evaluation.embedders  # noqa: F401

    return peak_rss_mb()


def run_memory_item(item: str, args: argparse.Namespace) -> None:
    """Run one measurement once (the caller reads this process's max RSS)."""
    from hrf.evaluation.embedders import make_embedder
    from hrf.evaluation.vendi import vendi_score
    from hrf.rewards import make_reward

    if item == "vendi":
        vendi_score(np.random.default_rng(0).standard_normal((500 if args.quick else 10_000, 2048)).astype(np.float32))
        return
    if item == "jpeg_reward":
        make_reward("jpeg_compressibility")(face_images(512))
        return
    if item == "domain_features":
        make_embedder("domain").embed(face_images(512))
        return
    which, what = item.split("/")
    if which == "base":
        _, unet, sched = base_model(args.quick)
        steps, batch = args.base_steps, args.base_batch
    else:
        _, unet, sched = paper_model(args.quick, args.paper_size)
        steps, batch = args.paper_steps, args.paper_batch
    if what == "ddpo_epoch":
        from hrf.training.trainer import Trainer

        cfg = epoch_config("ddpo", steps, args.base_trajectories, 1, args.base_batch, args.train_batch, None)
        Trainer(
            cfg,
            Path(tempfile.mkdtemp(prefix="hrf-perf-")),
            unet=unet,
            train_scheduler=sched,
            reward_fn=make_reward("jpeg_compressibility"),
            progress=False,
        ).run_epoch(0)
        return
    sampling_variants(unet, sched, steps, batch)[what]()


def bench_memory(args: argparse.Namespace) -> dict:
    """Max RSS (MB) of a fresh process per item, and that minus the item's own import baseline (its peak RSS
    after the imports, before the measurement; ``baseline``: the largest of those)."""
    peaks, above = {}, {}
    for item in memory_items(args.quick):
        cmd = [sys.executable, __file__, "--memory-item", item, "--threads", str(args.threads)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--paper-steps", str(args.paper_steps), "--paper-batch", str(args.paper_batch)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        peaks[item], above[item] = row["max_rss_mb"], row["max_rss_mb"] - row["baseline_mb"]
    return {
        "method": "peak RSS (VmHWM) of a fresh subprocess per item, less its peak after the imports",
        "max_rss_mb": {"baseline": max(peaks[k] - above[k] for k in peaks), **peaks},
        "above_import_baseline_mb": above,
    }


# ---------------------------------------------------------------- report


def check(value: float, target: float, spread: list[float] | None = None) -> str:
    """The verdict on a median against its target; with the per-repetition range, whether the reps agree."""
    if value <= target:
        return "meets"
    if spread is not None and spread[0] <= target:
        return f"MISSES by the median; reps range {spread[0]:.3f}–{spread[1]:.3f}, within noise"
    return "MISSES"


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, diffusers {m['diffusers']}, "
        f"{m['torch_threads']} torch thread(s), load average at start {m['load_average_at_start'][0]:.1f}; "
        f"{m['date']}; `{m['command']}`",
        "",
        "| model | measurement | hrf (s) | floor (s) | hrf / floor | target | other |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, model in res["models"].items():
        if "epochs" not in model:
            continue
        s, e = model["sampling"], model["epochs"]
        sm, em = s["seconds_median"], e["seconds_median"]
        lines.append(
            f"| {key}: {model['name']} ({model['params_m']:.2f} M) | rollout {s['batch']}×{s['steps']} steps "
            f"| {sm['hrf_rollout']:.3g} | {sm['floor']:.3g} | {s['hrf_vs_floor']:.3f} | ≤ 1.05 "
            f"({check(s['hrf_vs_floor'], 1.05, s.get('hrf_vs_floor_range'))}) | diffusers DDIMPipeline "
            f"{sm['diffusers_ddim']:.3g} s ({s['diffusers_vs_floor']:.3f}× floor); hrf / diffusers "
            f"{s['hrf_vs_diffusers']:.3f} "
            f"({check(s['hrf_vs_diffusers'], 1.0, s.get('hrf_vs_diffusers_range'))}) |"
        )
        lines.append(
            f"| {key} | DDPO epoch ({e['trajectories']} traj, {e['steps']} steps) | {em['ddpo_epoch']:.3g} "
            f"| {em['ddpo_floor']:.3g} | {e['ddpo_epoch_vs_floor']:.3f} | ≤ 1.15 "
            f"({check(e['ddpo_epoch_vs_floor'], 1.15)}) | |"
        )
        dev = e["hrf_cost_over_share"] - 1
        lines.append(
            f"| {key} | HRF epoch (window {e['hrf_window']}) | {em['hrf_epoch']:.3g} | {em['hrf_floor']:.3g} "
            f"| {e['hrf_epoch_vs_floor']:.3f} | HRF/DDPO cost within ±10% of its trained-step share "
            f"({'meets' if abs(dev) <= 0.10 else 'MISSES'}) | HRF/DDPO epoch {e['hrf_vs_ddpo_epoch']:.3f}; "
            f"trained-step share {e['hrf_share_of_trained_steps']:.3f}; "
            f"floor ratio {e['hrf_vs_ddpo_floor']:.3f} |"
        )
    r = res.get("metrics", {})
    lines += ["", "| reward / metric | items | seconds | items/s | target |", "| --- | --- | --- | --- | --- |"]
    for name, entry in r.items():
        if entry is None:
            lines.append(f"| {name} | – | – | not installed | |")
            continue
        target = f"≤ 5 s ({check(entry['seconds_median'], 5.0)})" if name == "vendi" else ""
        items = "×".join(map(str, entry["shape"])) if "shape" in entry else entry["n"]
        lines.append(f"| {name} | {items} | {entry['seconds_median']:.3g} | {entry['per_second']:.4g} | {target} |")
    if res.get("memory"):
        mem = res["memory"]
        lines += [
            "",
            f"Peak memory ({mem['method']}), MB:",
            "",
            "| item | max RSS | above import baseline |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {k} | {v:.0f} | {mem['above_import_baseline_mb'].get(k, 0):.0f} |" for k, v in mem["max_rss_mb"].items()
        ]
    return "\n".join(lines) + "\n"


def save(res: dict, out: Path) -> None:
    """Write the results so far (a run cut short keeps its finished parts; ``complete`` marks a whole run)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repetition (a smoke test)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "perf.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the box is shared)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3; quick 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-item subprocess memory measurements")
    p.add_argument(
        "--paper-steps", type=int, default=None, help="denoising steps for the paper-sized UNet (default 10)"
    )
    p.add_argument("--paper-batch", type=int, default=None, help="batch for the paper-sized UNet (default 4)")
    p.add_argument(
        "--only",
        choices=("base", "paper"),
        default=None,
        help="measure one model's sampling and epochs only (no metrics, no memory)",
    )
    p.add_argument("--memory-item", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.reps = args.reps or (1 if q else 3)
    # Sizes that finish in about half an hour on a loaded shared 2-core box.
    args.base_steps, args.base_batch = (10, 4) if q else (40, 32)
    args.base_trajectories, args.train_batch = (4, 64) if q else (16, 128)
    args.paper_size = 32
    args.paper_steps = args.paper_steps or (4 if q else 10)
    args.paper_batch = args.paper_batch or (2 if q else 4)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_item:
        baseline = import_baseline_mb()
        run_memory_item(args.memory_item, args)
        print(json.dumps({"max_rss_mb": peak_rss_mb(), "baseline_mb": baseline}))
        return 0
    from tqdm.auto import tqdm

    res = {"machine": machine_info(args.threads), "targets": TARGETS, "models": {}}
    q = args.quick
    specs = {
        "base": (
            base_model(q),
            args.base_steps,
            args.base_batch,
            dict(
                refs=args.base_trajectories // 8 or 1,
                branches=8 if not q else 4,
                sample_bs=args.base_trajectories,
                train_bs=args.train_batch,
            ),
            args.reps,
        ),
        "paper": (
            paper_model(q, args.paper_size),
            args.paper_steps,
            args.paper_batch,
            dict(refs=1, branches=args.paper_batch, sample_bs=args.paper_batch, train_bs=args.paper_batch),
            max(1, min(args.reps, 3)),
        ),
    }
    if args.only:
        specs = {args.only: specs[args.only]}
    bar = tqdm(total=2 * len(specs) + 1 + (not args.no_memory), desc="perf", unit="part")
    for key, ((name, unet, sched), steps, batch, ep, reps) in specs.items():
        entry = {"name": name, "params_m": n_params(unet), "size": unet.config.sample_size}
        bar.set_postfix_str(f"{key} sampling")
        entry["sampling"] = bench_sampling(unet, sched, steps, batch, reps)
        bar.update()
        bar.set_postfix_str(f"{key} epochs")
        window = (steps * 3 // 8, steps * 3 // 8 + max(1, steps // 10))  # a mid-way window, as the presets' second
        entry["epochs"] = bench_epochs(
            unet, sched, steps, ep["refs"], ep["branches"], ep["sample_bs"], ep["train_bs"], max(1, reps - 1), window
        )
        bar.update()
        res["models"][key] = entry
        save(res, args.out)
    if args.only:
        bar.close()
        save(res, args.out)
        print(json.dumps({k: e["epochs"] for k, e in res["models"].items()}, indent=1))
        return 0
    bar.set_postfix_str("rewards and metrics")
    res["metrics"] = bench_metrics(q, args.reps)
    save(res, args.out)
    bar.update()
    if not args.no_memory:
        bar.set_postfix_str("memory")
        res["memory"] = bench_memory(args)
        bar.update()
    bar.close()
    res["complete"] = True
    save(res, args.out)
    text = markdown(res)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
