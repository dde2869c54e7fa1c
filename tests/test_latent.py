"""Latent text-to-image pipelines on a tiny random StableDiffusionPipeline: LoRA training, saving, reloading."""

from __future__ import annotations

import pytest
import torch

from hrf.config import load_config
from hrf.models.latent import (
    LORA_FILE,
    is_latent_pipeline,
    load_latent_pipeline,
    save_tiny_pipeline,
)
from hrf.training.run_dir import prepare_run


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "pipe")


def _overrides(tiny_sd, **extra):
    base = {
        "model.path": f'"{tiny_sd}"',
        "sampling.num_steps": 4,
        "train.references": 2,
        "train.max_epochs": 1,
        "train.sample_batch_size": 4,
        "train.train_batch_size": 4,
        "train.updates_per_epoch": 1,
        "output.grid_every": 0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_tiny_pipeline_is_a_latent_pipeline_and_encodes_once(tiny_sd):
    assert is_latent_pipeline(str(tiny_sd)) and not is_latent_pipeline("hrf:faces32")
    pipe = load_latent_pipeline(str(tiny_sd))
    emb = pipe.encode_prompts(["a cat", "a dog", ""])
    assert emb.shape[:2] == (3, pipe.tokenizer.model_max_length) and not torch.equal(emb[0], emb[1])
    images = pipe.decode(torch.randn(2, 4, 8, 8))
    assert images.shape == (2, 3, 16, 16) and images.abs().max() <= 1
    from hrf.cli.evaluate_prompts import refuse_conditional
    from hrf.errors import HrfError

    with pytest.raises(HrfError, match="--prompts"):
        refuse_conditional(str(tiny_sd))


@pytest.mark.parametrize("preset", ["sd/compressibility-ddpo", "sd/compressibility-hrf"])
def test_sd_presets_train_lora_save_reload_and_resume(tiny_sd, tmp_path, preset):
    from diffusers import StableDiffusionPipeline

    from hrf.config import preset_path

    hrf = {"train.branches": 2, "schedule.windows": "[[1, 1]]", "schedule.iterations": "[2]"}
    extra = hrf if "hrf" in preset else {}
    cfg = load_config(preset_path(preset), _overrides(tiny_sd, **extra))
    assert cfg.sampling.guidance_scale > 1 and cfg.model.lora_rank > 0
    run = tmp_path / "run"
    trainer = prepare_run(cfg, run, progress=False)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    history = trainer.train()
    assert history[0]["trained_pairs"] > 0 and set(history[0]["reward_by_prompt"]) <= set(trainer.conditioner.names)
    moved = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert moved  # a real backward pass reached the adapters

    # the adapters open with the pipeline class's own loader and give the trained UNet's output
    assert (run / "final" / LORA_FILE).is_file()
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipe.load_lora_weights(run / "final")
    x, t = torch.randn(1, 4, 8, 8), torch.tensor(500)
    text = trainer.conditioner.values[:1]
    with torch.no_grad():
        torch.testing.assert_close(
            pipe.unet(x, t, encoder_hidden_states=text).sample,
            trainer.model(x, t, encoder_hidden_states=text).sample,
            rtol=1e-4,
            atol=1e-5,
        )
    # hrf opens the adapter directory as a model (its base pipeline plus the adapters)
    assert is_latent_pipeline(str(run / "final"))

    # per-prompt evaluation opens the pipeline and the adapter directory, from the same noise per prompt
    from hrf.evaluation.prompted import evaluate_per_prompt

    report = evaluate_per_prompt(
        {"base": str(tiny_sd), "tuned": str(run / "final")},
        ["a cat", "a dog"],
        num=2,
        seed=0,
        steps=3,
        guidance_scale=2.0,
        rewards=["jpeg_compressibility"],
    )
    assert set(report["prompts"]) == {"a cat", "a dog"} and set(report["average"]) == {"base", "tuned"}

    # resume one more epoch from the checkpoint
    resumed = prepare_run(None, run, resume=True, overrides=["train.max_epochs=2"], progress=False)
    for n, p in resumed.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, dict(trainer.model.named_parameters())[n]), n
    resumed.train()
    assert resumed.epoch == 2


def test_full_fine_tuning_of_a_pipeline_is_refused(tiny_sd, tmp_path):
    from hrf.config import preset_path
    from hrf.errors import HrfError

    cfg = load_config(preset_path("sd/compressibility-ddpo"), _overrides(tiny_sd, **{"model.lora_rank": 0}))
    with pytest.raises(HrfError, match="lora_rank"):
        prepare_run(cfg, tmp_path / "r", progress=False)
