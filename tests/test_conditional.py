"""Conditional models: guided steps and their log-probs, prompts, per-prompt advantages, the trainer's condition."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from hrf.config import config_from_dict
from hrf.errors import ConfigError, HrfError
from hrf.models import make_ddim_scheduler
from hrf.sampling import Condition, ddim_step_with_logprob, predict_noise, rollout
from hrf.training.prompts import PerPromptStatTracker, draw_prompts, make_conditioner, read_prompt_file
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler, class_unet


def _ddim(steps: int = 6):
    return make_ddim_scheduler(celebahq_like_scheduler(), steps)


def test_guided_step_logprob_matches_float64():
    unet, ddim = class_unet(), _ddim()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 8, 8, generator=g)
    labels = torch.tensor([0, 1, 2])
    cond = Condition(labels, torch.arange(3), null=torch.tensor([3]))
    k, w = 2, 4.0
    t = ddim.timesteps[k]
    with torch.no_grad():
        eps = predict_noise(unet, x, t, cond, w)
        nxt, lp = ddim_step_with_logprob(ddim, eps, t, x, 1.0, generator=g)
        # independent float64: both branches separately, the guided ε, the DDIM mean, the Gaussian density
        e_u = unet(x, t, class_labels=torch.full((3,), 3)).sample.double()
        e_c = unet(x, t, class_labels=labels).sample.double()
    e = e_u + w * (e_c - e_u)
    acp = ddim.alphas_cumprod.double()
    a_t, a_p = acp[int(t)], acp[int(t) - 1000 // 6]
    x0 = ((x.double() - (1 - a_t).sqrt() * e) / a_t.sqrt()).clamp(-1, 1)
    sigma = ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)).sqrt()
    mu = a_p.sqrt() * x0 + (1 - a_p - sigma**2).sqrt() * e
    ref = (-((nxt.double() - mu) ** 2) / (2 * sigma**2) - sigma.log() - 0.5 * math.log(2 * math.pi)).mean((1, 2, 3))
    torch.testing.assert_close(lp.double(), ref, rtol=1e-5, atol=1e-5)
    # guidance changes the step: w = 1 gives the conditional branch alone
    assert not torch.allclose(eps, predict_noise(unet, x, t, cond, 1.0))
    torch.testing.assert_close(predict_noise(unet, x, t, cond, 1.0), e_c.float(), rtol=1e-5, atol=1e-5)


def test_rollout_logprobs_recomputed_under_the_condition_give_ratio_one():
    """What the loss recomputes (per-row timesteps, the trajectory's own condition) is what the rollout recorded."""
    unet, ddim = class_unet(), _ddim()
    g = torch.Generator().manual_seed(1)
    cond = Condition(torch.tensor([0, 0, 2, 1]), torch.tensor([0, 0, 2, 1]), null=torch.tensor([3]))
    tr = rollout(
        unet,
        ddim,
        torch.randn(4, 3, 8, 8, generator=g),
        torch.tensor([0, 2, 1, 3]),
        1.0,
        g,
        cond=cond,
        guidance_scale=3.0,
    )
    rows, steps = tr.trainable.nonzero(as_tuple=True)
    t = tr.timesteps[steps]
    with torch.no_grad():
        eps = predict_noise(unet, tr.states[rows, steps], t, tr.cond[rows], 3.0)
        _, lp = ddim_step_with_logprob(
            ddim, eps, t, tr.states[rows, steps], 1.0, prev_sample=tr.states[rows, steps + 1]
        )
        eps_wrong = predict_noise(unet, tr.states[rows, steps], t, tr.cond[rows], 1.0)
        _, lp_wrong = ddim_step_with_logprob(
            ddim, eps_wrong, t, tr.states[rows, steps], 1.0, prev_sample=tr.states[rows, steps + 1]
        )
    torch.testing.assert_close(lp, tr.log_probs[rows, steps], rtol=1e-4, atol=1e-4)
    assert (lp_wrong - tr.log_probs[rows, steps]).abs().max() > 1e-3  # the guidance is part of the policy


def test_stat_tracker_matches_a_hand_computation():
    tracker = PerPromptStatTracker(buffer_size=3, min_count=3)
    p1, r1 = torch.tensor([0, 0, 1]), torch.tensor([1.0, 3.0, 5.0])
    a1 = tracker.update(p1, r1)
    # prompt 0 has 2 < 3 rewards and prompt 1 has 1: both use the batch's statistics
    batch = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(a1.numpy(), (batch - batch.mean()) / (batch.std() + 1e-6))
    a2 = tracker.update(torch.tensor([0, 0, 1]), torch.tensor([7.0, 9.0, 2.0]))
    buf0 = np.array([3.0, 7.0, 9.0])  # the buffer keeps the last 3: 1.0 fell out
    np.testing.assert_allclose(a2[:2].numpy(), (np.array([7.0, 9.0]) - buf0.mean()) / (buf0.std() + 1e-6))
    batch2 = np.array([7.0, 9.0, 2.0])  # prompt 1 has 2 rewards: batch statistics still
    np.testing.assert_allclose(a2[2].item(), (2.0 - batch2.mean()) / (batch2.std() + 1e-6))
    restored = PerPromptStatTracker(3, 3)
    restored.load_state_dict(tracker.state_dict())
    torch.testing.assert_close(
        restored.update(torch.tensor([1]), torch.tensor([4.0])), tracker.update(torch.tensor([1]), torch.tensor([4.0]))
    )


def test_prompts_are_drawn_from_a_seeded_generator(tmp_path):
    a = draw_prompts(16, 5, torch.Generator().manual_seed(3))
    b = draw_prompts(16, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() < 5 and len(a.unique()) > 1
    f = tmp_path / "p.txt"
    f.write_text("# animals\na cat\n\n a dog \n")
    assert read_prompt_file(str(f)) == ["a cat", "a dog"]
    assert len(read_prompt_file("hrf:animals")) >= 10


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompts": {"texts": ["a"], "classes": [1]}}, "one prompt source"),
        ({"sampling": {"guidance_scale": 3.0}}, "needs prompts"),
        ({"sampling": {"guidance_scale": 0.5}, "prompts": {"classes": [0]}}, "≥ 1"),
        ({"train": {"advantage_norm": "prompt"}}, "needs prompts"),
        ({"train": {"advantage_norm": "prompt"}, "prompts": {"classes": [0], "min_count": 1}}, "min_count"),
        ({"train": {"advantage_norm": "prompt"}, "prompts": {"classes": [0], "buffer_size": 4}}, "never be used"),
        ({"prompts": {"classes": [-1]}}, "non-negative"),
    ],
)
def test_config_refuses_prompt_settings_that_cannot_work(data, message):
    data = {"train": {"advantage_norm": "batch"}, **data}
    data["train"].setdefault("advantage_norm", "batch")
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_conditioner_checks_the_model():
    unet = class_unet(4)
    c = make_conditioner([0, 2], unet)
    cond = c(torch.tensor([1, 0]))
    assert cond.values.tolist() == [2, 0] and cond.null.tolist() == [3]
    with pytest.raises(HrfError, match="class-conditional"):
        make_conditioner(None, unet)
    with pytest.raises(HrfError, match="outside"):
        make_conditioner([4], unet)
    with pytest.raises(HrfError, match="no class embedding"):
        from hrf.models import tiny_unet

        make_conditioner([0], tiny_unet(8))
    with pytest.raises(HrfError, match="text-to-image"):
        make_conditioner(["a cat"], unet)


def brightness(images):
    return images.mean(dim=(1, 2, 3)), {}


def _cfg(kind, **extra):
    sched = {
        "full": {"kind": "full"},
        "windows": {"kind": "windows", "windows": [[1, 2]], "iterations": [3], "after_last": "hold"},
        "dynamic": {"kind": "dynamic", "candidates": [0, 2, 4], "probe_samples": 2},
    }[kind]
    train = {
        "references": 4,
        "branches": 1 if kind == "full" else 2,
        "max_epochs": 2,
        "sample_batch_size": 8,
        "train_batch_size": 8,
        "lr": 1e-3,
        "advantage_norm": "prompt" if kind == "full" else "group",
        "kl_coef": 0.1,
    }
    data = {
        "sampling": {"num_steps": 6, "guidance_scale": 2.0},
        "prompts": {"classes": [0, 1, 2], "buffer_size": 4, "min_count": 2},
        "reward": {"name": "tests.test_conditional:brightness"},
        "schedule": sched,
        "train": train,
        "output": {"grid_every": 0},
    }
    for key, value in extra.items():
        data[key].update(value)
    return config_from_dict(data)


@pytest.mark.parametrize("kind", ["full", "windows", "dynamic"])
def test_trainer_carries_the_condition_everywhere(tmp_path, monkeypatch, kind):
    trainer = prepare_run(
        _cfg(kind), tmp_path / "run", unet=class_unet(4), train_scheduler=celebahq_like_scheduler(), progress=False
    )
    seen_labels = []
    original = trainer.model.forward

    def spy(x, t, class_labels=None, **kw):
        seen_labels.append(class_labels)
        return original(x, t, class_labels=class_labels, **kw)

    monkeypatch.setattr(trainer.model, "forward", spy)
    traj, groups, _, _ = trainer.sample_epoch(0)
    assert traj.cond is not None and len(traj.cond) == len(traj)
    for g in groups.unique():  # the branches of one reference share its prompt
        assert len(traj.cond.prompt[groups == g].unique()) == 1
    assert all(labels is not None for labels in seen_labels)  # references, probes, rollouts: every call
    assert any((labels == 3).any() for labels in seen_labels)  # the null class of the guidance
    seen_labels.clear()
    metrics = trainer.run_epoch(0)
    assert all(labels is not None for labels in seen_labels)  # the loss and the KL term too
    assert set(metrics["reward_by_prompt"]) <= {"0", "1", "2"} and metrics["kl_to_base"] >= 0


def test_prompt_statistics_survive_resume(tmp_path):
    def run(out, epochs):
        cfg = _cfg("full", train={"max_epochs": epochs})
        return prepare_run(cfg, out, unet=class_unet(4), train_scheduler=celebahq_like_scheduler(), progress=False)

    straight = run(tmp_path / "a", 2)
    straight.train()
    first = run(tmp_path / "b", 1)
    first.train()
    resumed = prepare_run(
        _cfg("full", train={"max_epochs": 2}),
        tmp_path / "b",
        unet=class_unet(4),
        train_scheduler=celebahq_like_scheduler(),
        progress=False,
        resume=True,
    )
    assert resumed.stat_tracker.buffers == first.stat_tracker.buffers
    resumed.train()
    assert resumed.stat_tracker.buffers.keys() == straight.stat_tracker.buffers.keys()
    for key, buf in straight.stat_tracker.buffers.items():
        np.testing.assert_allclose(list(resumed.stat_tracker.buffers[key]), list(buf), rtol=1e-5)


def test_class_conditional_final_model_opens_with_from_pretrained(tmp_path):
    trainer = prepare_run(
        _cfg("windows", train={"max_epochs": 1}),
        tmp_path / "run",
        unet=class_unet(4),
        train_scheduler=celebahq_like_scheduler(),
        progress=False,
    )
    trainer.train()
    reopened = UNet2DModel.from_pretrained(tmp_path / "run" / "final")
    assert reopened.config.num_class_embeds == 4


def test_evaluate_per_prompt_uses_the_same_noise_for_every_model(tmp_path):
    from hrf.cli.main import main
    from hrf.models import save_model

    a = save_model(class_unet(4, seed=0), celebahq_like_scheduler(), tmp_path / "a")
    b = save_model(class_unet(4, seed=0), celebahq_like_scheduler(), tmp_path / "b")
    c = save_model(class_unet(4, seed=1), celebahq_like_scheduler(), tmp_path / "c")
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", f"a={a}", f"b={b}", f"c={c}", "--classes", "0", "2", "--num", "4"]
    argv += ["--steps", "4", "--out", str(out), "--guidance-scale", "2", "--reward", "jpeg_compressibility"]
    argv += ["--embedder", "pixels", "--benchmark", "none"]
    assert main(argv) == 0
    report = json.loads((out / "metrics_prompts.json").read_text())
    assert set(report["prompts"]) == {"0", "2"}
    key = next(k for k in report["average"]["a"] if "jpeg" in k.lower())
    for p in ("0", "2"):  # same weights, same noise per prompt: identical metrics; other weights differ
        assert report["prompts"][p]["a"] == report["prompts"][p]["b"]
        assert report["prompts"][p]["a"][key] != report["prompts"][p]["c"][key]
    assert report["prompts"]["0"]["a"][key] != report["prompts"]["2"]["a"][key]  # prompts get their own samples
    mean = (report["prompts"]["0"]["a"][key] + report["prompts"]["2"]["a"][key]) / 2
    assert report["average"]["a"][key] == pytest.approx(mean)
    assert (out / "grid_0.png").is_file() and (out / "grid_2.png").is_file()
    plain = ["evaluate", "--model", str(a), "--num", "4", "--out", str(tmp_path / "e2"), "--benchmark", "none"]
    assert main(plain) == 2  # a class-conditional model without --classes: one line, not a traceback


def test_conditional_faces_classes_round_trip_and_true_faces_read_as_their_prompt():
    from hrf.data.classifier_b import load_evaluator_classifier
    from hrf.data.conditional import (
        class_name,
        class_values,
        faces_of_class,
        num_classes,
        parse_condition,
        prompt_metrics_fn,
    )

    factors = parse_condition("hair_color, background")
    assert num_classes(factors) == 16
    assert class_values(6, factors) == {"hair_color": 1, "background": 2}
    assert class_name(6, factors) == "hair_color=blonde, background=pink"
    images, labels = faces_of_class(24, 6, factors, seed=0)
    assert (labels["hair_color"] == 1).all() and (labels["background"] == 2).all() and len(images) == 24
    metrics = prompt_metrics_fn(load_evaluator_classifier(), factors, seed=1)("6", images)
    assert metrics["prompt_fidelity"] >= 0.9 and 0 < metrics["free_coverage_ratio"] <= 2
    wrong = prompt_metrics_fn(load_evaluator_classifier(), factors, seed=1)("0", images)
    assert wrong["prompt_fidelity"] <= 0.1  # the evaluator reads the specified factors, not a constant
    with pytest.raises(HrfError, match="--condition"):
        parse_condition("hair_colour")


def test_pretrain_condition_makes_a_class_conditional_model_that_trains_and_evaluates(tmp_path):
    from hrf.cli.main import main

    out = tmp_path / "pre"
    argv = ["pretrain", "--data", "faces", "--size", "32", "--steps", "3", "--batch-size", "4", "--out", str(out)]
    assert main([*argv, "--condition", "hair_color,background"]) == 0
    model = UNet2DModel.from_pretrained(out / "model")
    assert model.config.num_class_embeds == 17
    info = json.loads((out / "model" / "hrf_info.json").read_text())
    assert info["condition"]["null_class"] == 16 and len(info["condition"]["names"]) == 16
    assert (
        main(["pretrain", "--data", "digits", "--steps", "1", "--out", str(tmp_path / "d"), "--condition", "mouth"])
        == 2
    )
    ev = tmp_path / "ev"
    argv = ["evaluate", "--model", str(out / "model"), "--classes", "0", "5", "--num", "4", "--steps", "3"]
    assert main([*argv, "--out", str(ev), "--embedder", "pixels", "--guidance-scale", "2", "--benchmark", "none"]) == 0
    report = json.loads((ev / "metrics_prompts.json").read_text())
    assert {"prompt_fidelity", "free_coverage_ratio"} <= set(report["average"]["model"])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ddpo", "hrf"])
def test_faces32_cond_presets_train_on_a_conditional_model(tmp_path, method):
    from hrf.config import load_config, preset_path
    from hrf.training.pretrain import PretrainConfig, pretrain

    pretrain(
        PretrainConfig(data="faces", size=32, steps=2, batch_size=4, condition="hair_color,background"),
        tmp_path / "pre",
        progress=False,
    )
    small = [f"model.path={json.dumps(str(tmp_path / 'pre' / 'model'))}", "train.max_epochs=1", "output.grid_every=0"]
    small += ["train.references=4", "train.branches=2"] if method == "hrf" else ["train.references=8"]
    cfg = load_config(preset_path(f"faces32-cond/smile-{method}"), small)
    history = prepare_run(cfg, tmp_path / "run", progress=False).train()
    assert history[0]["trained_pairs"] > 0 and set(history[0]["reward_by_prompt"]) <= {str(c) for c in range(16)}


def test_shipped_conditional_faces_model_meets_its_bar():
    """hrf:faces32-cond ships with its report (``fidelity.json``: ``hrf evaluate --classes`` over the 16
    prompts, the independent evaluator reading the samples): at least 90 % of the samples show their prompt's
    hair colour and background, and the free factors' coverage within a prompt is at least 0.9 of the data's,
    averaged over the prompts, at the guidance scale its presets sample with."""
    from pathlib import Path

    from hrf.config import load_config, preset_path
    from hrf.models import resolve_model_path

    path = Path(resolve_model_path("hrf:faces32-cond")[0])
    model = UNet2DModel.from_pretrained(path)
    assert model.config.num_class_embeds == 17  # 16 prompts and the null class of guidance
    report = json.loads((path / "fidelity.json").read_text())
    assert sorted(report["prompts"], key=int) == [str(c) for c in range(16)]
    (average,) = report["average"].values()
    assert average["prompt_fidelity"] >= 0.9 and average["free_coverage_ratio"] >= 0.9
    guidance = report["config"]["guidance_scale"]
    for preset in ("smile-ddpo", "smile-hrf", "compressibility-hrf"):
        assert load_config(preset_path(f"faces32-cond/{preset}")).sampling.guidance_scale == guidance
