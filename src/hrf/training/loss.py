"""The PPO-clipped DDPO_IS loss and advantage normalisation (docs/MATH.md §4–5), as pure functions."""

from __future__ import annotations

import torch

from hrf.errors import HrfError

# A per-dimension mean log-ratio beyond this means the policy has left the sampled trajectories: the ratio
# (e^20) is meaningless and clamping it would zero exactly the gradient PPO keeps when A < 0 and r > 1 + ε.
MAX_LOG_RATIO = 20.0


def compute_advantages(
    rewards: torch.Tensor, groups: torch.Tensor | None, clip: float, group_scale: bool = False, eps: float = 1e-8
) -> torch.Tensor:
    """Normalised, clipped advantages.

    ``groups=None``: standardised over the whole batch (DDPO). With ``groups`` (each sample's reference),
    each reward is centred on its group's mean (the baseline of the reference it branched from) and divided
    by the standard deviation of all centred rewards; ``group_scale=True`` divides by each group's own
    standard deviation instead (GRPO). The latter magnifies groups whose rewards barely differ — JPEG sizes
    of late-start branches differ by a few bytes — into full-size advantages of pure noise. The result is
    clipped to ±``clip``.
    """
    rewards = rewards.double()
    if groups is None:
        adv = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)
    else:
        centred = torch.zeros_like(rewards)
        scale = torch.ones_like(rewards)
        for g in groups.unique():
            m = groups == g
            centred[m] = rewards[m] - rewards[m].mean()
            scale[m] = rewards[m].std(unbiased=False)
        if not group_scale:
            scale = torch.full_like(rewards, float(centred.pow(2).mean().sqrt()))
        adv = centred / (scale + eps)
    return adv.clamp(-clip, clip).float()


def ppo_clip_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clipped importance-sampling loss per trained step, averaged over the given steps.

    ``loss = mean(max(−A·r, −A·clip(r, 1−ε, 1+ε)))`` with ``r = exp(log p_θ − log p_old)``. Returns the
    loss and detached statistics: ``approx_kl`` = mean ½(log r)², ``clipfrac`` = fraction with |r−1| > ε.
    A |log r| above ``MAX_LOG_RATIO`` (training has diverged) raises HrfError rather than training on.
    """
    log_ratio = log_prob - old_log_prob
    largest = float(log_ratio.detach().abs().max()) if log_ratio.numel() else 0.0
    if largest > MAX_LOG_RATIO:
        raise HrfError(
            f"the policy has diverged from its samples: |log p_new − log p_old| = {largest:.3g} > "
            f"{MAX_LOG_RATIO:g} at a trained step; lower train.lr (or raise train.skip_last_steps)"
        )
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        info = {
            "approx_kl": 0.5 * (log_ratio**2).mean(),
            "clipfrac": ((ratio - 1.0).abs() > clip_range).float().mean(),
        }
    return loss, info
