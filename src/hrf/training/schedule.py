"""Start-step schedules: which step index each reference's trajectories start from in an epoch.

``full`` is DDPO (always k = 0, pure noise); ``windows`` is HRF (k uniform in the current inclusive
window, windows advancing after their iteration counts); ``dynamic`` is HRF-D (k per reference chosen by
:func:`select_start_step` from a probe of rewards and distances). A schedule is a function of the epoch
(so a resumed run continues mid-window) plus a tiny state dict. Start steps are drawn and returned on the
generator's device (torch refuses a generator of one device for a tensor of another).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hrf.config import ScheduleConfig
from hrf.errors import HrfError


def select_start_step(candidates, rewards, distances, beta: float) -> int:
    """HRF-D's choice (paper §4.3): ``argmax_k [(R_k − R_{k−1}) − β·D_k]`` over the candidate grid.

    ``rewards`` R_k and ``distances`` D_k (mean cosine distance of the probes to the reference) are
    min-max normalised over the grid first. ``R_{k−1}`` is the previous (noisier) candidate; the first
    candidate has no predecessor and gets ΔR = 0. Returns the chosen candidate itself (no off-by-one).
    A candidate whose reward is NaN (no probe had a finite reward) is left out of the grid altogether.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    kept = ~np.isnan(rewards)
    if not kept.any():
        raise HrfError(
            "no HRF-D candidate start step has a finite probe reward; fix the reward or raise schedule.probe_samples"
        )
    r = _minmax(rewards[kept])
    d = _minmax(np.asarray(distances, dtype=np.float64)[kept])
    gain = np.diff(r, prepend=r[0])
    return int(np.asarray(candidates)[kept][int(np.argmax(gain - beta * d))])


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


ProbeFn = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]


class StartSchedule:
    """Base class: ``starts(epoch, n, generator, probe)`` → (n,) start step indices."""

    kind = "base"
    needs_references = True

    def starts(self, epoch: int, n: int, generator: torch.Generator, probe: ProbeFn | None = None) -> torch.Tensor:
        """(n,) long start step indices for ``epoch``, on ``generator.device``; ``probe`` as in DynamicSchedule."""
        raise NotImplementedError

    def finished(self, epoch: int) -> bool:
        """True when the schedule has no more epochs to run (the trainer stops)."""
        return False

    def describe(self, epoch: int) -> str:
        return self.kind

    def state_dict(self) -> dict:
        return {"kind": self.kind}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint schedule '{state.get('kind')}' does not match '{self.kind}'")


class FullSchedule(StartSchedule):
    """DDPO: every trajectory starts from pure noise."""

    kind = "full"
    needs_references = False

    def starts(self, epoch: int, n: int, generator: torch.Generator, probe: ProbeFn | None = None) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.long, device=generator.device)


class WindowSchedule(StartSchedule):
    """HRF: inclusive windows, ``iterations[i]`` epochs each; start steps uniform within the window."""

    kind = "windows"

    def __init__(self, windows, iterations, after_last: str = "stop"):
        self.windows = [tuple(w) for w in windows]
        self.iterations = list(iterations)
        self.after_last = after_last
        self.total = sum(self.iterations)

    def window_index(self, epoch: int) -> int:
        """Index of the window used at ``epoch`` (0-based)."""
        if epoch >= self.total:
            if self.after_last == "cycle":
                epoch %= self.total
            else:  # "hold" (and "stop", for an epoch asked after the end)
                return len(self.windows) - 1
        return int(np.searchsorted(np.cumsum(self.iterations), epoch, side="right"))

    def finished(self, epoch: int) -> bool:
        return self.after_last == "stop" and epoch >= self.total

    def describe(self, epoch: int) -> str:
        lo, hi = self.windows[self.window_index(epoch)]
        return f"window {self.window_index(epoch) + 1}/{len(self.windows)} [{lo},{hi}]"

    def starts(self, epoch: int, n: int, generator: torch.Generator, probe: ProbeFn | None = None) -> torch.Tensor:
        lo, hi = self.windows[self.window_index(epoch)]
        return torch.randint(lo, hi + 1, (n,), generator=generator, device=generator.device)


class DynamicSchedule(StartSchedule):
    """HRF-D: for each reference, probe every candidate step and pick by :func:`select_start_step`.

    ``probe(candidates)`` returns ``(R, D)`` arrays of shape (n_references, n_candidates), R NaN where no
    probe had a finite reward; the trainer supplies it (it owns the model and the reward), the schedule owns
    the choice.
    """

    kind = "dynamic"

    def __init__(self, candidates, beta: float = 1.0):
        self.candidates = list(candidates)
        self.beta = beta

    def starts(self, epoch: int, n: int, generator: torch.Generator, probe: ProbeFn | None = None) -> torch.Tensor:
        if probe is None:
            raise ValueError("the dynamic schedule needs a probe function")
        rewards, distances = probe(self.candidates)
        return torch.tensor(
            [select_start_step(self.candidates, rewards[i], distances[i], self.beta) for i in range(n)],
            dtype=torch.long,
            device=generator.device,
        )


def make_schedule(cfg: ScheduleConfig) -> StartSchedule:
    """The schedule object for a (validated) schedule config."""
    if cfg.kind == "full":
        return FullSchedule()
    if cfg.kind == "windows":
        return WindowSchedule(cfg.windows, cfg.iterations, cfg.after_last)
    return DynamicSchedule(cfg.candidates, cfg.beta)
