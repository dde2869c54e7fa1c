"""Prompts of a conditional run: where they come from, how each epoch draws them, per-prompt statistics.

A prompt is an index into the run's prompt list (text prompts or class ids). Each epoch draws one prompt per
reference, uniformly, from a generator that depends only on the run seed and the epoch; a reference's
branches share its prompt.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from hrf.config import PromptsConfig
from hrf.errors import ConfigError, HrfError
from hrf.sampling import Condition


def _prompt_file(spec: str) -> Path:
    """A prompt file path; ``hrf:NAME`` is a list shipped with hrf (``assets/prompts/NAME.txt``)."""
    if spec.startswith("hrf:"):
        return Path(str(resources.files("hrf") / "assets" / "prompts" / f"{spec[4:]}.txt"))
    return Path(spec).expanduser()


def read_prompt_file(spec: str) -> list[str]:
    """The prompts of a text file, one a line; blank lines and lines starting with # are skipped."""
    path = _prompt_file(spec)
    if not path.is_file():
        raise ConfigError(f"prompts.file '{spec}' does not exist")
    prompts = [line.strip() for line in path.read_text().splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ConfigError(f"prompts.file '{spec}' holds no prompt")
    return prompts


def prompt_source(cfg: PromptsConfig) -> list[str] | list[int] | None:
    """The run's prompts: text prompts (``texts`` or ``file``), class ids (``classes``), or None (unconditional)."""
    if cfg.texts:
        return [str(p) for p in cfg.texts]
    if cfg.file:
        return read_prompt_file(cfg.file)
    if cfg.classes:
        return [int(c) for c in cfg.classes]
    return None


def draw_prompts(n: int, num_prompts: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) prompt indices drawn uniformly with replacement (as DDPO draws a prompt per sample), on the CPU."""
    return torch.randint(0, num_prompts, (n,), generator=generator, device=generator.device).cpu()


class PerPromptStatTracker:
    """Per-prompt running reward statistics, as ddpo-pytorch's stat tracker keeps them.

    Each prompt keeps its last ``buffer_size`` rewards. A reward is standardised by its prompt's buffer once
    that holds ``min_count`` rewards; before that, by the statistics of the whole batch. The state is saved in
    checkpoints, so a resumed run standardises as an uninterrupted one would.
    """

    def __init__(self, buffer_size: int, min_count: int, eps: float = 1e-6):
        self.buffer_size, self.min_count, self.eps = buffer_size, min_count, eps
        self.buffers: dict[int, deque[float]] = {}

    def update(self, prompts: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """Add this epoch's rewards, then return their advantages (float64, unclipped)."""
        r = rewards.double().numpy()
        p = prompts.long().numpy()
        adv = np.empty_like(r)
        for prompt in np.unique(p):
            mine = p == prompt
            buf = self.buffers.setdefault(int(prompt), deque(maxlen=self.buffer_size))
            buf.extend(r[mine].tolist())
            ref = np.asarray(buf) if len(buf) >= self.min_count else r
            adv[mine] = (r[mine] - ref.mean()) / (ref.std() + self.eps)
        return torch.from_numpy(adv)

    def state_dict(self) -> dict:
        return {"buffers": {k: list(v) for k, v in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = {int(k): deque(v, maxlen=self.buffer_size) for k, v in state["buffers"].items()}


@dataclass
class Conditioner:
    """Prompt indices → :class:`Condition`: class labels, or text embeddings computed once per prompt."""

    names: list[str]  # each prompt as text (class ids as their decimal string), for reports
    values: torch.Tensor  # (P,) long class labels or (P, L, D) text embeddings
    null: torch.Tensor | None  # the unconditional input, (1,) or (1, L, D)

    def __call__(self, prompt: torch.Tensor) -> Condition:
        return Condition(self.values[prompt], prompt, self.null)

    def __len__(self) -> int:
        return len(self.names)


def make_conditioner(prompts, unet, pipeline=None, null_class: int = -1, model: str = "the model"):
    """The run's :class:`Conditioner`, or None for an unconditional model; a mismatch is one HrfError.

    Class ids need a class-conditional ``UNet2DModel`` (``num_class_embeds``); text prompts need a latent
    text-to-image ``pipeline``. ``null_class = -1`` is the last class embedding (``num_class_embeds − 1``).
    """
    classes = getattr(unet.config, "num_class_embeds", None)
    if pipeline is not None:
        if not prompts or not isinstance(prompts[0], str):
            raise HrfError(f"{model} is a text-to-image pipeline: give prompts.texts or prompts.file")
        embeds = pipeline.encode_prompts([*prompts, ""])
        return Conditioner(list(prompts), embeds[:-1], embeds[-1:])
    if prompts is None:
        if classes:
            raise HrfError(f"{model} is class-conditional ({classes} classes): give prompts.classes")
        return None
    if isinstance(prompts[0], str):
        raise HrfError(f"text prompts need a text-to-image pipeline; {model} is not one (use prompts.classes)")
    if not classes:
        raise HrfError(f"prompts.classes needs a class-conditional model; {model} has no class embedding")
    null = classes - 1 if null_class == -1 else null_class
    bad = [c for c in [*prompts, null] if not 0 <= c < classes]
    if bad:
        raise HrfError(f"class ids {bad} are outside 0..{classes - 1} of {model}")
    return Conditioner([str(c) for c in prompts], torch.tensor(prompts, dtype=torch.long), torch.tensor([null]))
