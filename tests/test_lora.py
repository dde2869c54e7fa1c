"""LoRA mode: only adapters train, saved models are plain merged UNet2DModels, resume is exact."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import UNet2DModel

from hrf.models import tiny_unet
from hrf.models.lora import add_lora, merged_unet
from hrf.training.run_dir import prepare_run
from tests.helpers import celebahq_like_scheduler
from tests.test_trainer import _cfg


def test_merged_model_equals_adapted_model():
    unet = add_lora(tiny_unet(8), rank=2)
    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor(300)
    plain = merged_unet(unet)
    assert type(plain) is UNet2DModel and not any("lora" in k for k in plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(x, t).sample, unet(x, t).sample, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_lora_training_changes_only_adapters_and_resumes(tmp_path):
    base = tiny_unet(8)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = _cfg("windows", max_epochs=2)
    cfg.model.lora_rank = 2
    trainer = prepare_run(cfg, tmp_path / "l", unet=base, train_scheduler=celebahq_like_scheduler(), progress=False)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    trainer.train()
    state = trainer.model.state_dict()
    for k, v in before.items():  # frozen base weights are untouched
        key = k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(state.get(key, state.get(k)), v)
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in state.items() if "lora_B" in k)
    final = UNet2DModel.from_pretrained(tmp_path / "l" / "final")
    x, t = torch.randn(2, 3, 8, 8), torch.tensor(300)
    with torch.no_grad():
        torch.testing.assert_close(final(x, t).sample, trainer.model(x, t).sample, rtol=1e-4, atol=1e-5)

    # resume: one epoch, then another from the checkpoint, equals two straight epochs
    cfg1 = _cfg("windows", max_epochs=2)
    cfg1.model.lora_rank = 2
    part = prepare_run(
        cfg1, tmp_path / "m", unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False
    )
    part.cfg.train.max_epochs = 1
    part.train()
    resumed = prepare_run(
        None, tmp_path / "m", resume=True, unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False
    )
    resumed.train()
    for (n, p), q in zip(trainer.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q), n


def test_resume_with_mismatched_adapters_is_one_line(tmp_path):
    """A checkpoint whose adapter keys do not match the model stops the resume instead of starting afresh."""
    from hrf.errors import HrfError
    from hrf.training.checkpoint import checkpoint_dirs

    cfg = _cfg("windows", max_epochs=1)
    cfg.model.lora_rank = 2

    def run(**kw):
        return prepare_run(
            cfg if not kw else None,
            tmp_path / "l",
            unet=tiny_unet(8),
            train_scheduler=celebahq_like_scheduler(),
            progress=False,
            **kw,
        )

    run().train()
    state_path = checkpoint_dirs(tmp_path / "l")[-1] / "state.pt"
    state = torch.load(state_path, weights_only=True)
    renamed = next(k for k in state["lora"] if "lora_A" in k)
    state["lora"][renamed.replace("lora_A", "lora_Z")] = state["lora"].pop(renamed)
    torch.save(state, state_path)
    with pytest.raises(HrfError, match=rf"1 missing \(first '{re.escape(renamed)}'\), 1 unexpected") as exc:
        run(resume=True)
    assert "\n" not in str(exc.value)
