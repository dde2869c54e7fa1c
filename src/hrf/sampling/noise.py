"""Where sampling's Gaussian noise comes from: the initial noise and the per-step noise of the η > 0 DDIM chain.

Two schemes, recorded in every sample cache and study cell that depends on them:

- ``per_sample`` (the default): sample ``i`` of a seed draws all its noise, initial and per step, from its
  own CPU generator seeded from (seed, stream, i). Its images do not depend on the batch size nor on how
  many samples are drawn, and its noise is the same on every device (drawn on the CPU, then moved).
- ``sequential``: one CPU generator seeded with the seed draws batch after batch, each batch's initial noise
  then each step's noise. Images depend on the batch size. It is how hrf drew before ``per_sample``, kept so
  that results measured with it stay reproducible bit for bit.

A function that denoises takes its noise as :data:`Noise`: a ``torch.Generator`` (the sequential stream,
drawn on the generator's own device and moved to the samples'), a :class:`SampleNoise` (one stream per
sample) or ``None`` (torch's global generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import torch

NoiseScheme = Literal["per_sample", "sequential"]
NOISE_SCHEMES: tuple[NoiseScheme, ...] = ("per_sample", "sequential")
DEFAULT_NOISE: NoiseScheme = "per_sample"


def sample_generator(seed: int, index: int, stream: int = 0) -> torch.Generator:
    """The CPU generator of sample ``index`` of ``seed``; ``stream`` separates independent uses of one seed."""
    state = np.random.SeedSequence([seed, stream, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


class SampleNoise:
    """One CPU generator per sample of a batch: row ``r`` of every draw comes from ``generators[r]``."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    @classmethod
    def for_samples(cls, seed: int, indices: Sequence[int] | range, stream: int = 0) -> SampleNoise:
        """The streams of samples ``indices`` of ``seed``."""
        return cls([sample_generator(seed, i, stream) for i in indices])

    def __len__(self) -> int:
        return len(self.generators)

    def subset(self, rows: Sequence[int] | range | torch.Tensor) -> SampleNoise:
        """The streams of some rows (shared, not copied: drawing from the subset advances them here too)."""
        rows = rows.tolist() if isinstance(rows, torch.Tensor) else rows
        return SampleNoise([self.generators[r] for r in rows])

    def randn(self, shape: Sequence[int], device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """N(0, I) of ``shape`` (one row per stream), drawn in float32 on the CPU and moved to ``device``."""
        if shape[0] != len(self.generators):
            raise ValueError(f"{shape[0]} rows of noise asked of {len(self.generators)} sample streams")
        rows = [
            torch.randn(tuple(shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in self.generators
        ]
        return torch.stack(rows).to(device=device, dtype=dtype)


Noise: TypeAlias = torch.Generator | SampleNoise | None


def gaussian(
    noise: Noise, shape: Sequence[int], device: torch.device | str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """N(0, I) of ``shape`` on ``device`` from ``noise``.

    A generator draws on its own device (a CPU generator for a model on the GPU draws on the CPU), so the
    noise of a seed does not depend on where the model runs; on the generator's device the draw is the
    same call as a plain ``torch.randn(..., generator=g)``.
    """
    if isinstance(noise, SampleNoise):
        return noise.randn(shape, device, dtype)
    where = noise.device if noise is not None else device
    return torch.randn(tuple(shape), generator=noise, device=where, dtype=dtype).to(device)


def batch_noise(noise: Noise, start: int, stop: int) -> Noise:
    """The noise of the batch of rows ``start:stop``: those rows' streams, or the one shared generator."""
    return noise.subset(range(start, stop)) if isinstance(noise, SampleNoise) else noise


def make_noise(scheme: NoiseScheme, seed: int, num: int, stream: int = 0) -> torch.Generator | SampleNoise:
    """The noise of ``num`` samples of ``seed`` under ``scheme`` (``stream`` only matters for ``per_sample``)."""
    if scheme == "per_sample":
        return SampleNoise.for_samples(seed, range(num), stream)
    if scheme == "sequential":
        return torch.Generator().manual_seed(seed)
    raise ValueError(f"unknown noise scheme '{scheme}'; known: {', '.join(NOISE_SCHEMES)}")


def noise_key(scheme: NoiseScheme, batch_size: int) -> dict[str, str | int]:
    """What a cache of samples must record of their noise: the scheme, and for ``sequential`` the batch size
    its images depend on."""
    if scheme not in NOISE_SCHEMES:
        raise ValueError(f"unknown noise scheme '{scheme}'; known: {', '.join(NOISE_SCHEMES)}")
    key: dict[str, str | int] = {"noise": scheme}
    return key | ({"noise_batch_size": batch_size} if scheme == "sequential" else {})
