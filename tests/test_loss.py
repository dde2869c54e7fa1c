"""The PPO-clipped loss and advantages against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from hrf.errors import HrfError
from hrf.training.loss import compute_advantages, ppo_clip_loss


def test_loss_matches_hand_computation_with_clipping_on_both_sides():
    eps = 0.1
    old = torch.zeros(4)
    # ratios 1.5 (above 1+ε), 0.5 (below 1−ε), 1.05 (inside), 1.5 with a negative advantage
    new = torch.log(torch.tensor([1.5, 0.5, 1.05, 1.5]))
    adv = torch.tensor([2.0, 2.0, -1.0, -1.0])
    loss, info = ppo_clip_loss(new, old, adv, eps)
    # per step: max(−A r, −A clip(r)):
    # A=2, r=1.5: max(−3, −2.2) = −2.2 ; A=2, r=0.5: max(−1, −1.8) = −1
    # A=−1, r=1.05: max(1.05, 1.05) = 1.05 ; A=−1, r=1.5: max(1.5, 1.1) = 1.5
    expected = (-2.2 - 1.0 + 1.05 + 1.5) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert math.isclose(info["clipfrac"].item(), 0.75)
    expected_kl = 0.5 * sum(math.log(r) ** 2 for r in (1.5, 0.5, 1.05, 1.5)) / 4
    assert math.isclose(info["approx_kl"].item(), expected_kl, rel_tol=1e-5)


def test_loss_gradient_only_through_unclipped_terms():
    new = torch.log(torch.tensor([1.5, 1.05])).requires_grad_()
    loss, _ = ppo_clip_loss(new, torch.zeros(2), torch.tensor([2.0, 2.0]), 0.1)
    loss.backward()
    # clipped entry has zero gradient; unclipped: d/dlogr (−A r / 2) = −A r / 2 = −1.05
    torch.testing.assert_close(new.grad, torch.tensor([0.0, -1.05]))


def test_a_diverged_log_ratio_stops_the_run():
    """Clamping log r at ±20 would zero the gradient PPO keeps for A < 0, r > 1 + ε: refuse instead."""
    with pytest.raises(HrfError, match="diverged"):
        ppo_clip_loss(torch.tensor([500.0, 0.0]), torch.zeros(2), torch.tensor([-1.0, 1.0]), 1e-4)


def test_a_large_log_ratio_below_the_limit_keeps_its_gradient():
    log_prob = torch.tensor([19.0], dtype=torch.float64, requires_grad=True)
    loss, _ = ppo_clip_loss(
        log_prob, torch.zeros(1, dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64), 1e-4
    )
    loss.backward()
    assert float(log_prob.grad) == pytest.approx(math.exp(19.0), rel=1e-12)  # d(−A·e^{log r})/d log r = e^19


def test_group_advantages_and_clipping():
    rewards = torch.tensor([1.0, 3.0, 10.0, 10.0, 0.0, 100.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    adv = compute_advantages(rewards, groups, clip=5.0, group_scale=True)  # GRPO: each group's own std
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, 0.0, 0.0, -1.0, 1.0]), rtol=1e-5, atol=1e-5)
    # default: centred per group, one scale for all: centred = [-1, 1, 0, 0, -50, 50], rms = sqrt(5002/6)
    adv = compute_advantages(rewards, groups, clip=5.0)
    rms = (5002 / 6) ** 0.5
    torch.testing.assert_close(adv, torch.tensor([-1, 1, 0, 0, -50, 50]) / rms, rtol=1e-5, atol=1e-6)
    batch = compute_advantages(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0]), None, clip=2.0)
    assert batch.max().item() == 2.0  # (100 − 10) / 30 = 3 → clipped to 2
    torch.testing.assert_close(batch[:9], torch.full((9,), -1 / 3))
