"""``hrf evaluate`` of conditional models, per prompt: ``--prompts``, ``--prompt-file`` or ``--classes``."""

from __future__ import annotations

import json
from pathlib import Path

from hrf.errors import HrfError


def add_prompt_options(p) -> None:
    """The options that switch ``hrf evaluate`` to per-prompt evaluation."""
    g = p.add_argument_group("conditional models (per-prompt evaluation)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--prompts", nargs="+", metavar="TEXT", help="text prompts of text-to-image pipelines")
    src.add_argument("--prompt-file", metavar="FILE", help="text prompts, one a line (hrf:animals is shipped)")
    src.add_argument("--classes", nargs="+", type=int, metavar="ID", help="class ids of class-conditional models")
    g.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance w (1 = none)")
    g.add_argument("--null-class", type=int, default=-1, help="the unconditional class id (-1: the last one)")


def refuse_conditional(spec: str) -> None:
    """A conditional model evaluated without prompts is one line saying which option it needs."""
    from hrf.evaluation.prompted import conditional_kind

    kind = conditional_kind(spec)
    if kind == "text":
        raise HrfError(f"'{spec}' is a text-to-image pipeline: evaluate it per prompt with --prompts or --prompt-file")
    if kind == "classes":
        raise HrfError(f"'{spec}' is class-conditional: evaluate it per prompt with --classes")


def chosen_prompts(args) -> list[str] | list[int] | None:
    """The prompts asked for, or None (unconditional evaluation)."""
    from hrf.training.prompts import read_prompt_file

    if args.prompts:
        return list(args.prompts)
    if args.prompt_file:
        return read_prompt_file(args.prompt_file)
    if args.classes:
        return list(args.classes)
    return None


def _markdown(report: dict) -> str:
    """The averaged metrics, then each prompt's, as tables of model × metric."""
    lines = []

    def table(title: str, rows: dict[str, dict[str, float]]) -> None:
        keys = sorted(set.union(*(set(v) for v in rows.values())))
        lines.extend([f"## {title}", "", "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"])
        for m, vals in rows.items():
            lines.append(f"| {m} | " + " | ".join(f"{vals[k]:.4g}" if k in vals else "" for k in keys) + " |")
        lines.append("")

    table("average over prompts", report["average"])
    for p, rows in report["prompts"].items():
        table(f"prompt: {p}", rows)
    return "\n".join(lines)


def run_per_prompt(args, labelled, prompts, embedders, benchmark, out: Path) -> int:
    """Sample every model on every prompt from the same noise; write metrics_prompts.json/.md and grids."""
    from hrf.evaluation.prompted import evaluate_per_prompt, faces_prompt_metrics
    from hrf.rewards import make_reward

    if args.reference:
        raise HrfError("--reference is not used per prompt; evaluate without --prompts/--classes for FD/KID")
    from hrf.api import model_slug
    from hrf.cli.evaluate import reward_options

    taken: set[str] = set()
    specs = {}
    for label, spec in labelled:
        specs[label or model_slug(spec, taken)] = spec
    rewards = {
        name: make_reward(name, **opts) for name, opts in reward_options(args.reward, args.reward_option).items()
    }
    report = evaluate_per_prompt(
        specs,
        prompts,
        num=args.num,
        seed=args.seed,
        steps=args.steps,
        out_dir=out,
        guidance_scale=args.guidance_scale,
        rewards=rewards,
        embedders=embedders,
        benchmark=benchmark,
        batch_size=args.batch_size,
        null_class=args.null_class,
        prompt_metrics=faces_prompt_metrics(next(iter(specs.values())), benchmark, args.seed),
    )
    report["config"] = {
        "models": specs,
        "num_per_prompt": args.num,
        "seed": args.seed,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
    }
    (out / "metrics_prompts.json").write_text(json.dumps(report, indent=2))
    text = _markdown(report)
    (out / "metrics_prompts.md").write_text(text)
    print(text)
    print(f"wrote {out / 'metrics_prompts.json'}, {out / 'metrics_prompts.md'} and {len(report['prompts'])} grids")
    return 0
