"""The paper's figures as PNG files (matplotlib, Agg backend): 1, 5, 6, 7, the phase-transition curve,
reward–diversity curves over training, sample grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Rows projected on the two leading principal components (centred, via SVD)."""
    X = np.asarray(features, dtype=np.float64)
    X = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    return X @ vt[:2].T


def figure_embeddings(
    features: dict[str, np.ndarray], path: str | Path, best: tuple[str, int] | None = None, title: str = ""
) -> Path:
    """Figure 1: one 2-D PCA projection of several sample sets' embeddings; ``best`` = (set, index) marked."""
    names = list(features)
    proj = pca_2d(np.concatenate([features[n] for n in names]))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    start = 0
    for name in names:
        pts = proj[start : start + len(features[name])]
        if best is not None and name == best[0]:
            ax.scatter(
                *pts[best[1]], marker="*", s=250, c="red", edgecolors="k", zorder=3, label=f"reward-best of {name}"
            )
        ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.6, label=name)
        start += len(features[name])
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "2-D PCA of sample embeddings")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_reward_vs_vendi(points: Sequence[dict], path: str | Path, reward_label: str, vendi_label: str) -> Path:
    """Figure 5: reward (y) vs Vendi score (x) with error bars, one colour per ``group`` (regime/method).

    Each point is a dict with ``label``, ``group``, ``reward``, ``reward_err``, ``vendi`` and ``vendi_err``
    (the error as a half-width or as a (low, high) pair of distances).
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    groups = list(dict.fromkeys(p["group"] for p in points))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, group in enumerate(groups):
        pts = [p for p in points if p["group"] == group]
        xerr = np.array([np.broadcast_to(p["vendi_err"], 2) for p in pts]).T
        ax.errorbar(
            [p["vendi"] for p in pts],
            [p["reward"] for p in pts],
            xerr=xerr,
            yerr=[p["reward_err"] for p in pts],
            fmt="o",
            capsize=3,
            color=colours[g % len(colours)],
            label=group,
        )
        for p in pts:
            ax.annotate(p["label"], (p["vendi"], p["reward"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"Vendi score ({vendi_label})")
    ax.set_ylabel(reward_label)
    ax.set_title("Reward vs diversity")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_training_curves(
    curves: Mapping[str, Sequence[dict]],
    path: str | Path,
    reward_label: str,
    diversity_label: str,
    level=None,
    frontier: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Reward gain (x) against a diversity fraction (y) along training, one line per method; each point a
    dict with ``epoch``, ``gain`` and ``fraction``, labelled with its epoch. ``level``, when given, is drawn
    as the reward gain at which the methods are compared; ``frontier`` as (gain, fraction) points of the
    base model's KL-optimal frontier (hrf.evaluation.frontier)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if frontier:
        ax.plot(*zip(*frontier, strict=True), "k-", lw=2.5, alpha=0.7, label="frontier (tilted base)")
    for name, pts in curves.items():
        line = ax.plot([p["gain"] for p in pts], [p["fraction"] for p in pts], "o-", label=name)[0]
        for p in pts:
            ax.annotate(
                str(p["epoch"]),
                (p["gain"], p["fraction"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
                color=line.get_color(),
            )
    if level is not None:
        ax.axvline(level, color="grey", linestyle=":", label="matched reward")
    ax.set_xlabel(f"{reward_label}: gain over the base model")
    ax.set_ylabel(f"{diversity_label} / base model's")
    ax.set_title("Reward and diversity over training (labels: epochs)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_injection(curves: dict[int, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Figure 6: cosine distance of x̂0 (injected vs original) per step index, one line per injection step.

    ``curves[k_inject] = (mean, std)`` over samples, each of length T (step index 0 = noise).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, (mean, std) in sorted(curves.items()):
        steps = np.arange(len(mean))
        (line,) = ax.plot(steps, mean, label=f"switch at k={k}")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=line.get_color())
    ax.set_xlabel("step index k (0 = pure noise)")
    ax.set_ylabel("cosine distance of predicted x̂0")
    ax.set_title(title or "Injection sampling: fine-tuned → base model")
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_incremental_vendi(
    sizes: Sequence[int] | np.ndarray,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    path: str | Path,
    mark: int | None = None,
    label: str = "",
) -> Path:
    """Figure 7: Vendi score vs number of samples, one line per set, optional vertical line at ``mark``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(sizes, values, label=name)
    if mark is not None:
        ax.axvline(mark, color="k", ls="--", lw=1, label=f"{mark} samples")
    ax.legend(fontsize=8)
    ax.set_xlabel("number of samples")
    ax.set_ylabel(f"Vendi score{f' ({label})' if label else ''}")
    ax.set_title("Incremental Vendi score")
    return _save(fig, path)


def figure_transition(
    grid: Sequence[int], curves: dict[str, np.ndarray], path: str | Path, ylabel: str, levels: Sequence[float] = ()
) -> Path:
    """The phase transition: change rate (or distance) vs start step index, with the crossing levels."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, values in curves.items():
        ax.plot(grid, values, marker="o", ms=3, label=name)
    for level in levels:
        ax.axhline(level, color="grey", ls=":", lw=1)
    ax.set_xlabel("start step index k (0 = pure noise)")
    ax.set_ylabel(ylabel)
    ax.set_title("How much of the image is still undecided at step k")
    ax.legend(fontsize=8)
    return _save(fig, path)


def sample_grids(images_by_model: dict[str, torch.Tensor], out_dir: str | Path, max_images: int = 64) -> list[Path]:
    """One PNG grid per model (``grid_<name>.png``, unsafe characters as "_"), about 256 px per row of 8."""
    import re

    from hrf.images import save_grid

    paths = []
    for name, images in images_by_model.items():
        path = Path(out_dir) / f"grid_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        save_grid(images[:max_images], path, scale=max(1, 32 // images.shape[-1]))
        paths.append(path)
    return paths
