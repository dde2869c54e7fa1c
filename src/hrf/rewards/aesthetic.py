"""The LAION aesthetic score: CLIP ViT-L/14 image embeddings → the LAION MLP (1–10 scale).

No weights ship with hrf (they are not installable offline): pass ``clip_path`` (a CLIPModel directory,
e.g. openai/clip-vit-large-patch14 downloaded on a connected machine) and ``mlp_path`` (the LAION
``sac+logos+ava1-l14-linearMSE.pth`` state dict).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hrf.errors import HrfError
from hrf.models.clip import clip_image_embeddings
from hrf.rewards.registry import register_reward


class AestheticMLP(nn.Module):
    """The LAION improved-aesthetic-predictor head (state-dict keys ``layers.N.*``)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


class AestheticScorer(nn.Module):
    """CLIP image features, L2-normalised, scored by the MLP; differentiable in the images."""

    def __init__(self, clip, mlp: AestheticMLP):
        super().__init__()
        self.clip, self.mlp = clip.eval(), mlp.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mlp(clip_image_embeddings(self.clip, images)).squeeze(-1)


def load_aesthetic_scorer(clip_path: str | None, mlp_path: str | None) -> AestheticScorer:
    """Load CLIP from a local directory and the LAION MLP from a local ``.pth``/``.safetensors`` file."""
    if not clip_path or not Path(clip_path).is_dir():
        raise HrfError(
            f"the aesthetic reward needs reward.options.clip_path: a local CLIPModel directory (got {clip_path!r}); "
            "download openai/clip-vit-large-patch14 on a connected machine and pass its directory"
        )
    if not mlp_path or not Path(mlp_path).is_file():
        raise HrfError(
            f"the aesthetic reward needs reward.options.mlp_path: the LAION MLP weights file (got {mlp_path!r}); "
            "get sac+logos+ava1-l14-linearMSE.pth from the LAION improved-aesthetic-predictor release"
        )
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(clip_path, local_files_only=True)
    if str(mlp_path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(mlp_path)
    else:
        state = torch.load(mlp_path, map_location="cpu", weights_only=True)
    mlp = AestheticMLP(clip.config.projection_dim)
    try:
        mlp.load_state_dict(state)
    except RuntimeError as exc:
        raise HrfError(
            f"'{mlp_path}' is not a LAION aesthetic MLP state dict for dim {clip.config.projection_dim}"
        ) from exc
    return AestheticScorer(clip, mlp)


@register_reward("aesthetic")
def aesthetic(
    clip_path: str | None = None, mlp_path: str | None = None, batch_size: int = 32, device: str | None = None
):
    """Reward = LAION aesthetic score of each image, computed on ``device`` (default: the device of the model
    being trained or evaluated, passed by hrf; alone, :func:`hrf.models.resolve_device`'s choice)."""
    from hrf.models.device import resolve_device

    device = str(resolve_device(device))
    scorer = load_aesthetic_scorer(clip_path, mlp_path).to(device)

    @torch.no_grad()
    def fn(images: torch.Tensor):
        scores = torch.cat(
            [scorer(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
        )
        return scores, {}

    return fn
