"""``hrf inject``: injection sampling (paper appendix A.1) — where in the chain fine-tuning acts."""

from __future__ import annotations

import json

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int, writable_dir

DEFAULT_INJECT = (2, 5, 10, 15, 20, 30)


def register(sub) -> None:
    p = sub.add_parser(
        "inject",
        help="injection sampling: switch from the fine-tuned to the base model at given steps (Figure 6)",
        description="Sample with the fine-tuned model and switch to the base model at each injection step "
        "(same initial and per-step noise); record the cosine distance between the predicted clean images "
        "x̂0 of the switched and the unswitched trajectories at every step. Writes inject.json, "
        "figure6_injection.png and a grid of final images.",
    )
    p.add_argument("--model", required=True, help="the fine-tuned model (directory or hrf:NAME)")
    p.add_argument("--base", required=True, help="the base model it was fine-tuned from")
    p.add_argument(
        "--inject",
        type=nonneg_int,
        nargs="+",
        default=list(DEFAULT_INJECT),
        metavar="K",
        help="step indices k where the base model takes over (k = steps taken, 0 = pure noise). "
        "The paper's [38, 35, 30, 25, 20, 10] count from the clean end (40 = noisiest): "
        "k = 40 − t = [2, 5, 10, 15, 20, 30], the default",
    )
    p.add_argument("--num", type=positive_int, default=15, help="trajectories (the paper: 15)")
    p.add_argument("--steps", type=positive_int, default=40, help="DDIM steps T (eta = 1)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the initial and per-step noise")
    p.add_argument("--out", required=True, help="output directory")
    add_noise_option(p)
    add_device_option(p, "both models")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from hrf.errors import HrfError
    from hrf.evaluation.inject import injection_distances
    from hrf.evaluation.plots import figure_injection
    from hrf.images import save_grid
    from hrf.models import load_pipeline_parts, load_unet, resolve_device

    device = resolve_device(args.device)
    out = writable_dir(args.out)
    config = {k: v for k, v in vars(args).items() if k != "func"} | {"device_used": str(device)}
    (out / "inject_args.json").write_text(json.dumps(config, indent=2))
    print(f"hrf inject: device {device}, {args.noise} noise")
    finetuned, scheduler = load_pipeline_parts(args.model, args.steps, device=device)
    base = load_unet(args.base, device=device)
    shape = lambda u: (u.config.in_channels, u.config.sample_size)  # noqa: E731
    if shape(finetuned) != shape(base):
        raise HrfError(
            f"--model makes {shape(finetuned)} (channels, size) images but --base {shape(base)}; "
            "pass the base model the fine-tuned one started from"
        )
    inject_at = sorted(set(args.inject))
    result = injection_distances(
        finetuned.eval(), base.eval(), scheduler, args.num, args.seed, inject_at, progress=True, noise=args.noise
    )

    T = args.steps
    curves = {k: (d.mean(1).numpy(), d.std(1).numpy()) for k, d in result["distance"].items()}
    report = {
        "config": config,
        "convention": "k = denoising steps taken (0 = pure noise); paper step t = T - k",
        "inject": [
            {
                "k": k,
                "paper_step": T - k,
                "mean_distance": curves[k][0].tolist(),
                "std_distance": curves[k][1].tolist(),
                "final_image_distance": float(result["final_distance"][k].mean()),
            }
            for k in inject_at
        ],
    }
    (out / "inject.json").write_text(json.dumps(report, indent=2))
    figure_injection(
        curves, out / "figure6_injection.png", title=f"Injection sampling: {args.model} → base, {args.num} samples"
    )
    ncols = min(args.num, 8)
    rows = [result["original"].images[:ncols]] + [result["switched"][k][:ncols] for k in inject_at]
    save_grid(torch.cat(rows), out / "grid_injection.png", ncols=ncols, scale=max(1, 64 // rows[0].shape[-1]))
    for item in report["inject"]:
        print(
            f"switch at k={item['k']:>3} (paper {item['paper_step']:>3}): "
            f"final-image cosine distance {item['final_image_distance']:.4f}"
        )
    print(
        f"wrote {out / 'inject.json'} and {out / 'figure6_injection.png'} "
        f"(grid rows: fine-tuned, then one row per switch step; device {device})"
    )
    return 0
