"""The collapse regime on the faces benchmark: the budget, windows and conditions of the mode-collapse study.

``benchmarks/collapse.py`` (the study: curves per method × seed, compared at pre-declared reward levels) and
``hrf demo`` (the same regime, one seed) both build their runs here, so the demo shows the regime the study
measured. A run is a task's shipped preset (``configs/faces32/TASK-{ddpo,hrf,hrfd}.toml``) trained for
``EPOCHS`` epochs, five times the presets' own 12, with a checkpoint every ``EVAL_EVERY``. The same regime on
the class-conditional faces model takes its presets from ``configs/faces32-cond/`` (``presets="faces32-cond"``;
``benchmarks/cond_demo.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from hrf.config import Config, load_config, preset_path

MODEL = "hrf:faces32"
EPOCHS = 60  # the collapse budget: 5× the presets' 12 epochs, where DDPO_IS loses most of its diversity
EVAL_EVERY = 10  # epochs between checkpoints
PAPER_WINDOWS = "[[2, 3], [4, 6], [6, 7]]"  # the paper's (8,12),(18,22),(28,32) of 40 at T = 10; 7 = last trained start
PAPER_WINDOWS_T40 = "[[8, 12], [18, 22], [28, 32]]"  # the paper's own windows
NOISE_WINDOWS = "[[1, 2], [2, 3], [3, 4]]"  # the compressibility preset's windows, near noise
THIRDS = "THIRDS"  # in an override, stands for the budget in three equal parts (EPOCHS: [20, 20, 20])
# key: (label, preset suffix, overrides on top of the preset, the seed and the budget)
METHODS: dict[str, tuple[str, str, list[str]]] = {
    "ddpo": ("DDPO_IS", "ddpo", []),
    "hrf": ("HRF", "hrf", [f"schedule.windows={PAPER_WINDOWS}", f"schedule.iterations={THIRDS}"]),
    "hrf_noise": (
        "HRF (windows near noise)",
        "hrf",
        [f"schedule.windows={NOISE_WINDOWS}", f"schedule.iterations={THIRDS}"],
    ),
    "hrf_batchnorm": (
        "HRF (batch advantages)",
        "hrf",
        [f"schedule.windows={PAPER_WINDOWS}", f"schedule.iterations={THIRDS}", 'train.advantage_norm="batch"'],
    ),
    "hrfd": ("HRF-D", "hrfd", []),
    "kl0.03": ("DDPO_IS+KL(0.03)", "ddpo", ["train.kl_coef=0.03"]),
    "kl0.1": ("DDPO_IS+KL(0.1)", "ddpo", ["train.kl_coef=0.1"]),
    "kl0.3": ("DDPO_IS+KL(0.3)", "ddpo", ["train.kl_coef=0.3"]),
    "ddpo_T40": ("DDPO_IS (T = 40)", "ddpo", ["sampling.num_steps=40"]),
    # the frontier study's Part B (RESULTS.md § F.5): β from FRONTIER_BETA, set per task by collapse_config
    "klbeta": ("KL to q_β", "kl", []),
    "rtb": ("RTB to q_β", "rtb", []),
    "hrfkl": ("HRF+KL to q_β", "hrfkl", [f"schedule.windows={PAPER_WINDOWS}", f"schedule.iterations={THIRDS}"]),
    "hrf_T40": (
        "HRF (T = 40)",
        "hrf",
        ["sampling.num_steps=40", f"schedule.windows={PAPER_WINDOWS_T40}", f"schedule.iterations={THIRDS}"],
    ),
}


# The shipped frontier's β (hrf:faces32, T = 10; src/hrf/assets/models/faces32/frontier/) at the highest declared
# level above the primary that it reaches: smile +0.4692; compressibility its largest reachable gain (+0.146),
# as the frontier study's protocol (RESULTS.md § F.5) fixes. A test checks them against the shipped curves.
FRONTIER_BETA = {"smile": 2.6228, "compressibility": 42.5606}
FRONTIER_METHODS = ("klbeta", "rtb", "hrfkl")


def collapse_config(
    task: str,
    method: str,
    seed: int,
    eval_every: int = EVAL_EVERY,
    overrides: Sequence[str] = (),
    epochs: int = EPOCHS,
    presets: str = "faces32",
    model: str | None = None,
) -> Config:
    """The training config of ``method`` on ``task`` in the collapse regime: the task's preset for the
    method from ``configs/PRESETS/``, ``epochs`` epochs with a checkpoint every ``eval_every`` (all kept; HRF's
    windows a third of the epochs each), then ``overrides``. ``model``: the base model (default
    ``hrf:PRESETS``, the model the presets are for)."""
    _, suffix, extra = METHODS[method]
    extra = [x.replace(THIRDS, str([-(-epochs // 3)] * 3)) for x in extra]  # a third of the epochs per window
    budget = [
        f"model.path={json.dumps(model or f'hrf:{presets}')}",
        f"train.seed={seed}",
        f"train.max_epochs={epochs}",
        f"output.checkpoint_every={eval_every}",
        f"output.keep_checkpoints={max(1, epochs // eval_every)}",
        "output.grid_every=0",
        *extra,
        *([f"train.kl_beta={FRONTIER_BETA[task]}"] if method in FRONTIER_METHODS else []),
    ]
    return load_config(preset_path(f"{presets}/{task}-{suffix}"), budget + list(overrides))
