"""A known answer for methods that aim at q_β: a tiny DDPM on a three-level mixture of 1×2×2 "images".

Each image sits near one of ``LEVELS`` (every pixel the same level plus a little noise); the reward is constant
on each mode. The base model's ε is exact (no pretraining). The tilted mode weights π_k·exp(β·r_k) / Σ π_j·exp(β·r_j)
are exact, with π the base model's own mode weights measured from its samples.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

LEVELS = torch.tensor([-0.6, 0.0, 0.6])
MODE_REWARDS = torch.tensor([0.0, 0.5, 1.0])
DATA_WEIGHTS = torch.tensor([0.45, 0.35, 0.2])
SPREAD = 0.05


class _Output(BaseOutput):
    sample: torch.Tensor


class MixtureEps(ModelMixin, ConfigMixin):
    """A DDPM of the mixture: its exact ε-prediction plus a trainable MLP correction that starts at zero.

    The exact part is the posterior mean of the mixture under the linear-beta schedule of
    :func:`mixture_scheduler`, so the base model needs no pretraining; fine-tuning trains the MLP alone.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 2,
        in_channels: int = 1,
        hidden: int = 64,
        levels: tuple = tuple(LEVELS.tolist()),
        weights: tuple = tuple(DATA_WEIGHTS.tolist()),
        spread: float = SPREAD,
    ):
        super().__init__()
        dim = in_channels * sample_size * sample_size
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim + 16, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, dim),
        )
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)
        self.register_buffer("acp", mixture_scheduler().alphas_cumprod.clone(), persistent=False)

    def exact_eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε = (x − sqrt(ᾱ)·E[x0|x]) / sqrt(1 − ᾱ) for the mixture of constant images (float64 inside)."""
        a = self.acp[t].double().view(-1, 1)
        flat = x.flatten(1).double()
        levels = torch.tensor(self.config.levels, dtype=torch.float64, device=x.device)
        log_w = torch.log(torch.tensor(self.config.weights, dtype=torch.float64, device=x.device))
        var = a * self.config.spread**2 + 1 - a  # (N, 1): each component's per-pixel variance at t
        diff = flat[:, None, :] - a.sqrt()[:, :, None] * levels[None, :, None]  # (N, K, D)
        logits = log_w - 0.5 * (diff**2).sum(-1) / var
        post = torch.softmax(logits, dim=1)  # (N, K)
        x0_k = levels[None, :, None] + (a.sqrt() * self.config.spread**2 / var)[:, :, None] * diff
        x0 = (post[:, :, None] * x0_k).sum(1)
        return ((flat - a.sqrt() * x0) / (1 - a).sqrt()).view_as(x).to(x.dtype)

    def forward(self, sample: torch.Tensor, timestep) -> _Output:
        n = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device).long().expand(n)
        freqs = torch.exp(torch.arange(8, device=sample.device, dtype=torch.float32) * math.log(100.0) / 7)
        phase = t.float()[:, None] / 1000 * freqs
        emb = torch.cat([torch.sin(phase), torch.cos(phase)], 1)
        correction = self.net(torch.cat([sample.flatten(1), emb.to(sample.dtype)], 1)).view_as(sample)
        return _Output(sample=self.exact_eps(sample, t) + correction)


def mixture_scheduler() -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=True
    )


def mixture_data(n: int, generator: torch.Generator) -> torch.Tensor:
    modes = torch.multinomial(DATA_WEIGHTS, n, replacement=True, generator=generator)
    return LEVELS[modes].view(n, 1, 1, 1) + SPREAD * torch.randn(n, 1, 2, 2, generator=generator)


def modes_of(images: torch.Tensor) -> torch.Tensor:
    """Each image's mode: the level nearest its mean pixel."""
    return (images.flatten(1).mean(1)[:, None] - LEVELS).abs().argmin(1)


def mode_reward(images: torch.Tensor):
    """The reward: constant on each mode."""
    return MODE_REWARDS[modes_of(images)], {}


def mode_weights(model, num_steps: int, n: int = 4000, seed: int = 1) -> torch.Tensor:
    from hrf.models import make_ddim_scheduler
    from hrf.sampling import sample_images

    ddim = make_ddim_scheduler(mixture_scheduler(), num_steps)
    images = sample_images(model, ddim, n, torch.Generator().manual_seed(seed), batch_size=n)
    return torch.bincount(modes_of(images), minlength=len(LEVELS)).double() / n


def tilted(weights: torch.Tensor, beta: float) -> torch.Tensor:
    w = weights * torch.exp(beta * MODE_REWARDS.double())
    return w / w.sum()
