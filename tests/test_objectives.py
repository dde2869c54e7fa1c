"""The objectives that aim at q_β against float64 computations from their formulas, and their trainer modes."""

from __future__ import annotations

import math

import pytest
import torch

from hrf.config import config_from_dict
from hrf.errors import ConfigError
from hrf.models import tiny_unet
from hrf.sampling import gaussian_step_kl
from hrf.training.objectives import (
    implied_beta,
    initial_log_z,
    kl_beta_advantages,
    leave_one_out_centred,
    log_ratio_to_go,
    rtb_log_z_grad,
    rtb_residual,
    rtb_surrogate,
)
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler
from tests.test_trainer import _cfg, _run


def test_leave_one_out_centring_per_group():
    values = torch.tensor([1.0, 2.0, 6.0, 5.0, 7.0, 3.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    out = leave_one_out_centred(values, groups)
    expected = [1 - 4.0, 2 - 3.5, 6 - 1.5, 5 - 7.0, 7 - 5.0, 3.0]  # a group of one keeps its value
    assert out.tolist() == pytest.approx(expected, abs=1e-12)
    # batch-wide: n/(n−1) times the plainly centred values
    v = values.double()
    assert leave_one_out_centred(values).tolist() == pytest.approx(((v - v.mean()) * 6 / 5).tolist(), abs=1e-12)


def test_log_ratio_to_go_sums_the_later_masked_steps():
    g = torch.Generator().manual_seed(0)
    ratio = torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 5, generator=g) > 0.3
    out = log_ratio_to_go(ratio, mask)
    for i in range(3):
        for k in range(5):
            expected = sum(float(ratio[i, j]) for j in range(k + 1, 5) if mask[i, j])
            assert float(out[i, k]) == pytest.approx(expected, abs=1e-12)


def test_kl_beta_advantages_from_the_formula():
    reward_adv = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    ratio = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.5, 0.7], [0.4, 0.4, 0.1]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [False, True, True], [True, True, False]])
    out = kl_beta_advantages(reward_adv, ratio, mask)
    to_go = [[0.5, 0.3, 0.0], [0.0, 0.7, 0.0], [0.4, 0.0, 0.0]]
    for i in range(3):
        for k in range(3):
            if not mask[i, k]:
                assert float(out[i, k]) == 0.0
                continue
            others = [to_go[j][k] for j in range(3) if j != i and mask[j, k]]
            baseline = sum(others) / len(others) if others else 0.0
            assert float(out[i, k]) == pytest.approx(float(reward_adv[i]) - (to_go[i][k] - baseline), abs=1e-12)


def test_the_kl_summed_over_dimensions_is_the_gaussian_kl():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    sigma = torch.tensor([0.3, 0.7])
    total = gaussian_step_kl(a, b, sigma).double() * 48  # per-dimension mean × D
    for n in range(2):
        p = torch.distributions.Normal(a[n].double().flatten(), float(sigma[n]))
        q = torch.distributions.Normal(b[n].double().flatten(), float(sigma[n]))
        assert float(total[n]) == pytest.approx(float(torch.distributions.kl_divergence(p, q).sum()), rel=1e-5)


def _gaussian_chain(theta, base, x_next, sigma):
    """Per-step log-densities (N, T), per-dimension means, of Gaussian steps with means theta / base."""

    def lp(mean):
        return (-((x_next - mean) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).mean(-1)

    return lp(theta), lp(base)


def test_rtb_residual_and_its_pair_gradient_equal_the_trajectory_loss():
    """Σ over a trajectory's pairs of ∇ rtb_surrogate = ∇ δ² / D, with δ from sums over dimensions and steps."""
    g = torch.Generator().manual_seed(2)
    N, T, D, sigma, beta = 3, 4, 5, 0.4, 1.7
    theta = torch.randn(N, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    base = torch.randn(N, T, D, generator=g, dtype=torch.float64)
    x_next = torch.randn(N, T, D, generator=g, dtype=torch.float64)
    rewards = torch.randn(N, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [False, True, True, True], [True, True, True, False]])
    log_z = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    lp_theta, lp_base = _gaussian_chain(theta, base, x_next, sigma)
    # the residual from its definition: true log-densities are sums over dimensions
    sum_theta = (-((x_next - theta) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    sum_base = (-((x_next - base) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    delta_ref = log_z + torch.where(mask, sum_theta - sum_base, 0.0).sum(1) - beta * rewards
    delta = rtb_residual(log_z.detach(), D * (lp_theta - lp_base).detach(), mask, rewards, beta)
    torch.testing.assert_close(delta, delta_ref.detach())
    (delta_ref**2).sum().backward()
    want_theta, want_log_z = theta.grad.clone(), log_z.grad.clone()
    theta.grad = None
    rows, steps = mask.nonzero(as_tuple=True)
    lp_theta, _ = _gaussian_chain(theta, base, x_next, sigma)
    (rtb_surrogate(lp_theta[rows, steps], delta[rows]) * len(rows) * D).backward()
    torch.testing.assert_close(theta.grad, want_theta)
    assert float(rtb_log_z_grad(delta)) * N == pytest.approx(float(want_log_z), rel=1e-12)
    # log Z's starting value zeroes the mean residual
    start = initial_log_z(D * (lp_theta - lp_base).detach(), mask, rewards, beta)
    assert float(rtb_residual(start, D * (lp_theta - lp_base).detach(), mask, rewards, beta).mean()) == pytest.approx(
        0.0, abs=1e-12
    )


def test_kl_coef_aims_at_the_implied_beta():
    """kl_coef c with batch-standardised advantages has c times the gradient of β·(R − mean R) against a KL of
    weight 1, β = 1/(c·σ_R): the per-dimension means and the mean over pairs cancel."""
    g = torch.Generator().manual_seed(3)
    N, T, D, sigma, c = 6, 3, 4, 0.5, 0.2
    theta = torch.randn(N, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    base = torch.randn(N, T, D, generator=g, dtype=torch.float64)
    x_next = torch.randn(N, T, D, generator=g, dtype=torch.float64)
    rewards = torch.rand(N, generator=g, dtype=torch.float64)
    std = float(rewards.std(unbiased=False))

    def grad(weight, kl_weight):
        theta.grad = None
        lp, _ = _gaussian_chain(theta, base, x_next, sigma)
        kl = gaussian_step_kl(theta.view(N * T, D, 1, 1), base.view(N * T, D, 1, 1), torch.tensor(sigma))
        loss = (-weight[:, None] * torch.exp(lp - lp.detach())).mean() + kl_weight * kl.mean()
        loss.backward()
        return theta.grad.clone()

    old = grad((rewards - rewards.mean()) / std, c)
    new = grad(implied_beta(c, std) * (rewards - rewards.mean()), 1.0)
    torch.testing.assert_close(old, c * new)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"loss": "dpo"}, "train.loss must be"),
        ({"loss": "rtb"}, "needs train.kl_beta > 0"),
        ({"kl_coef": 0.1, "kl_beta": 2.0}, "cannot be combined"),
        ({"kl_coef": 0.1, "loss": "rtb", "kl_beta": 2.0}, "cannot be combined"),
        ({"kl_beta": 2.0, "advantage_norm": "group_std"}, "group_std"),
        ({"kl_beta": -1.0}, "train.kl_beta must be"),
        ({"loss": "rtb", "kl_beta": 1.0, "rtb_logz_lr": 0.0}, "train.rtb_logz_lr must be"),
    ],
)
def test_bad_objective_settings_are_one_line_config_errors(train, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"schedule": {"kind": "full"}, "train": {"advantage_norm": "batch", **train}})


def test_hrf_windows_with_the_kl_mode_train_the_steps_after_each_start(tmp_path, monkeypatch):
    trainer = _run(_cfg("windows", kl_beta=2.0), tmp_path / "run")
    seen = []
    original = trainer._pair_loss

    def spy(traj, adv, rows, steps):
        assert adv.shape == traj.log_probs.shape  # per-pair advantages
        seen.append((traj.start[rows].clone(), steps.clone()))
        return original(traj, adv, rows, steps)

    monkeypatch.setattr(trainer, "_pair_loss", spy)
    metrics = trainer.run_epoch(0)
    assert all(bool((k >= s).all()) for s, k in seen)
    assert metrics["kl_to_base"] == pytest.approx(0.0, abs=1e-9) and math.isfinite(metrics["loss"])


def test_the_kl_to_go_is_each_steps_closed_form_kl_the_mean_of_its_sampled_log_ratio(tmp_path):
    """KL-regularised PPO pays the later steps' KL in closed form: for each trained pair, the KL between the
    policy's and the base's step at the sampled state, which is the mean of the sampled log-ratio over the
    step's noise (checked by Monte Carlo in float64), and the advantages are built from it."""
    from hrf.sampling import ddim_step_with_logprob, predict_noise, step_sigmas
    from hrf.training.trainer import trained_mask

    trainer = _run(_cfg("full", kl_beta=2.0), tmp_path / "run")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    traj, groups, _, _ = trainer.sample_epoch(0)
    mask = trained_mask(traj.trainable, trainer.cfg.train.skip_last_steps)
    kls = trainer._step_kls(traj, mask)
    assert bool((kls[~mask] == 0).all()) and bool((kls[mask] > 0).all())
    dim = math.prod(traj.states.shape[2:])
    i, k = (int(v) for v in mask.nonzero()[0])
    x, t = traj.states[i : i + 1, k].double(), traj.timesteps[k]
    ddim, eta, draws = trainer.ddim, trainer.cfg.sampling.eta, 4000
    with torch.no_grad():
        eps = [predict_noise(m.double(), x, t, None, 1.0).double() for m in (trainer.model, trainer.base)]
        means = [ddim_step_with_logprob(ddim, e, t, x, eta, return_mean=True, prev_sample=x)[2] for e in eps]
        sigma = float(step_sigmas(ddim, t, eta))
        nxt = means[0] + sigma * torch.randn((draws, *x.shape[1:]), generator=g, dtype=torch.float64)
        lps = [
            ddim_step_with_logprob(ddim, e.expand_as(nxt), t, x.expand_as(nxt), eta, prev_sample=nxt)[1] for e in eps
        ]
    for m in (trainer.model, trainer.base):
        m.float()
    sampled = dim * (lps[0] - lps[1])  # nats
    closed = dim * float(kls[i, k])
    assert float(sampled.mean()) == pytest.approx(closed, abs=4 * float(sampled.std()) / math.sqrt(draws))
    assert float(sampled.std()) > 0.1 * closed  # the noise the closed form removes is not negligible
    rewards = torch.rand(len(traj), generator=g)
    weights, base_lp = trainer._targets(traj, 2.0 * leave_one_out_centred(rewards))
    expected = kl_beta_advantages(2.0 * leave_one_out_centred(rewards), dim * kls, mask).float()
    assert base_lp is None and torch.equal(weights, expected)


@pytest.mark.slow
def test_rtb_resume_is_bit_identical_and_keeps_log_z(tmp_path):
    def cfg():
        return _cfg("windows", loss="rtb", kl_beta=3.0, max_epochs=3, updates_per_epoch=2)

    straight = _run(cfg(), tmp_path / "a")
    history = straight.train()
    assert all(math.isfinite(h["log_z"]) for h in history) and len({h["log_z"] for h in history}) == 3
    first = _run(cfg(), tmp_path / "b")
    first.cfg.train.max_epochs = 1
    first.train()
    resumed = prepare_run(
        None, tmp_path / "b", resume=True, unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False
    )
    assert resumed.log_z.item() == first.log_z.item() and resumed.log_z_set
    resumed.train()
    assert resumed.log_z.item() == straight.log_z.item()
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("task", ["smile", "compressibility"])
def test_the_frontier_presets_load_and_aim_at_an_explicit_beta(task):
    from hrf.config import load_config, preset_path

    kl, rtb, hrfkl = (load_config(preset_path(f"faces32/{task}-{m}")).train for m in ("kl", "rtb", "hrfkl"))
    assert (kl.loss, rtb.loss, hrfkl.loss) == ("ppo", "rtb", "ppo")
    assert kl.kl_beta == rtb.kl_beta == hrfkl.kl_beta > 0 and kl.kl_coef == rtb.kl_coef == hrfkl.kl_coef == 0
    assert load_config(preset_path(f"faces32/{task}-hrfkl")).schedule.kind == "windows"
