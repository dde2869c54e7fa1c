"""What a conditional denoiser is conditioned on, and its noise prediction with classifier-free guidance.

A :class:`Condition` holds one row per sample: class labels for a class-conditional ``UNet2DModel``
(``num_class_embeds``), or text embeddings for a ``UNet2DConditionModel``, plus the unconditional input
(a null class, the empty prompt's embedding) that guidance needs. With guidance scale ``w`` the step's
noise prediction is ``ε = ε_u + w·(ε_c − ε_u)``; the DDIM mean built from that ε is the policy's mean, so
the step's log-prob is exact for the guided chain (docs/MATH.md §"Conditional models").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Condition:
    """One condition per sample: ``values`` are (N,) long class labels or (N, L, D) text embeddings.

    ``null`` is the unconditional input with a leading dimension of 1 ((1,) or (1, L, D)), or None when the
    model has none (then guidance is refused). ``prompt`` is each sample's prompt index (for grouping).
    """

    values: torch.Tensor
    prompt: torch.Tensor
    null: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index) -> Condition:
        """The rows ``index`` (a slice or a CPU index tensor)."""
        return Condition(self.values[index], self.prompt[index], self.null)

    @staticmethod
    def cat(parts: list[Condition]) -> Condition:
        """Concatenate conditions of the same kind along the batch."""
        return Condition(torch.cat([p.values for p in parts]), torch.cat([p.prompt for p in parts]), parts[0].null)

    def to(self, device) -> Condition:
        """The tensors the UNet reads on ``device`` (prompt indices stay where they are)."""
        null = None if self.null is None else self.null.to(device)
        return Condition(self.values.to(device), self.prompt, null)

    def repeat_interleave(self, n: int) -> Condition:
        """Each row ``n`` times in a row (a reference's condition for each of its branches)."""
        return self[torch.arange(len(self)).repeat_interleave(n)]


def _call(unet, x: torch.Tensor, t, values: torch.Tensor | None) -> torch.Tensor:
    if values is None:
        return unet(x, t).sample
    if values.ndim == 3:
        return unet(x, t, encoder_hidden_states=values.to(x.dtype)).sample
    return unet(x, t, class_labels=values).sample


def predict_noise(unet, x: torch.Tensor, t, cond: Condition | None = None, guidance_scale: float = 1.0) -> torch.Tensor:
    """The model output at ``(x, t)`` under ``cond``; with ``guidance_scale > 1``, ε_u + w·(ε_c − ε_u).

    Both branches of the guided prediction go through ``unet`` in one batch (the trained network gives both,
    as in the public DDPO implementations); ``guidance_scale ≤ 1`` is the plain conditional prediction.
    """
    if cond is None:
        return _call(unet, x, t, None)
    if guidance_scale <= 1.0:
        return _call(unet, x, t, cond.values.to(x.device))
    if cond.null is None:
        raise ValueError("classifier-free guidance needs the condition's unconditional input (null)")
    n = len(x)
    null = cond.null.to(x.device).expand(n, *cond.null.shape[1:])
    t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.ndim == 1 else t
    out = _call(unet, torch.cat([x, x]), t2, torch.cat([null, cond.values.to(x.device)]))
    uncond, conditional = out[:n], out[n:]
    return uncond + guidance_scale * (conditional - uncond)
