"""``hrf transition``: how much of the image is still undecided at each start step, and HRF windows from it."""

from __future__ import annotations

import json

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int, writable_dir


def _level(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"level {value} must lie strictly between 0 and 1")
    return value


def register(sub) -> None:
    from hrf.benchmarks import BENCHMARKS

    p = sub.add_parser(
        "transition",
        help="phase transition: how often content changes when regenerating from step k; suggests HRF windows",
        description="Generate reference images, noise them to each start step k (k = denoising steps taken, "
        "0 = pure noise), regenerate several branches from there and measure how much changes: factor flip "
        "rates from the classifier on the faces benchmark, embedding cosine distance otherwise. Writes "
        "transition.json and transition.png and prints HRF windows around the steps where the change "
        "(relative to the noisiest step) falls through the given levels.",
    )
    p.add_argument("--model", required=True, help="diffusers model directory or hrf:NAME")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=positive_int, default=40, help="DDIM steps T (eta = 1)")
    p.add_argument(
        "--grid",
        type=nonneg_int,
        nargs="+",
        default=None,
        metavar="K",
        help="start step indices to measure (default: every 2nd step, 0..T-2)",
    )
    p.add_argument("--refs", type=positive_int, default=16, help="reference images")
    p.add_argument("--branches", type=positive_int, default=4, help="regenerations per reference and step")
    p.add_argument(
        "--levels",
        type=_level,
        nargs="+",
        default=[0.75, 0.5, 0.25],
        help="relative change levels whose crossing steps centre the suggested windows",
    )
    p.add_argument("--half-width", type=nonneg_int, default=2, help="suggested windows are [c - w, c + w]")
    p.add_argument(
        "--benchmark",
        choices=("auto", *BENCHMARKS, "none"),
        default="auto",
        help="factor flip rates from the benchmark's classifier (auto: the benchmark the model belongs "
        "to, e.g. hrf:faces32 → faces)",
    )
    p.add_argument("--embedder", default="pixels", help="embedder for the cosine distance when not on the benchmark")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of references and branches")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per UNet batch")
    add_noise_option(p)
    add_device_option(p, "the model and the classifier or embedder")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from hrf.benchmarks import choose_benchmark
    from hrf.evaluation.embedders import make_embedder
    from hrf.evaluation.plots import figure_transition
    from hrf.evaluation.transition import embedding_measure, factor_measure, suggest_windows, transition_curves
    from hrf.images import save_grid
    from hrf.models import load_pipeline_parts, resolve_device

    device = resolve_device(args.device)
    out = writable_dir(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"} | {"device_used": str(device)}
    (out / "transition_args.json").write_text(json.dumps(config, indent=2))
    print(f"hrf transition: device {device}, {args.noise} noise")
    bench = choose_benchmark(args.benchmark, [args.model])
    benchmark = bench is not None
    measure = factor_measure(bench, device) if benchmark else embedding_measure(make_embedder(args.embedder, device))
    unet, scheduler = load_pipeline_parts(args.model, args.steps, device=device)
    grid = sorted(set(args.grid if args.grid else range(0, args.steps - 1, 2)))
    result = transition_curves(
        unet.eval(),
        scheduler,
        grid,
        refs=args.refs,
        branches=args.branches,
        seed=args.seed,
        measure=measure,
        progress=True,
        noise=args.noise,
        batch_size=args.batch_size,
    )

    curves = {k: np.asarray(v) for k, v in result["curves"].items()}
    key = "high-level (any)" if benchmark else next(iter(curves))
    relative = curves[key] / curves[key][0] if curves[key][0] > 0 else curves[key]
    windows = suggest_windows(grid, relative, args.levels, args.steps, args.half_width)
    report = {
        "config": config | {"benchmark_used": benchmark},
        "convention": "k = denoising steps taken (0 = pure noise, T = clean)",
        "grid": grid,
        "curves": {k: v.tolist() for k, v in curves.items()},
        "window_curve": key,
        "relative_change": relative.tolist(),
        "suggested_windows": windows,
    }
    (out / "transition.json").write_text(json.dumps(report, indent=2))
    shown = {k: v for k, v in curves.items() if not k.startswith("flip ")}
    figure_transition(grid, shown, out / "transition.png", "flip rate" if benchmark else "cosine distance", ())
    save_grid(result["references"][:64], out / "references.png", scale=max(1, 64 // result["references"].shape[-1]))

    for name, values in shown.items():
        print(f"{name}: " + ", ".join(f"k={k}: {v:.3f}" for k, v in zip(grid, values, strict=True)))
    found = [w["window"] for w in windows if w["window"] is not None]
    for w in windows:
        where = "not reached on the grid" if w["crossing"] is None else f"crossed at k ≈ {w['crossing']:.1f}"
        print(f"relative change {w['level']:.2f}: {where}")
    print(f"suggested HRF windows (schedule.windows): {json.dumps(found)}")
    print(f"wrote {out / 'transition.json'} and {out / 'transition.png'} (device {device})")
    return 0
