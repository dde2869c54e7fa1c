"""Batched trajectories from any start step index to the clean image, with per-step log-probs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from hrf.sampling.condition import Condition, predict_noise
from hrf.sampling.ddim import ddim_step_with_logprob, start_states
from hrf.sampling.noise import Noise, SampleNoise, batch_noise


@dataclass
class Trajectory:
    """A batch of denoising trajectories in the step-index convention (k = 0 noise, k = T clean).

    ``states[:, k]`` is the state after k steps (entries before a sample's start repeat its start state);
    ``log_probs[:, k]`` is log p_old of the transition k → k+1 and ``trainable[:, k]`` says whether that
    transition was taken and is stochastic (only those steps may be trained; elsewhere log_probs is 0).
    """

    states: torch.Tensor  # (N, T+1, C, H, W)
    log_probs: torch.Tensor  # (N, T)
    trainable: torch.Tensor  # (N, T) bool
    timesteps: torch.Tensor  # (T,) scheduler timestep of each step index
    start: torch.Tensor  # (N,) start step index
    cond: Condition | None = None  # what each trajectory was conditioned on (None: an unconditional model)

    @property
    def images(self) -> torch.Tensor:
        """The clean images, in [-1, 1]."""
        return self.states[:, -1]

    def __len__(self) -> int:
        return self.states.shape[0]

    @staticmethod
    def cat(parts: list[Trajectory]) -> Trajectory:
        """Concatenate trajectories of the same schedule along the batch."""
        return Trajectory(
            states=torch.cat([p.states for p in parts]),
            log_probs=torch.cat([p.log_probs for p in parts]),
            trainable=torch.cat([p.trainable for p in parts]),
            timesteps=parts[0].timesteps,
            start=torch.cat([p.start for p in parts]),
            cond=None if parts[0].cond is None else Condition.cat([p.cond for p in parts if p.cond is not None]),
        )

    def select(self, rows: torch.Tensor) -> Trajectory:
        """The trajectories ``rows`` (a CPU index tensor)."""
        cond = None if self.cond is None else self.cond[rows]
        return Trajectory(
            self.states[rows], self.log_probs[rows], self.trainable[rows], self.timesteps, self.start[rows], cond
        )


def _device_dtype(unet) -> tuple[torch.device, torch.dtype]:
    p = next(unet.parameters())
    return p.device, p.dtype


@torch.no_grad()
def rollout(
    unet,
    scheduler: DDIMScheduler,
    x_start: torch.Tensor,
    start_index: int | torch.Tensor,
    eta: float = 1.0,
    generator: Noise = None,
    keep_states: bool = True,
    cond: Condition | None = None,
    guidance_scale: float = 1.0,
) -> Trajectory:
    """Denoise ``x_start`` (states at step indices ``start_index``) to the clean image, recording log-probs.

    ``start_index`` is one int or one index per sample in 0..T−1; 0 is DDPO's full trajectory from noise.
    At each step only the samples whose trajectory has begun go through the UNet (and, with a
    :class:`~hrf.sampling.noise.SampleNoise`, only their streams draw). Deterministic given ``generator``.
    ``keep_states=False`` keeps only start and final states (for plain sampling). ``cond`` (one row per
    sample) conditions every step, guided by ``guidance_scale`` (``predict_noise``).
    """
    device, dtype = _device_dtype(unet)
    timesteps = scheduler.timesteps.to(device)
    T = len(timesteps)
    n = x_start.shape[0]
    start = torch.as_tensor(start_index, device=device).long().expand(n).clone()
    if bool(((start < 0) | (start >= T)).any()):
        raise ValueError(f"start indices must lie in 0..{T - 1}")
    x = x_start.to(device=device, dtype=dtype).clone()
    on_device = None if cond is None else cond.to(device)
    states: list[torch.Tensor] = [x.clone()] if keep_states else []
    log_probs = torch.zeros(n, T, device=device, dtype=torch.float32)
    trainable = torch.zeros(n, T, device=device, dtype=torch.bool)
    for k in range(T):
        active = (start <= k).nonzero().squeeze(1)
        if len(active) > 0:
            t = timesteps[k]
            everyone = len(active) == n  # the common case: no gather/scatter copies of the batch
            xa = x if everyone else x[active]
            ca = None if on_device is None else (on_device if everyone else on_device[active.cpu()])
            noise = generator.subset(active) if isinstance(generator, SampleNoise) and not everyone else generator
            eps = predict_noise(unet, xa, t, ca, guidance_scale)
            new, lp = ddim_step_with_logprob(scheduler, eps, t, xa, eta=eta, generator=noise)
            if everyone:
                x = new.to(dtype)
            else:
                x[active] = new.to(dtype)
            if lp is not None:
                log_probs[active, k] = lp.float()
                trainable[active, k] = True
        if keep_states:
            states.append(x.clone())
    if keep_states:
        stacked = torch.stack(states, dim=1)
    else:
        stacked = torch.stack([x_start.to(device=device, dtype=dtype), x], dim=1)
    return Trajectory(stacked, log_probs, trainable, timesteps, start, cond)


@torch.no_grad()
def sample_images(
    unet,
    scheduler: DDIMScheduler,
    num: int,
    generator: Noise = None,
    batch_size: int = 64,
    eta: float = 1.0,
    progress: bool = False,
    cond: Condition | None = None,
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """``num`` images from pure noise (step index 0), in [-1, 1] on the CPU, drawn in batches of ``batch_size``.

    With a :class:`~hrf.sampling.noise.SampleNoise` of ``num`` streams (``make_noise("per_sample", ...)``)
    image ``i`` is the same whatever the batch size; a generator draws batch after batch (``sequential``).
    ``cond`` (``num`` rows) conditions them; for a latent model the result is latents (decode them).
    """
    if isinstance(generator, SampleNoise) and len(generator) != num:
        raise ValueError(f"{len(generator)} sample streams for {num} images")
    from tqdm.auto import tqdm

    device, _ = _device_dtype(unet)
    cfg = unet.config
    shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    out = []
    for i in tqdm(range(0, num, batch_size), desc="sampling", disable=not progress, unit="batch"):
        b = min(batch_size, num - i)
        gen = batch_noise(generator, i, i + b)
        noise = start_states(None, torch.zeros(b, dtype=torch.long), scheduler, (b, *shape), gen, device)
        c = None if cond is None else cond[i : i + b]
        tr = rollout(unet, scheduler, noise, 0, eta, gen, keep_states=False, cond=c, guidance_scale=guidance_scale)
        out.append(tr.images.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def branch_images(
    unet,
    scheduler: DDIMScheduler,
    refs: torch.Tensor,
    k: int,
    branches: int,
    generator: Noise = None,
    batch_size: int = 64,
    eta: float = 1.0,
    cond: Condition | None = None,
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """``branches`` regenerations of each reference from step index ``k``, shape (R, branches, C, H, W), on the CPU.

    Each reference is noised to step k (k = 0: fresh noise, as a DDPO trajectory) and denoised to the end: the
    HRF-D probe and the phase-transition probe both branch this way. Start states are drawn for all branches
    at once, then denoised ``batch_size`` at a time (a :class:`~hrf.sampling.noise.SampleNoise` has one
    stream per branch, reference-major, and makes the images independent of ``batch_size``). ``cond`` has one
    row per reference: its branches share it.
    """
    x0 = refs.repeat_interleave(branches, dim=0)
    bc = None if cond is None else cond.repeat_interleave(branches)
    start = torch.full((len(x0),), k, dtype=torch.long, device=x0.device)
    xs = start_states(x0, start, scheduler, tuple(x0.shape), generator, x0.device)
    images = [
        rollout(
            unet,
            scheduler,
            xs[i : i + batch_size],
            start[i : i + batch_size],
            eta,
            batch_noise(generator, i, min(i + batch_size, len(xs))),
            keep_states=False,
            cond=None if bc is None else bc[i : i + batch_size],
            guidance_scale=guidance_scale,
        )
        .images.float()
        .cpu()
        for i in range(0, len(xs), batch_size)
    ]
    return torch.cat(images).reshape(len(refs), branches, *refs.shape[1:])
