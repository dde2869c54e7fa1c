"""``hrf train``: DDPO_IS, HRF or HRF-D from a TOML config (the schedule kind picks the method)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from hrf.cli.common import add_run_options


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune with DDPO_IS / HRF / HRF-D from a config",
        description="Fine-tune a diffusion model with RL. schedule.kind picks the method: full = DDPO_IS, "
        "windows = HRF, dynamic = HRF-D. Step index k: 0 = pure noise, T = clean image (windows like "
        "[[3,7],[18,22],[28,32]] are near noise, mid-way, near the end). Multi-process: "
        "accelerate launch --num_processes N -m hrf train ...",
    )
    p.add_argument("--config", help="a TOML file, or a shipped preset by name, e.g. faces32/compressibility-hrf")
    p.add_argument("--out", help="run directory (config.toml, metrics.jsonl, checkpoints/, final/)")
    add_run_options(p, "override a config field, e.g. --set train.lr=1e-6 (repeatable)")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint, with its saved "
        "config and any --set overrides (e.g. --set train.max_epochs=30)",
    )
    p.add_argument("--force", action="store_true", help="overwrite a run directory that holds another run")
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: accept changes beyond max_epochs, target_reward, batch sizes and output.* "
        "(model.lora_rank and schedule.kind never change)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto (default): accelerate's choice, each process on its GPU when there are GPUs, else the CPU; "
        "cpu keeps the run off the GPU. The reward runs there too unless reward.options set its device",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from accelerate import PartialState

    from hrf.api import train
    from hrf.errors import HrfError

    if args.resume and args.out and args.out != args.resume:
        raise HrfError("pass the run directory once: --resume DIR (without --out)")
    out = args.resume or args.out
    if out is None:
        raise HrfError("pass --out DIR for a new run, or --resume DIR")
    if args.device == "cuda":
        from hrf.models import resolve_device

        resolve_device("cuda")  # one line, before anything is written, when there is no GPU
    # without --config the overrides apply to the saved config (--resume) or the defaults (a new run)
    train(
        args.config,
        out,
        overrides=args.overrides,
        resume=bool(args.resume),
        force=args.force,
        allow_config_change=args.allow_config_change,
        progress=not args.no_progress,
        device=args.device,
        verbose=True,
    )
    if PartialState().num_processes > 1:
        leave_process_group()
    return 0


def leave_process_group() -> NoReturn:
    """End one rank of a multi-process run after its last barrier, without tearing the process group down.

    Both ways of tearing it down hang or crash now and then on gloo. Destroying the group joins gloo's worker
    threads while holding the GIL, and a worker still freeing a finished collective's tensors waits for the
    GIL: a deadlock (seen: rank 1 hung in ~ProcessGroupGloo after its final model was saved). Leaving the
    group to interpreter exit can abort the rank ("terminate called without an active exception"). Every
    file the run writes is complete before the last barrier and :func:`hrf.api.train` has finished the
    trackers, so the rank flushes its output and exits at once; the operating system closes the group's sockets.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
