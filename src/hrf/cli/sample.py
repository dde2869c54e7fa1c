"""``hrf sample``: draw images from a model, write a PNG grid and the images as .npz."""

from __future__ import annotations

import json

from hrf.cli.common import add_device_option, add_noise_option, nonneg_int, positive_int, writable_dir


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
    import numpy as np

    from hrf.images import save_grid, to_uint8_hwc
    from hrf.models import load_pipeline_parts, resolve_device
    from hrf.sampling import make_noise, sample_images

    device = resolve_device(args.device)
    out = writable_dir(args.out)
    print(f"hrf sample: device {device}, {args.noise} noise")
    unet, scheduler = load_pipeline_parts(args.model, args.steps, device=device)
    noise = make_noise(args.noise, args.seed, args.num)
    images = sample_images(unet.eval(), scheduler, args.num, noise, args.batch_size, progress=True)
    np.savez_compressed(out / "samples.npz", images=to_uint8_hwc(images))
    save_grid(images[:256], out / "grid.png", scale=max(1, 128 // images.shape[-1]))
    record = {k: v for k, v in vars(args).items() if k != "func"} | {"device_used": str(device)}
    (out / "sample_args.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {args.num} images to {out / 'samples.npz'} and {out / 'grid.png'} (device {device})")
    return 0
