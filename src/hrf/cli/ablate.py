"""``hrf ablate``: the paper's window ablation (§5.3, Figure 5) — regimes × seeds, resumable per cell."""

from __future__ import annotations

from hrf.cli.common import add_device_option, add_run_options, nonneg_int, positive_int


def register(sub) -> None:
    from hrf.experiments.ablate import REGIMES

    p = sub.add_parser(
        "ablate",
        help="window-regime ablation of HRF (paper §5.3, Figure 5)",
        description="Trains an HRF preset under each window regime and seed, evaluates every cell and draws "
        "reward vs Vendi (mean of seeds, standard-error bars). Regimes (k: 0 = noise, 40 = clean): "
        + "; ".join(f"{k} {v}" for k, v in REGIMES.items())
        + ". A finished cell is reused while its training "
        "config, base model and evaluation are unchanged.",
    )
    p.add_argument("--preset", default="faces32/compressibility-hrf", help="HRF preset name (hrf/configs/, no .toml)")
    p.add_argument("--regimes", nargs="+", choices=tuple(REGIMES), default=list(REGIMES))
    p.add_argument("--seeds", nargs="+", type=nonneg_int, default=[0, 1, 2])
    p.add_argument("--per-window", type=positive_int, default=4, help="epochs per window ('later' doubles its last)")
    p.add_argument("--num-eval", type=positive_int, default=256, help="samples per cell for the evaluation")
    p.add_argument("--out", required=True)
    add_run_options(p, "override a config field of every cell, e.g. --set train.references=4")
    add_device_option(p, "training, sampling, rewards and metrics")
    p.set_defaults(func=run)


def run(args) -> int:
    from hrf.cli.common import writable_dir
    from hrf.experiments.ablate import run_ablation
    from hrf.models import resolve_device

    device = str(resolve_device(args.device))
    out = writable_dir(args.out)
    print(f"hrf ablate: device {device}")
    summary = run_ablation(
        out,
        args.preset,
        args.regimes,
        args.seeds,
        args.per_window,
        args.num_eval,
        overrides=args.overrides,
        progress=not args.no_progress,
        device=device,
    )
    print((out / "ablation.md").read_text())
    print(f"hrf ablate: {len(summary['cells'])} cells; figure {out / summary['figure']} (device {device})")
    return 0
