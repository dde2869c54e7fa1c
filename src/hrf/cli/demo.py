"""``hrf demo``: DDPO_IS vs HRF (and HRF-D) on the embedded faces benchmark, end to end on a CPU."""

from __future__ import annotations

from hrf.cli.common import add_device_option, add_run_options, nonneg_int, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="fine-tune the shipped faces model with DDPO_IS and HRF, and compare them and the frontier",
        description="Runs the embedded default end to end: fine-tuning runs of hrf:faces32 in the collapse "
        "study's regime (presets configs/faces32/TASK-*.toml trained for 30 epochs, half the study's budget, "
        "HRF's windows at the "
        "paper's fractions of the chain), an evaluation of the base and final models from the same noise, "
        "and the reward-diversity curve of every method over its checkpoints. Resumable: rerun the same "
        "command after an interruption.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--task", choices=("compressibility", "incompressibility", "smile"), default="compressibility")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=("ddpo", "hrf", "hrfd"),
        default=["ddpo", "hrf"],
        help="methods to fine-tune (default: ddpo hrf, what the collapse study compares; add hrfd for HRF-D)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI): checks the pipeline, not the method")
    p.add_argument("--num-eval", type=positive_int, default=512, help="samples per model for the evaluation")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the evaluation noise")
    p.add_argument(
        "--match-reward",
        action="store_true",
        help="the paper's protocol: HRF (and HRF-D) stop once they reach DDPO_IS's last training reward",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=2,
        help="runs and sample sets made at once on a CPU, each in its own single-thread process (default 2); "
        "the numbers do not depend on it",
    )
    add_run_options(p, "override a field of every method's config, e.g. --set train.seed=1")
    add_device_option(p, "training, sampling, rewards and metrics")
    p.set_defaults(func=run)


def run(args) -> int:
    from hrf.cli.common import writable_dir
    from hrf.experiments.demo import run_demo
    from hrf.models import resolve_device

    device = resolve_device(args.device)
    out = writable_dir(args.out)
    print(f"hrf demo: device {device}")
    run_demo(
        out,
        args.task,
        args.quick,
        args.num_eval,
        args.seed,
        args.overrides,
        not args.no_progress,
        args.match_reward,
        args.methods,
        device=device,
        jobs=args.jobs,
    )
    print((out / "REPORT.md").read_text())
    print(f"hrf demo: report in {out / 'REPORT.md'} (device {device})")
    return 0
