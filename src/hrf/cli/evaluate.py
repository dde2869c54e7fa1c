"""``hrf evaluate``: sample models from the same noise and write metrics.json, metrics.md and figures."""

from __future__ import annotations

from pathlib import Path

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int
from hrf.cli.evaluate_prompts import add_prompt_options, chosen_prompts, run_per_prompt
from hrf.errors import HrfError


def reward_options(rewards: list[str], options: list[str]) -> dict[str, dict]:
    """``{name: options}`` of ``--reward`` names with their ``--reward-option NAME.KEY=VALUE`` options."""
    from hrf.config import parse_override

    configs: dict[str, dict] = {name: {} for name in rewards}
    for text in options:
        parts, value = parse_override(text)
        name, key = ".".join(parts[:-1]), parts[-1]
        if name not in configs:
            raise HrfError(f"--reward-option '{text}': '{name}' is not one of the --reward names {list(configs)}")
        configs[name][key] = value
    return configs


def register(sub) -> None:
    from hrf.benchmarks import BENCHMARKS

    p = sub.add_parser(
        "evaluate",
        help="compare models: rewards, Vendi, IS, FD/KID, precision/recall (same initial noise for all)",
        description="Sample every model from the same initial noise (cached per model in OUT, so a rerun "
        "only samples what is missing) and write metrics.json, metrics.md, sample grids and figures. "
        "Each metric names the network that computed it, e.g. 'IS (EfficientNet-Lite0, ImageNet)'. On the "
        "faces benchmark the factor classifier adds its IS over high-level factor combinations (its heads "
        "multiplied), the entropy of the predicted combinations and their coverage of all 576.",
    )
    p.add_argument(
        "--model",
        nargs="+",
        required=True,
        metavar="[LABEL=]SPEC",
        help="models to compare: diffusers directories or hrf:NAME, optionally labelled (first = the "
        "base model); labels GROUP/NAME share a colour per GROUP in Figure 5, e.g. early/seed0=DIR",
    )
    p.add_argument("--num", type=positive_int, default=512, help="samples per model (the paper used 2,142)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the noise shared by all models")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--reward", nargs="+", default=[], metavar="NAME", help="rewards to report: registered names or module:function"
    )
    p.add_argument(
        "--reward-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="an option of a --reward (value read as TOML), e.g. aesthetic.clip_path=DIR; repeatable",
    )
    p.add_argument(
        "--embedder",
        nargs="+",
        default=None,
        metavar="NAME",
        help="feature extractors: pixels, domain, efficientnet_lite0, fid_inception, clip:DIR "
        "(default: pixels, plus efficientnet_lite0 when installed)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="data|PATH",
        help="reference set for FD/KID/precision/recall: 'data' (the faces benchmark generator) "
        "or a .npz with an 'images' array, or a directory of samples.npz or PNG images",
    )
    p.add_argument(
        "--benchmark",
        choices=("auto", *BENCHMARKS, "none"),
        default="auto",
        help="add the benchmark's factor classifier metrics (IS, factor entropy and coverage); auto = the "
        "benchmark a model belongs to (e.g. hrf:faces32 → faces), or the first with --reference data",
    )
    p.add_argument("--steps", type=positive_int, default=40, help="DDIM steps T (eta = 1)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per UNet batch")
    p.add_argument("--n-boot", type=nonneg_int, default=100, help="bootstrap resamples for the Vendi intervals")
    p.add_argument("--is-splits", type=positive_int, default=10, help="splits of the Inception Score")
    add_prompt_options(p)
    add_noise_option(p)
    add_device_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from hrf.api import evaluate

    out = Path(args.out)
    prompts = chosen_prompts(args)
    if prompts is not None:
        return _run_per_prompt(args, prompts, out)
    report = evaluate(
        args.model,
        out,
        num=args.num,
        seed=args.seed,
        steps=args.steps,
        rewards=reward_options(args.reward, args.reward_option),
        embedders=args.embedder,
        reference=args.reference,
        benchmark=args.benchmark,
        n_boot=args.n_boot,
        is_splits=args.is_splits,
        batch_size=args.batch_size,
        noise=args.noise,
        device=args.device,
        progress=True,
        verbose=True,
    )
    print((out / "metrics.md").read_text())
    device = report["config"]["device"]
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'} and {len(report['figures'])} figures (device {device})")
    return 0


def _run_per_prompt(args, prompts, out: Path) -> int:
    """``hrf evaluate --prompts/--prompt-file/--classes``: every model on every prompt from the same noise."""
    from hrf.api import split_label
    from hrf.benchmarks import choose_benchmark
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from hrf.models import resolve_device
    from hrf.training.run_dir import writable_dir

    device = resolve_device(args.device)
    out = writable_dir(out)
    labelled = [split_label(m) for m in args.model]
    benchmark = choose_benchmark(args.benchmark, [spec for _, spec in labelled], args.reference)
    names = args.embedder or ["pixels", *(["efficientnet_lite0"] if efficientnet_installed() else [])]
    print(f"hrf evaluate: device {device}, per prompt")
    return run_per_prompt(args, labelled, prompts, [make_embedder(e, device) for e in names], benchmark, out)
