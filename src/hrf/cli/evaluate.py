"""``hrf evaluate``: sample models from the same noise and write metrics.json, metrics.md and figures."""

from __future__ import annotations

import json
from pathlib import Path

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int, writable_dir
from hrf.cli.evaluate_prompts import add_prompt_options, chosen_prompts, refuse_conditional, run_per_prompt
from hrf.errors import HrfError


def split_label(text: str) -> tuple[str | None, str]:
    """``LABEL=SPEC`` → ``(LABEL, SPEC)``; a bare spec (or an existing path containing "=") → ``(None, text)``."""
    if "=" not in text or text.startswith("hrf:") or Path(text).exists():
        return None, text
    label, spec = text.split("=", 1)
    if not label or not spec:
        raise HrfError(f"model '{text}': write LABEL=SPEC with both parts, or just SPEC")
    return label, spec


def model_slug(spec: str, taken: set[str]) -> str:
    """A file-name-safe, unique short name for a model spec (``hrf:faces32`` → ``hrf_faces32``)."""
    from hrf.evaluation.samples import unique_slug

    return unique_slug(spec if spec.startswith("hrf:") else Path(spec.rstrip("/")).name, taken)


def reward_options(rewards: list[str], options: list[str]) -> list:
    """Reward configs of ``--reward`` names with their ``--reward-option NAME.KEY=VALUE`` options."""
    from hrf.config import RewardConfig, parse_override

    configs = {name: RewardConfig(name=name) for name in rewards}
    for text in options:
        parts, value = parse_override(text)
        name, key = ".".join(parts[:-1]), parts[-1]
        if name not in configs:
            raise HrfError(f"--reward-option '{text}': '{name}' is not one of the --reward names {list(configs)}")
        configs[name].options[key] = value
    return list(configs.values())


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
    from hrf.benchmarks import choose_benchmark
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from hrf.evaluation.metrics import REFERENCE
    from hrf.evaluation.pipeline import evaluate_models
    from hrf.evaluation.report import metrics_markdown, report_figures
    from hrf.evaluation.samples import load_reference
    from hrf.models import resolve_device, resolve_model_path
    from hrf.rewards import make_reward

    device = resolve_device(args.device)
    out = writable_dir(args.out)
    embedders = args.embedder or ["pixels", *(["efficientnet_lite0"] if efficientnet_installed() else [])]
    # Bad names fail here, before any network is loaded or image sampled.
    labelled = [split_label(m) for m in args.model]
    prompts = chosen_prompts(args)
    for _, spec in labelled:
        if prompts is None:
            resolve_model_path(spec)
            refuse_conditional(spec)
    benchmark = choose_benchmark(args.benchmark, [spec for _, spec in labelled], args.reference)
    config = {k: v for k, v in vars(args).items() if k != "func"} | {
        "embedders_used": embedders,
        "benchmark_used": benchmark is not None,
        "device_used": str(device),
    }
    print(f"hrf evaluate: device {device}, {args.noise} noise")

    embs = [make_embedder(e, device) for e in embedders]
    if prompts is not None:
        return run_per_prompt(args, labelled, prompts, embs, benchmark, out)
    rewards = {
        r.name: make_reward(r.name, default_device=device, **r.options)
        for r in reward_options(args.reward, args.reward_option)
    }
    reference, ref_text = (
        load_reference(args.reference, args.num, args.seed, benchmark.data if benchmark else None)
        if args.reference
        else (None, None)
    )
    (out / "evaluate_args.json").write_text(json.dumps(config, indent=2))  # once the inputs have loaded
    taken: set[str] = set()
    specs: dict[str, str] = {}
    for label, spec in labelled:
        slug = model_slug(label.replace("/", "_") if label else spec, taken)
        name = label if label and label not in specs else slug
        print(f"model {spec} → {name}")
        specs[name] = spec
    report = evaluate_models(
        specs,
        num=args.num,
        seed=args.seed,
        steps=args.steps,
        cache_dir=out,
        rewards=rewards,
        embedders=embs,
        benchmark=benchmark,
        reference=reference,
        n_boot=args.n_boot,
        is_splits=args.is_splits,
        batch_size=args.batch_size,
        progress=True,
        return_arrays=True,
        noise=args.noise,
        device=device,
    )
    images = report.pop("images")
    figures = report_figures(report, ({REFERENCE: reference} if reference is not None else {}) | images, out)
    report.pop("arrays")
    report["config"] |= {
        "models": specs,
        "reference_source": ref_text,
        "num": args.num,
        "seed": args.seed,
        "steps": args.steps,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    table = metrics_markdown(report)
    (out / "metrics.md").write_text(table)
    print(table)
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'} and {len(figures)} figures (device {device})")
    return 0
