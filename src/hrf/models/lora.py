"""LoRA fine-tuning through peft: adapters injected into a UNet2DModel, merged back when saved.

UNet2DModel has no diffusers adapter mixin, so peft's ``inject_adapter_in_model`` wraps the chosen layers
in place; :func:`merged_unet` folds the adapters into a plain UNet2DModel of the original class, which is
what every saved model directory holds.
"""

from __future__ import annotations

import copy

import torch

from hrf.errors import HrfError

# Convolutions and projections of the ResNet blocks, and attention projections when the model has them.
TARGETS = ["conv1", "conv2", "time_emb_proj", "to_q", "to_k", "to_v", "to_out.0"]


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise HrfError("model.lora_rank > 0 needs peft: pip install 'hrf[lora]' (or set model.lora_rank=0)") from exc
    return peft


def add_lora(unet, rank: int, alpha: float | None = None):
    """Freeze ``unet`` and inject LoRA adapters of ``rank`` (only those train); returns the same module."""
    peft = _peft()
    names = {n.rsplit(".", 1)[-1] for n, _ in unet.named_modules()} | {n for n, _ in unet.named_modules()}
    targets = [t for t in TARGETS if any(n.endswith(t) for n in names)]
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=targets, init_lora_weights=True)
    unet.requires_grad_(False)
    return peft.inject_adapter_in_model(config, unet)


def has_lora(unet) -> bool:
    return any("lora_" in k for k in unet.state_dict())


def lora_state_dict(unet) -> dict[str, torch.Tensor]:
    """Only the adapter weights (what a checkpoint needs besides the frozen base model)."""
    return {k: v.detach().cpu().clone() for k, v in unet.state_dict().items() if "lora_" in k}


def load_lora_state(unet, state: dict[str, torch.Tensor], source: object) -> None:
    """Load adapter weights saved by :func:`lora_state_dict` into ``unet``; any key mismatch is a one-line HrfError.

    ``load_state_dict(strict=False)`` is needed (the frozen base weights are not in ``state``), but on its own
    it would skip a mismatched adapter silently and resume from fresh adapters.
    """
    expected = {k for k in unet.state_dict() if "lora_" in k}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        parts = [
            f"{len(keys)} {kind} (first '{keys[0]}')"
            for kind, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise HrfError(f"the LoRA adapters of '{source}' do not fit the model: {', '.join(parts)} adapter keys")
    unet.load_state_dict(state, strict=False)


def merged_unet(unet):
    """A plain model of ``unet``'s class with the adapters folded into the base weights."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    work = copy.deepcopy(unet)
    for module in work.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    state = {k.replace(".base_layer", ""): v for k, v in work.state_dict().items() if "lora_" not in k}
    plain = type(unet).from_config(unet.config)
    plain.load_state_dict(state)
    return plain
