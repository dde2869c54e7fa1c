"""The DDIM step, its log-prob, start states and rollouts, against diffusers and float64 formulas."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler

from hrf.models import make_ddim_scheduler
from hrf.sampling import ddim_step_with_logprob, noise_to_step, rollout, start_states, step_sigmas


def _float64_step(scheduler, eps, t, x, x_prev, eta=1.0):
    """Independent float64 reference of docs/MATH.md §2 (plain Python floats for the coefficients)."""
    eps, x, x_prev = eps.double(), x.double(), x_prev.double()
    acp = [float(a) for a in scheduler.alphas_cumprod.double()]
    t = int(t)
    prev = t - 1000 // scheduler.num_inference_steps
    a_t = acp[t]
    a_prev = acp[prev] if prev >= 0 else 1.0
    x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
    mu = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
    if sigma == 0:
        return mu, sigma, None
    lp = (-((x_prev - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).mean(dim=(1, 2, 3))
    return mu, sigma, lp


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prev_sample_matches_diffusers_on_every_step(train_scheduler, prediction_type):
    """Same z in both: ours draws z from a seeded generator, diffusers gets it as variance_noise."""
    train_scheduler.register_to_config(prediction_type=prediction_type)
    ddim40 = make_ddim_scheduler(train_scheduler, 40)
    ref = DDIMScheduler.from_config(ddim40.config)
    ref.set_timesteps(40)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, 8, generator=g)
    for t in ddim40.timesteps:
        eps = torch.randn(x.shape, generator=g)
        ours, _ = ddim_step_with_logprob(ddim40, eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(int(t)))
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(t)))
        expected = ref.step(eps, t, x, eta=1.0, variance_noise=z).prev_sample
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
        x = expected


def test_log_prob_matches_float64_formulas(ddim40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 8, 8, generator=g)
    for t in ddim40.timesteps[:-1]:
        eps = torch.randn(x.shape, generator=g)
        target = torch.randn(x.shape, generator=g) * 0.3 + x * 0.9
        prev, lp = ddim_step_with_logprob(ddim40, eps, t, x, prev_sample=target)
        assert prev is target
        _, sigma, lp64 = _float64_step(ddim40, eps, t, x, target)
        assert sigma > 0
        torch.testing.assert_close(lp.double(), lp64, rtol=1e-4, atol=1e-3)


def test_log_prob_of_own_sample_and_per_sample_timesteps(ddim40):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 8, 8, generator=g)
    eps = torch.randn(x.shape, generator=g)
    ts = ddim40.timesteps[[0, 10, 30]]
    per_sample, lp = ddim_step_with_logprob(ddim40, eps, ts, x, prev_sample=x * 0.5)
    for i, t in enumerate(ts):
        _, lp_i = ddim_step_with_logprob(ddim40, eps[i : i + 1], t, x[i : i + 1], prev_sample=x[i : i + 1] * 0.5)
        torch.testing.assert_close(lp[i : i + 1], lp_i)
    # a sample drawn by the step has the log-prob the same call reports when given it back
    drawn, lp_drawn = ddim_step_with_logprob(ddim40, eps, ts[0], x, generator=torch.Generator().manual_seed(0))
    _, lp_again = ddim_step_with_logprob(ddim40, eps, ts[0], x, prev_sample=drawn)
    torch.testing.assert_close(lp_drawn, lp_again)


def test_last_step_is_deterministic_and_has_no_log_prob(ddim40):
    t_last = ddim40.timesteps[-1]
    assert float(step_sigmas(ddim40, t_last)) == 0.0
    x = torch.randn(2, 3, 8, 8)
    out, lp = ddim_step_with_logprob(ddim40, torch.randn_like(x), t_last, x)
    assert lp is None and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        ddim_step_with_logprob(ddim40, torch.randn_like(x), ddim40.timesteps[[0, 39]], x)


def test_full_rollout_log_probs_finite_except_last(unet8, ddim40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 8, 8, generator=g)
    traj = rollout(unet8, ddim40, x, 0, generator=g)
    assert traj.states.shape == (3, 41, 3, 8, 8)
    assert traj.trainable[:, :-1].all() and not traj.trainable[:, -1].any()
    assert torch.isfinite(traj.log_probs).all()
    assert (traj.log_probs[:, :-1] != 0).all() and (traj.log_probs[:, -1] == 0).all()


def test_rollout_recomputed_log_probs_match(unet8, ddim40):
    """Re-evaluating each recorded transition gives the recorded log-prob (PPO's ratio is exactly 1)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 8, 8, generator=g)
    start = torch.tensor([0, 5, 20, 38])
    traj = rollout(unet8, ddim40, x, start, generator=g)
    for k in range(40):
        rows = traj.trainable[:, k].nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        t = traj.timesteps[k]
        with torch.no_grad():
            eps = unet8(traj.states[rows, k], t).sample
        _, lp = ddim_step_with_logprob(ddim40, eps, t, traj.states[rows, k], prev_sample=traj.states[rows, k + 1])
        torch.testing.assert_close(lp, traj.log_probs[rows, k], rtol=1e-4, atol=1e-4)
    # samples start where asked: nothing changes before the start index
    assert torch.equal(traj.states[3, 0], traj.states[3, 38])
    assert traj.trainable.sum(1).tolist() == [39, 34, 19, 1]


def test_rollout_deterministic_given_generator(unet8, ddim40):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = rollout(unet8, ddim40, x, 0, generator=torch.Generator().manual_seed(7))
    b = rollout(unet8, ddim40, x, 0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.states, b.states) and torch.equal(a.log_probs, b.log_probs)


def test_noise_to_step_mean_and_variance(ddim40):
    k = 20
    t = int(ddim40.timesteps[k])
    a = float(ddim40.alphas_cumprod[t])
    x0 = torch.full((20000, 1, 2, 2), 0.7)
    x = noise_to_step(x0, k, ddim40, torch.Generator().manual_seed(0))
    n = x.numel()
    # 5-sigma bounds on the sample mean and variance of n Gaussian draws
    assert abs(x.mean().item() - math.sqrt(a) * 0.7) < 5 * math.sqrt((1 - a) / n)
    assert abs(x.var().item() - (1 - a)) < 5 * (1 - a) * math.sqrt(2 / n)


def test_noise_to_step_is_diffusers_add_noise_and_the_float64_formula(ddim40, monkeypatch):
    """One step index per sample: diffusers' ``add_noise`` does the noising, and it matches
    ``sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε`` computed independently in float64."""
    k = torch.tensor([0, 5, 20, 38])
    x0 = torch.linspace(-1, 1, 4 * 3 * 2 * 2).reshape(4, 3, 2, 2)
    calls = []
    real = type(ddim40).add_noise
    monkeypatch.setattr(type(ddim40), "add_noise", lambda self, *a: calls.append(a[2].tolist()) or real(self, *a))
    x = noise_to_step(x0, k, ddim40, torch.Generator().manual_seed(0))
    assert calls == [ddim40.timesteps[k].tolist()]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).double()
    acp = ddim40.alphas_cumprod.double()[ddim40.timesteps[k]].reshape(4, 1, 1, 1)
    expected = acp.sqrt() * x0.double() + (1 - acp).sqrt() * noise
    torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-6)


def test_start_states_index_zero_is_pure_noise(ddim40):
    ref = torch.ones(4, 1, 2, 2)
    start = torch.tensor([0, 0, 10, 30])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s = start_states(ref, start, ddim40, ref.shape, g1)
    noise = torch.randn(ref.shape, generator=g2)
    assert torch.equal(s[:2], noise[:2])
    assert not torch.equal(s[2:], noise[2:])


def test_make_ddim_scheduler_rejects_too_many_steps(train_scheduler):
    from hrf.errors import HrfError

    with pytest.raises(HrfError, match="num_steps"):
        make_ddim_scheduler(train_scheduler, 2000)


def test_gaussian_step_kl_value_for_two_different_steps():
    """The KL of two different Gaussian steps (one σ per sample) against float64: torch.distributions' closed
    form per dimension, and a Monte Carlo estimate of E_a[log p_a − log p_b] from the densities themselves."""
    from torch.distributions import Normal, kl_divergence

    from hrf.sampling import gaussian_step_kl

    g = torch.Generator().manual_seed(0)
    mean_a = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    mean_b = mean_a + 0.3 * torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.2, 0.5, 1.3], dtype=torch.float64)
    kl = gaussian_step_kl(mean_a, mean_b, sigma)
    s = sigma.reshape(3, 1, 1, 1)
    closed = kl_divergence(Normal(mean_a, s), Normal(mean_b, s)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(kl, closed, rtol=1e-12, atol=0)
    assert bool((kl > 0.01).all())  # the steps really differ
    torch.manual_seed(1)
    x = Normal(mean_a, s).sample((20000,))
    log_ratio = (Normal(mean_a, s).log_prob(x) - Normal(mean_b, s).log_prob(x)).mean(dim=(2, 3, 4))
    mc, se = log_ratio.mean(0), log_ratio.std(0) / 20000**0.5
    assert bool(((mc - kl).abs() < 5 * se).all()), (mc, kl, se)
