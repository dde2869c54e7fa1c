"""``hrf tilt``: fine-tune a base model toward its reward tilt q_β ∝ p·exp(β·r) by weighted denoising on its
own samples (reward values only, no reward gradient)."""

from __future__ import annotations

import argparse
import math
import shlex
import sys

from hrf.cli.common import add_device_option, nonneg_int, positive_int
from hrf.cli.pretrain import _positive_float

FRONTIER_SEED = 2_026_120_301  # hrf.evaluation.frontier.FRONTIER_SEED, without importing torch


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number ≥ 0")
    return value


def _ema(text: str) -> float:
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{value} must be below 1")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "tilt",
        help="fine-tune a model toward its KL-optimal reward tilt by weighted denoising on its own samples",
        description="Draw (or read from the cache in --work) N base samples and their reward, weight them by "
        "exp(β·reward) (β given, or the β whose tilt gains --gain over the base mean, as on the frontier), "
        "and fine-tune the model with its own DDPM loss on batches drawn with those weights. The target is "
        "the tilted distribution q_β ∝ p·exp(β·r): the closest to the base model at its expected reward. "
        "A tilt whose effective sample size is below 1,000 is off the base model's support and refused. "
        "Writes OUT/model (a diffusers directory), OUT/tilt_info.json, OUT/losses.json, OUT/checkpoint.pt.",
    )
    p.add_argument("--model", required=True, help="base model: diffusers directory or hrf:NAME (built-in)")
    p.add_argument("--reward", required=True, metavar="NAME", help="a registered reward or module:function")
    level = p.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_nonneg_float, help="the tilt's inverse temperature β")
    level.add_argument("--gain", type=_nonneg_float, help="the target reward gain over the base mean (sets β)")
    p.add_argument("--num", type=positive_int, default=20_000, help="base samples to reweight (default 20,000)")
    p.add_argument("--steps-sampling", type=positive_int, default=10, help="DDIM steps of the base samples")
    p.add_argument(
        "--sample-seed",
        type=nonneg_int,
        default=FRONTIER_SEED,
        help="noise seed of the base samples (default: hrf frontier's, so its cache is reused)",
    )
    p.add_argument("--work", default=None, help="base-sample cache, e.g. an hrf frontier --out (default: OUT/base)")
    p.add_argument("--train-steps", type=positive_int, required=True, help="optimizer steps of the fine-tuning")
    p.add_argument("--lr", type=_positive_float, required=True, help="AdamW learning rate (after warm-up)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per step")
    p.add_argument("--warmup-steps", type=nonneg_int, default=100, help="linear learning-rate warm-up")
    p.add_argument(
        "--decay-steps",
        type=nonneg_int,
        default=0,
        help="anneal the lr to 0 with a cosine over the last N steps (settles the weights at the end)",
    )
    p.add_argument(
        "--ema-decay", type=_ema, default=0.999, help="decay of the saved weight average (0: the raw weights)"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the weighted draws and the training noise")
    p.add_argument(
        "--twin",
        action="store_true",
        help="also train a uniform twin (β = 0, same seed) and save base + scale·(tilted − twin): the tilt's change "
        "without the drift that fine-tuning on the model's own samples causes (OUT/tilted, OUT/twin)",
    )
    p.add_argument(
        "--scale", type=_positive_float, default=1.0, help="how far along the tilt's change of the weights to go"
    )
    p.add_argument("--out", required=True, help="run directory (model/, tilt_info.json, losses.json)")
    p.add_argument("--checkpoint-minutes", type=_positive_float, default=5.0, help="minutes between checkpoints")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_option(p, "the model, its sampling and its training")
    p.set_defaults(func=run)


def run(args) -> int:
    import hrf

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = "hrf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    info = hrf.tilt(
        args.model,
        args.reward,
        args.out,
        beta=args.beta,
        gain=args.gain,
        num=args.num,
        steps_sampling=args.steps_sampling,
        sample_seed=args.sample_seed,
        work=args.work,
        train_steps=args.train_steps,
        lr=args.lr,
        batch_size=args.batch_size,
        warmup_steps=args.warmup_steps,
        decay_steps=args.decay_steps,
        ema_decay=args.ema_decay,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
        twin=args.twin,
        scale=args.scale,
        resume=args.resume,
        device=args.device,
        progress=not args.no_progress,
        command=command,
    )
    print(
        f"β {info['beta']:.4g} (tilt gain {info['gain']:+.4g}, ESS {info['ess']:.0f} of {info['num']}, "
        f"KL {info['kl']:.3g} nats): step {info['config']['steps']}, loss {info['final_loss']:.4f}; "
        f"model in {args.out}/model"
    )
    return 0
