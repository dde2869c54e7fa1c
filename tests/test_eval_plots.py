"""The figures: PCA projection by hand, and every figure writes a readable PNG."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hrf.evaluation import plots


def test_pca_2d_finds_the_spread_directions():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    X = np.outer(t, [3.0, 4.0, 0.0]) / 5 * 10 + rng.normal(size=(200, 3)) * [0.1, 0.1, 1.0]
    proj = plots.pca_2d(X)
    assert proj.shape == (200, 2)
    np.testing.assert_allclose(np.abs(np.corrcoef(proj[:, 0], t)[0, 1]), 1.0, atol=1e-3)
    assert proj[:, 0].var() > 50 * proj[:, 1].var()


def _png(path):
    with Image.open(path) as im:
        return im.size


def test_every_figure_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    feats = {"base": rng.normal(size=(20, 5)), "tuned": rng.normal(size=(20, 5)) + 1}
    assert _png(plots.figure_embeddings(feats, tmp_path / "f1.png", best=("base", 3)))[0] > 100
    points = [
        {"label": "a", "group": "g", "reward": 1.0, "reward_err": 0.1, "vendi": 2.0, "vendi_err": 0.2},
        {"label": "b", "group": "h", "reward": 2.0, "reward_err": 0.1, "vendi": 3.0, "vendi_err": (0.1, 0.3)},
    ]
    assert _png(plots.figure_reward_vs_vendi(points, tmp_path / "f5.png", "reward", "pixels"))[0] > 100
    curves = {2: (np.linspace(0, 1, 10), np.full(10, 0.1)), 5: (np.zeros(10), np.zeros(10))}
    assert _png(plots.figure_injection(curves, tmp_path / "f6.png"))[0] > 100
    assert _png(plots.figure_incremental_vendi([2, 5, 9], {"a": [1, 2, 2.5]}, tmp_path / "f7.png", mark=5))[0] > 100
    curve = {"x": np.array([1.0, 0.2])}
    assert _png(plots.figure_transition([0, 5], curve, tmp_path / "p.png", "rate", [0.5]))[0] > 100
    grids = plots.sample_grids({"m/1": torch.zeros(4, 3, 8, 8)}, tmp_path)
    assert [p.name for p in grids] == ["grid_m_1.png"] and _png(grids[0]) == ((2 * 9 + 1) * 4, (2 * 9 + 1) * 4)
