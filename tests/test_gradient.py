"""The DDPO_IS surrogate's gradient is the policy gradient of the expected reward (score-function check).

A toy ε-model ``ε = 0.9·x + θ_c`` (one bias per channel) goes through the real rollout and step function;
the surrogate gradient ``mean_i Σ_k A_i ∇ log p(x_{k+1}|x_k)`` must match a finite-difference derivative
of the mean reward with common random numbers, up to the 1/(C·H·W) of the mean-over-dimensions log-prob.
"""

from __future__ import annotations

import types

import torch

from hrf.models import make_ddim_scheduler
from hrf.sampling import ddim_step_with_logprob, rollout


class ToyEps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x, t):
        return types.SimpleNamespace(sample=0.9 * x + self.theta.view(1, 3, 1, 1))


def _mean_brightness(model, ddim, n, seed):
    g = torch.Generator().manual_seed(seed)
    traj = rollout(model, ddim, torch.randn(n, 3, 2, 2, generator=g), 0, generator=g)
    return traj, traj.images.mean(dim=(1, 2, 3))


def test_surrogate_gradient_matches_finite_differences(train_scheduler):
    ddim = make_ddim_scheduler(train_scheduler, 6)
    model, n, dims = ToyEps(), 20000, 3 * 2 * 2
    traj, reward = _mean_brightness(model, ddim, n, seed=0)
    adv = reward - reward.mean()
    surrogate = 0.0
    for k in range(len(traj.timesteps) - 1):  # the last step is deterministic
        t = traj.timesteps[k]
        eps = model(traj.states[:, k], t).sample
        _, lp = ddim_step_with_logprob(ddim, eps, t, traj.states[:, k], prev_sample=traj.states[:, k + 1])
        surrogate = surrogate + (adv * lp).mean()
    surrogate.backward()
    policy_grad = model.theta.grad * dims
    d = 0.05
    for c in range(3):
        with torch.no_grad():
            model.theta[c] += d
            _, up = _mean_brightness(model, ddim, n, seed=1)
            model.theta[c] -= 2 * d
            _, down = _mean_brightness(model, ddim, n, seed=1)
            model.theta[c] += d
        finite_diff = (up.mean() - down.mean()) / (2 * d)
        # same sign and within 25%: the score-function estimate omits only the deterministic last
        # step's pathwise term, which is small here (ᾱ ≈ 1 at t = 0)
        assert torch.sign(policy_grad[c]) == torch.sign(finite_diff)
        assert abs(policy_grad[c] - finite_diff) < 0.25 * abs(finite_diff)
