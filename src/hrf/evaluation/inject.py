"""Injection sampling (paper appendix A.1): which denoising steps carry what fine-tuning changed.

Sample with the fine-tuned model and hand the trajectory to the base model from step index ``k`` on
(k counts denoising steps taken, 0 = pure noise). Every trajectory uses the same initial noise and the
same per-step noise, so the only difference from the fine-tuned model's own trajectory is the switch.
At each step the predicted clean image x̂0 of both trajectories is compared by cosine distance.

The paper's injection steps [38, 35, 30, 25, 20, 10] count the other way (40 = noisiest): with T = 40
they are k = 40 − t = [2, 5, 10, 15, 20, 30].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

from hrf.errors import HrfError
from hrf.images import cosine_distance
from hrf.sampling import ddim_step_with_logprob, predicted_x0
from hrf.sampling.noise import DEFAULT_NOISE, NoiseScheme, gaussian, make_noise

PAPER_STEPS = (38, 35, 30, 25, 20, 10)


def paper_to_index(paper_steps, num_steps: int) -> list[int]:
    """The paper's injection steps (T = noisiest) as hrf step indices k = T − t (0 = noisiest)."""
    return [num_steps - t for t in paper_steps]


@dataclass
class SwitchedTrajectory:
    """x̂0 at every step (T, N, C, H, W) and the final images (N, C, H, W)."""

    x0: torch.Tensor
    images: torch.Tensor


@torch.no_grad()
def switched_trajectory(
    first,
    second,
    scheduler: DDIMScheduler,
    num: int,
    seed: int,
    switch_at: int,
    eta: float = 1.0,
    noise: NoiseScheme = DEFAULT_NOISE,
) -> SwitchedTrajectory:
    """Denoise ``num`` samples from noise with ``first`` for step indices < ``switch_at``, then ``second``,
    on the device of ``first``; results on the CPU.

    The noise of ``seed`` (scheme ``noise``, drawn on the CPU) gives the initial noise and then one noise
    tensor per stochastic step, so calls with the same seed share all noise whatever ``switch_at`` is; with
    ``per_sample`` noise sample i is also the same whatever ``num`` is.
    """
    cfg = first.config
    device = next(first.parameters()).device
    gen = make_noise(noise, seed, num)
    x = gaussian(gen, (num, cfg.in_channels, cfg.sample_size, cfg.sample_size), device)
    x0s = []
    for k, t in enumerate(scheduler.timesteps):
        model = first if k < switch_at else second
        out = model(x, t).sample
        x0s.append(predicted_x0(scheduler, out, t, x).cpu())
        x, _ = ddim_step_with_logprob(scheduler, out, t, x, eta=eta, generator=gen)
    return SwitchedTrajectory(torch.stack(x0s), x.cpu())


def injection_distances(
    finetuned,
    base,
    scheduler: DDIMScheduler,
    num: int,
    seed: int,
    inject_at,
    eta: float = 1.0,
    progress: bool = False,
    noise: NoiseScheme = DEFAULT_NOISE,
) -> dict:
    """Per-step cosine distances of x̂0 between the fine-tuned trajectory and each switched one.

    Returns ``{"original": SwitchedTrajectory, "switched": {k: final images}, "distance": {k: (T, N)},
    "final_distance": {k: (N,)}}`` where distances are ``1 − cos`` in model space ([-1, 1]). All samples
    go through the UNet as one batch: meant for tens of samples, as the paper's 15.
    """
    from tqdm.auto import tqdm

    T = len(scheduler.timesteps)
    bad = [k for k in inject_at if not 0 <= k < T]
    if bad:
        raise HrfError(f"injection step indices {bad} are outside 0..{T - 1} (k = steps taken, 0 = noise)")
    original = switched_trajectory(finetuned, base, scheduler, num, seed, T, eta, noise)
    out = {"original": original, "switched": {}, "distance": {}, "final_distance": {}}
    for k in tqdm(list(inject_at), desc="injection", unit="switch", disable=not progress):
        traj = switched_trajectory(finetuned, base, scheduler, num, seed, k, eta, noise)
        out["switched"][k] = traj.images
        out["distance"][k] = cosine_distance(original.x0, traj.x0)
        out["final_distance"][k] = cosine_distance(original.images, traj.images)
    return out
