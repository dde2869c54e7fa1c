"""``hrf evaluate``: sample models from the same noise and write metrics.json, metrics.md and figures."""

from __future__ import annotations

import json

from hrf.cli.common import nonneg_int, positive_int, writable_dir


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare models: rewards, Vendi, IS, FD/KID, precision/recall (same initial noise for all)",
        description="Sample every model from the same initial noise (cached per model in OUT, so a rerun "
        "only samples what is missing) and write metrics.json, metrics.md, sample grids and figures. "
        "Each metric names the network that computed it, e.g. 'IS (EfficientNet-Lite0, ImageNet)'. On the "
        "faces benchmark the factor classifier adds its IS over high-level factor combinations (its heads "
        "multiplied), the entropy of the predicted combinations and their coverage of all 576.",
    )
    p.add_argument("--model", nargs="+", required=True, metavar="[LABEL=]SPEC",
                   help="models to compare: diffusers directories or hrf:NAME, optionally labelled (first = the "
                   "base model); labels GROUP/NAME share a colour per GROUP in Figure 5, e.g. early/seed0=DIR")
    p.add_argument("--num", type=positive_int, default=512, help="samples per model (the paper used 2,142)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the noise shared by all models")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reward", nargs="+", default=[], metavar="NAME", help="registered reward names to report")
    p.add_argument("--embedder", nargs="+", default=None, metavar="NAME",
                   help="feature extractors: pixels, domain, efficientnet_lite0, fid_inception, clip:DIR "
                   "(default: pixels, plus efficientnet_lite0 when installed)")
    p.add_argument("--reference", default=None, metavar="data|PATH",
                   help="reference set for FD/KID/precision/recall: 'data' (the faces benchmark generator) "
                   "or a .npz with an 'images' array, or a directory of samples.npz or PNG images")
    p.add_argument("--benchmark", choices=("auto", "faces", "none"), default="auto",
                   help="faces: add the factor classifier's IS, factor entropy and coverage; auto = faces when "
                   "--reference is data or a model is hrf:faces32")
    p.add_argument("--steps", type=positive_int, default=40, help="DDIM steps T (eta = 1)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per UNet batch")
    p.add_argument("--n-boot", type=nonneg_int, default=100, help="bootstrap resamples for the Vendi intervals")
    p.add_argument("--is-splits", type=positive_int, default=10, help="splits of the Inception Score")
    p.set_defaults(func=run)


def run(args) -> int:
    from hrf.errors import HrfError
    from hrf.models import resolve_model_path
    from hrf.rewards import make_reward
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from hrf.evaluation.evaluate import (evaluate_images, load_reference, metrics_markdown, model_slug,
                                         report_figures, sample_or_load, split_label)

    out = writable_dir(args.out)
    embedders = args.embedder or ["pixels", *(["efficientnet_lite0"] if efficientnet_installed() else [])]
    benchmark = args.benchmark == "faces" or (
        args.benchmark == "auto" and (args.reference == "data" or any(m.endswith("hrf:faces32") for m in args.model)))
    config = {k: v for k, v in vars(args).items() if k != "func"} | {"embedders_used": embedders,
                                                                     "benchmark_used": benchmark}
    (out / "evaluate_args.json").write_text(json.dumps(config, indent=2))

    # Bad names fail here, before any network is loaded or image sampled.
    labelled = [split_label(m) for m in args.model]
    for _, spec in labelled:
        resolve_model_path(spec)
    embs = [make_embedder(e) for e in embedders] + ([make_embedder("domain")] if benchmark and "domain" not in embedders else [])
    rewards = {r: make_reward(r) for r in args.reward}
    reference, ref_text = load_reference(args.reference, args.num, args.seed) if args.reference else (None, None)
    taken: set[str] = set()
    images, specs = {}, {}
    for label, spec in labelled:
        slug = model_slug(label.replace("/", "_") if label else spec, taken)
        name = label if label and label not in images else slug
        print(f"model {spec} → {name}")
        specs[name] = spec
        images[name] = sample_or_load(spec, out / f"samples_{slug}.npz", args.num, args.seed, args.steps,
                                      args.batch_size, progress=True)
    shapes = {tuple(x.shape[1:]) for x in images.values()}
    if len(shapes) > 1:
        raise HrfError(f"the models make images of different shapes {sorted(shapes)}; compare models of one size")
    if reference is not None and tuple(reference.shape[1:]) not in shapes:
        raise HrfError(f"reference images have shape {tuple(reference.shape[1:])}, the models' {shapes.pop()}")

    report = evaluate_images(images, rewards=rewards, embedders=embs, reference=reference,
                             benchmark=benchmark, n_boot=args.n_boot, is_splits=args.is_splits, seed=args.seed,
                             progress=True, return_arrays=True)
    sets = ({"reference": reference} if reference is not None else {}) | images
    figures = report_figures(report, sets, out)
    report.pop("arrays")
    report["config"] |= {"models": specs, "reference_source": ref_text,
                         "num": args.num, "seed": args.seed, "steps": args.steps}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    table = metrics_markdown(report)
    (out / "metrics.md").write_text(table)
    print(table)
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'} and {len(figures)} figures")
    return 0
