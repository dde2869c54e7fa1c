"""``hrf frontier``: the base model's KL-optimal reward–diversity frontier, by reweighting its own samples."""

from __future__ import annotations

import json
from pathlib import Path

from hrf.cli.common import add_device_option, nonneg_int, positive_int
from hrf.errors import HrfError


def register(sub) -> None:
    from hrf.benchmarks import BENCHMARKS

    p = sub.add_parser(
        "frontier",
        help="the most diversity any fine-tuning can keep at each reward (the tilted base model)",
        description="Sample the base model N times, then reweight its samples by exp(β·reward) for a grid "
        "of β: the distribution closest to the base model (least KL) at each expected reward. Writes, per "
        "reward, frontier_REWARD.json (reward gain, effective sample size, KL, gold reading, Vendi, factor "
        "entropy and coverage at every β, and exactly at the --gain levels), frontier.md and frontier.png. "
        "A level whose effective sample size is below 1,000 lies off the base model's support and is "
        "reported as such. Base samples are cached in OUT/chunks: a killed run resumes. A class-conditional "
        "model takes --classes: the frontier is then computed within each class (its own samples, weights and "
        "reachable gain, under OUT/prompts/classC/) and averaged over classes at each gain "
        "(frontier_prompts_REWARD.json, frontier_prompts.md).",
    )
    p.add_argument("--model", required=True, help="diffusers model directory, hub id, or hrf:NAME (built-in)")
    p.add_argument("--reward", nargs="+", required=True, metavar="NAME", help="registered names or module:function")
    p.add_argument(
        "--reward-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="an option of a --reward (value read as TOML); repeatable",
    )
    p.add_argument("--out", required=True, help="output directory (also the base-sample cache)")
    p.add_argument(
        "--num",
        type=positive_int,
        default=50_000,
        help="base samples, per class with --classes (cached in chunks of 500)",
    )
    p.add_argument("--seed", type=nonneg_int, default=None, help="seed of the base samples' noise")
    p.add_argument("--steps", type=positive_int, default=10, help="DDIM steps T (eta = 1): use the runs' T")
    p.add_argument(
        "--gain",
        action="append",
        default=[],
        metavar="NAME=G1,G2,...",
        help="reward gains over the base at which to read the frontier exactly (default: 25/50/75/100 %% of "
        "the largest reachable gain); repeatable, one per reward",
    )
    p.add_argument(
        "--embedder",
        nargs="*",
        default=[],
        metavar="NAME",
        help="extra feature extractors whose weighted Vendi is measured (pixels are always measured): "
        "efficientnet_lite0, fid_inception, clip:DIR",
    )
    p.add_argument(
        "--benchmark",
        choices=("auto", *BENCHMARKS, "none"),
        default="auto",
        help="the benchmark whose classifiers read features, factor combinations and gold readings "
        "(auto: the model's own, e.g. hrf:faces32 → faces)",
    )
    g = p.add_argument_group("class-conditional models (the frontier within each class)")
    g.add_argument("--classes", nargs="+", type=int, metavar="ID", help="class ids whose frontiers are computed")
    g.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance w (1 = none)")
    g.add_argument("--null-class", type=int, default=-1, help="the unconditional class id (-1: the last one)")
    add_device_option(p, "the model, rewards and embedders")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def parse_gains(texts: list[str], rewards: list[str]) -> dict[str, list[float]]:
    """``--gain NAME=G1,G2`` options → ``{reward: [gains]}``; one line naming the bad option otherwise."""
    gains: dict[str, list[float]] = {}
    for text in texts:
        name, _, values = text.partition("=")
        if name not in rewards or not values:
            raise HrfError(f"--gain '{text}': write NAME=G1,G2,... with NAME one of the --reward names {rewards}")
        try:
            gains[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise HrfError(f"--gain '{text}': the gains must be numbers") from None
    return gains


def run(args) -> int:
    from hrf.api import frontier
    from hrf.cli.evaluate import reward_options
    from hrf.models import resolve_device

    gains = parse_gains(args.gain, args.reward)
    device = str(resolve_device(args.device))
    results = frontier(
        args.model,
        reward_options(args.reward, args.reward_option),
        args.out,
        num=args.num,
        seed=args.seed,
        steps=args.steps,
        gains=gains,
        benchmark=args.benchmark,
        embedders=args.embedder,
        device=device,
        progress=not args.no_progress,
        classes=args.classes,
        guidance_scale=args.guidance_scale,
        null_class=args.null_class,
    )
    out = Path(args.out)
    settings = {k: v for k, v in vars(args).items() if k != "func"} | {"device_used": device}
    (out / "frontier_args.json").write_text(json.dumps(settings, indent=2))
    if args.classes:
        print((out / "frontier_prompts.md").read_text())
        for name, res in results.items():
            top = res["average"]["largest_reachable_gain"]
            print(
                f"{name}: largest gain reachable by reweighting within a class {top['min']:+.4g} to {top['max']:+.4g} "
                f"(median {top['median']:+.4g}; device {device})"
            )
        print(
            f"wrote {out / 'frontier_prompts.md'}, frontier_prompts_REWARD.json and a directory per class "
            f"under {out / 'prompts'}"
        )
        return 0
    print((out / "frontier.md").read_text())
    for name, fr in results.items():
        print(f"{name}: largest gain reachable by reweighting {fr['largest_reachable_gain']:+.4g} (device {device})")
    print(f"wrote {out / 'frontier.md'}, {out / 'frontier.png'} and frontier_REWARD.json per reward")
    return 0
