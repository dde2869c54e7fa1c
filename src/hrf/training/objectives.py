"""Objectives that aim at the tilted distribution q_β ∝ p_base·exp(β·r) (docs/MATH.md §10–12), as pure functions.

Units. The sampler's log-probabilities are per-dimension means ℓ̄ (docs/MATH.md §2); the true log-density of
a step is ℓ = D·ℓ̄ with D = C·H·W. Everything that enters the target (β·r, log-ratios, log Z, residuals,
KL-to-go) is in nats of the true trajectory density. The surrogate losses are divided by D, so that their
gradients are of the same size as the PPO loss's; a constant factor moves no stationary point.

``mask`` (N, T) marks each trajectory's trained steps: taken, stochastic, not skipped (docs/MATH.md §3).
"""

from __future__ import annotations

import torch


def leave_one_out_centred(values: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """``values`` minus the mean of the *other* members of each one's group (the whole batch if ``groups`` is None).

    A baseline that includes the sample's own value scales its advantage by (n−1)/n; leaving it out keeps the
    reward's weight β exact. A group of one gets no baseline (its value is returned as is). Float64.
    """
    values = values.double()
    keys = torch.zeros(len(values), dtype=torch.long) if groups is None else groups.cpu()
    out = values.clone()
    for g in keys.unique():
        m = (keys == g).to(values.device)
        n = int(m.sum())
        if n > 1:
            out[m] = values[m] - (values[m].sum() - values[m]) / (n - 1)
    return out


def log_ratio_to_go(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """G[i, k] = Σ over masked j > k of ``log_ratio[i, j]``: the KL still to pay after step k (nats)."""
    lr = torch.where(mask, log_ratio.double(), 0.0)
    return lr.flip(1).cumsum(1).flip(1) - lr


def kl_beta_advantages(reward_adv: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-(trajectory, step) advantages of KL-regularised RL with an explicit β, in nats: shape (N, T).

    ``reward_adv`` (N,) is β·(r − leave-one-out baseline); ``log_ratio`` (N, T) the sampled log p_old − log p_base
    of each step (nats). A_ik = reward_adv_i − (G_ik − baseline_k), where G is :func:`log_ratio_to_go` and
    baseline_k the leave-one-out mean of G over the trajectories that train step k: the later steps' KL is
    part of step k's return. Zero off the mask.
    """
    to_go = log_ratio_to_go(log_ratio, mask)
    centred = torch.zeros_like(to_go)
    for k in range(to_go.shape[1]):
        rows = mask[:, k]
        if bool(rows.any()):
            centred[rows, k] = leave_one_out_centred(to_go[rows, k])
    return torch.where(mask, reward_adv.double()[:, None] - centred, 0.0)


def kl_weight(kl_coef: float, kl_beta: float) -> float:
    """Weight of the per-step KL in the loss: ``kl_coef`` (advantages normalised), or 1 with an explicit β,
    whose advantages are already in nats (β·r against a KL of weight 1)."""
    return 1.0 if kl_beta > 0 else kl_coef


def implied_beta(kl_coef: float, reward_std: float) -> float:
    """The β that ``train.kl_coef = c`` with batch-normalised advantages aims at: 1 / (c·σ_r), σ_r the epoch's
    reward standard deviation. Approximate: DPOK's per-step KL leaves out the later steps' KL (docs/MATH.md §10)."""
    return 1.0 / (kl_coef * reward_std)


def rtb_residual(
    log_z: float | torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, beta: float
) -> torch.Tensor:
    """δ_i = log Z + Σ_masked (log p_θ − log p_base) − β·r_i per trajectory (nats, float64)."""
    summed = torch.where(mask, log_ratio.double(), 0.0).sum(1)
    return torch.as_tensor(log_z, dtype=torch.float64) + summed - beta * rewards.double()


def rtb_surrogate(log_prob: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Mean over (trajectory, step) pairs of 2·δ·ℓ̄, δ held fixed: summed over a trajectory's steps its gradient
    is ∇_θ δ² / D (ℓ̄ = ℓ / D the sampler's per-dimension log-probability)."""
    return (2.0 * delta.detach().to(log_prob.dtype) * log_prob).mean()


def rtb_log_z_grad(delta: torch.Tensor) -> torch.Tensor:
    """∂/∂log Z of the mean of δ² over the given trajectories: 2·mean δ."""
    return 2.0 * delta.double().mean()


def initial_log_z(log_ratio: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """The log Z that zeroes the mean residual of these trajectories: mean of β·r − Σ log-ratios.

    Used once, at the first update, so that log Z starts as a baseline instead of far from one."""
    return -rtb_residual(0.0, log_ratio, mask, rewards, beta).mean()
