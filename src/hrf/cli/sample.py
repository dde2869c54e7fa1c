"""``hrf sample``: draw images from a model, write a PNG grid and the images as .npz."""

from __future__ import annotations

from pathlib import Path

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample images from a model (PNG grid + .npz)")
    p.add_argument("--model", required=True, help="diffusers model directory, hub id, or hrf:NAME (built-in)")
    p.add_argument("--num", type=positive_int, default=64, help="number of images")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=positive_int, default=40, help="DDIM steps T (eta = 1)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the initial noise")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per UNet batch")
    add_noise_option(p)
    add_device_option(p, "the model")
    p.set_defaults(func=run)


def run(args) -> int:
    from hrf.api import sample
    from hrf.models import resolve_device

    device = resolve_device(args.device)
    print(f"hrf sample: device {device}, {args.noise} noise")
    sample(
        args.model,
        args.num,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        out=args.out,
        noise=args.noise,
        device=str(device),
        progress=True,
    )
    out = Path(args.out)
    print(f"wrote {args.num} images to {out / 'samples.npz'} and {out / 'grid.png'} (device {device})")
    return 0
