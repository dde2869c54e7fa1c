"""One DDIM step with its exact Gaussian log-probability (docs/MATH.md §2), and the HRF start state.

With ``ᾱ = alphas_cumprod``, from scheduler timestep ``t`` to ``t_prev``:

    x̂0 = (x_t − sqrt(1−ᾱ_t)·ε) / sqrt(ᾱ_t)            (clipped to ±clip_sample_range if clip_sample)
    σ_t = η · sqrt((1−ᾱ_prev)/(1−ᾱ_t)) · sqrt(1 − ᾱ_t/ᾱ_prev)
    μ   = sqrt(ᾱ_prev)·x̂0 + sqrt(1 − ᾱ_prev − σ_t²)·ε
    x_prev = μ + σ_t·z
    log p = mean over C·H·W of [−(x_prev − μ)²/(2σ_t²) − log σ_t − ½ log 2π]

When σ_t = 0 (the last step of a schedule with ``set_alpha_to_one``) the step is deterministic and has
no density: the log-prob is returned as ``None`` so that it cannot enter a loss as NaN or inf.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDIMScheduler

from hrf.errors import HrfError
from hrf.sampling.noise import Noise, gaussian

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def prev_timesteps(scheduler: DDIMScheduler, timestep: torch.Tensor) -> torch.Tensor:
    """The timestep DDIM steps to from ``timestep`` (negative means "past the end": ᾱ_prev is final)."""
    return timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps


def _alphas(scheduler: DDIMScheduler, timestep: torch.Tensor, device, dtype):
    acp = scheduler.alphas_cumprod.to(device=device, dtype=torch.float64)
    t = timestep.to(device=device, dtype=torch.long)
    prev = prev_timesteps(scheduler, t)
    alpha_t = acp[t]
    final = torch.as_tensor(float(scheduler.final_alpha_cumprod), dtype=torch.float64, device=device)
    alpha_prev = torch.where(prev >= 0, acp[prev.clamp(min=0)], final)
    return alpha_t, alpha_prev


def step_sigmas(scheduler: DDIMScheduler, timestep: torch.Tensor | int, eta: float = 1.0) -> torch.Tensor:
    """σ_t of the DDIM step at ``timestep`` (float64, same shape as ``timestep``)."""
    timestep = torch.as_tensor(timestep)
    alpha_t, alpha_prev = _alphas(scheduler, timestep, timestep.device, torch.float64)
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    return eta * variance.clamp(min=0).sqrt()


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Scalar or per-sample coefficients, reshaped to broadcast over NCHW in ``like``'s dtype."""
    v = v.to(like.dtype)
    return v.reshape(-1, *([1] * (like.ndim - 1))) if v.ndim == 1 else v


def _x0_and_eps(scheduler: DDIMScheduler, model_output: torch.Tensor, alpha_t: torch.Tensor, sample: torch.Tensor):
    """(x̂0, ε̂) from the model output by the scheduler's prediction type; x̂0 clipped when the scheduler clips."""
    config = scheduler.config
    a, b = _bcast(alpha_t.sqrt(), sample), _bcast((1 - alpha_t).sqrt(), sample)
    if config.prediction_type == "epsilon":
        x0, eps = (sample - b * model_output) / a, model_output
    elif config.prediction_type == "sample":
        x0 = model_output
        eps = (sample - a * x0) / b
    elif config.prediction_type == "v_prediction":
        x0, eps = a * sample - b * model_output, a * model_output + b * sample
    else:
        raise HrfError(f"unsupported prediction_type '{config.prediction_type}'")
    if config.clip_sample:
        x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
    return x0, eps


def predicted_x0(
    scheduler: DDIMScheduler, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor
) -> torch.Tensor:
    """x̂0, the clean image the model predicts from ``sample`` at ``timestep``, clipped as the DDIM step clips it."""
    alpha_t, _ = _alphas(scheduler, torch.as_tensor(timestep, device=sample.device), sample.device, sample.dtype)
    return _x0_and_eps(scheduler, model_output, alpha_t, sample)[0]


def ddim_step_with_logprob(
    scheduler: DDIMScheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float = 1.0,
    prev_sample: torch.Tensor | None = None,
    generator: Noise = None,
    return_mean: bool = False,
):
    """One DDIM step; returns ``(prev_sample, log_prob)`` (and ``mean`` when ``return_mean``).

    ``timestep`` is a scheduler timestep, scalar or one per sample. When ``prev_sample`` is given, no noise
    is drawn and ``log_prob`` is the log-density of that sample (what PPO needs); otherwise
    ``x_prev = μ + σ·z`` with ``z`` from ``generator``. ``log_prob`` has shape (N,) and is the mean over
    C·H·W; it is ``None`` when the step is deterministic (σ = 0 for every sample). Mixing deterministic and
    stochastic samples in one call is refused: the deterministic final step is never trained.
    """
    t = torch.as_tensor(timestep, device=sample.device)
    alpha_t, alpha_prev = _alphas(scheduler, t, sample.device, sample.dtype)

    x0, eps = _x0_and_eps(scheduler, model_output, alpha_t, sample)
    variance = ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)).clamp(min=0)
    sigma = eta * variance.sqrt()
    direction = (1 - alpha_prev - sigma**2).clamp(min=0).sqrt()
    mean = _bcast(alpha_prev.sqrt(), sample) * x0 + _bcast(direction, sample) * eps

    deterministic = sigma == 0
    if bool(deterministic.all()):
        out = mean if prev_sample is None else prev_sample
        return (out, None, mean) if return_mean else (out, None)
    if bool(deterministic.any()):
        raise ValueError("a batch mixes deterministic (σ=0) and stochastic steps; the final step is never trained")

    std = _bcast(sigma, sample)
    if prev_sample is None:
        noise = gaussian(generator, sample.shape, sample.device, sample.dtype)
        prev_sample = mean + std * noise
    # Mean over C·H·W of the per-dimension Gaussian log-density, as DDPO does.
    log_prob = -((prev_sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - _HALF_LOG_2PI
    log_prob = log_prob.mean(dim=tuple(range(1, sample.ndim)))
    return (prev_sample, log_prob, mean) if return_mean else (prev_sample, log_prob)


def gaussian_step_kl(mean_a: torch.Tensor, mean_b: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL between two DDIM steps with equal σ, per sample: mean over C·H·W of (μ_a − μ_b)² / (2σ²).

    Closed form for Gaussians sharing a covariance (DPOK's per-step KL), averaged like the log-prob.
    """
    std = _bcast(torch.as_tensor(sigma, device=mean_a.device), mean_a)
    return (((mean_a - mean_b) ** 2) / (2 * std**2)).mean(dim=tuple(range(1, mean_a.ndim)))


def noise_to_step(
    x0: torch.Tensor, k: int | torch.Tensor, scheduler: DDIMScheduler, generator: Noise = None
) -> torch.Tensor:
    """HRF start state at step index ``k``: ``sqrt(ᾱ_t(k))·x0 + sqrt(1−ᾱ_t(k))·ε`` (``scheduler.add_noise``).

    ``k`` counts denoising steps already taken (0 = noisiest timestep), scalar or one per sample.
    """
    k = torch.as_tensor(k, device=x0.device).long()
    t = scheduler.timesteps.to(x0.device)[k].expand(x0.shape[0])
    noise = gaussian(generator, x0.shape, x0.device, x0.dtype)
    return scheduler.add_noise(x0, noise, t)


def start_states(
    x0_ref: torch.Tensor | None,
    start: torch.Tensor,
    scheduler: DDIMScheduler,
    shape: tuple[int, ...],
    generator: Noise = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Initial states for trajectories that start at step indices ``start`` (one per sample).

    Index 0 is DDPO's prior, pure noise N(0, I); index k > 0 is ``x0_ref`` noised to step k (HRF). The noise
    is drawn where ``generator`` lives (:func:`hrf.sampling.noise.gaussian`) and returned on ``device``;
    ``start`` may live on any device.
    """
    noise = gaussian(generator, shape, device)
    if x0_ref is None:
        if bool((start > 0).any()):
            raise ValueError("start steps > 0 need reference images")
        return noise
    start = start.to(x0_ref.device)
    noised = noise_to_step(x0_ref, start.clamp(min=0), scheduler, generator)
    return torch.where(_bcast(start == 0, noised).bool(), noise.to(noised), noised)
