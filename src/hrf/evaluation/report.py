"""A metrics report as markdown and figures: the tables of ``metrics.md`` and Figures 1, 5 and 7."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hrf.evaluation.metrics import REFERENCE

LEGEND = (
    "Rewards: mean ± standard error. Vendi: score [95% bootstrap interval, centred on the score]. IS: mean ± std "
    "over splits."
)
# Said only under a table that has such columns.
LEGEND_DISTANCE = (
    " KD/KID: mean ± std over random subsets. FD/KD on features other than Inception pool3 are not FID/KID values."
)
LEGEND_FACTORS = " Factor metrics use the domain classifier's predicted high-level factors."


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    v = entry["value"]
    text = f"{v:.4g}"
    if entry["err"] is not None and not math.isnan(entry["err"]):
        text += f" ± {entry['err']:.2g}"
    if entry["ci"] is not None:
        text += f" [{entry['ci'][0]:.4g}, {entry['ci'][1]:.4g}]"
    return text


DISTANCE_PREFIXES = ("fd/", "kid/", "precision/", "recall/", "density/", "coverage/")


def _table(report: dict, keys: list[str], rows: list[str]) -> list[str]:
    lines = [
        "| model | n | " + " | ".join(report["labels"][k] for k in keys) + " |",
        "| --- | --- |" + " --- |" * len(keys),
    ]
    for name in rows:
        cells = " | ".join(_cell(report["models"][name].get(k)) for k in keys)
        lines.append(f"| {name} | {report['extra'][name]['n']} | {cells} |")
    return lines


def metrics_markdown(report: dict, include_detail: bool = False) -> str:
    """The report as markdown, one row per image set: rewards and diversity, then distances to the reference."""
    present = [
        k
        for k in report["labels"]
        if any(k in m and (include_detail or not m[k]["detail"]) for m in report["models"].values())
    ]
    own = [k for k in present if not k.startswith(DISTANCE_PREFIXES)]
    lines = ["## Rewards and diversity", "", *_table(report, own, list(report["models"]))]
    distance = [k for k in present if k.startswith(DISTANCE_PREFIXES)]
    if distance:
        rows = [m for m in report["models"] if m != REFERENCE]
        lines += ["", "## Distance to the reference set", "", *_table(report, distance, rows)]
    legend = LEGEND + (LEGEND_DISTANCE if distance else "")
    legend += LEGEND_FACTORS if any(k.startswith("factors/") for k in present) else ""
    return "\n".join(lines) + "\n\n" + legend + "\n"


def report_figures(report: dict, images_by_set: dict[str, torch.Tensor], out_dir: Path) -> list[Path]:
    """Sample grids, and from a report made with ``return_arrays``: Figures 1, 5 and 7 as PNGs.

    Figure 1 projects the first embedder's features of the first and last model, marking the first
    model's best sample under the first reward; Figure 5 plots the first reward against the first
    embedder's Vendi score (sets named GROUP/NAME share a colour per GROUP); Figure 7 the Vendi score of
    growing prefixes of each set.
    """
    from hrf.evaluation.plots import (
        figure_embeddings,
        figure_incremental_vendi,
        figure_reward_vs_vendi,
        sample_grids,
    )
    from hrf.evaluation.vendi import incremental_vendi

    paths = sample_grids(images_by_set, out_dir)
    arrays = report["arrays"]
    emb = next(iter(arrays["features"]))
    emb_label = report["config"]["embedder_labels"][emb]
    feats = arrays["features"][emb]
    models = [m for m in feats if m != REFERENCE]
    rewards = list(arrays["rewards"][models[0]])
    with_reference = list(feats)
    if rewards:
        first, last = models[0], models[-1]
        best = int(np.argmax(arrays["rewards"][first][rewards[0]]))
        chosen = {first: feats[first]} | ({last: feats[last]} if last != first else {})
        paths.append(
            figure_embeddings(
                chosen,
                out_dir / "figure1_embeddings.png",
                best=(first, best),
                title=f"PCA of {emb_label} features; star: best {rewards[0]}",
            )
        )
        points = []
        for m in with_reference:
            entry_r, entry_v = report["models"][m][f"reward/{rewards[0]}"], report["models"][m][f"vendi/{emb}"]
            ci = entry_v["ci"] or [entry_v["value"]] * 2
            points.append(
                {
                    "label": m,
                    "group": m.split("/")[0],
                    "reward": entry_r["value"],
                    "reward_err": entry_r["err"],
                    "vendi": entry_v["value"],
                    "vendi_err": (max(entry_v["value"] - ci[0], 0.0), max(ci[1] - entry_v["value"], 0.0)),
                }
            )
        paths.append(figure_reward_vs_vendi(points, out_dir / "figure5_reward_vs_vendi.png", rewards[0], emb_label))
    n = min(len(f) for f in feats.values())
    sizes = np.unique(np.linspace(min(2, n), n, num=min(n - 1, 40) if n > 2 else 1).astype(int))
    curves = {m: incremental_vendi(f[:n], sizes) for m, f in feats.items()}
    paths.append(figure_incremental_vendi(sizes, curves, out_dir / "figure7_incremental_vendi.png", label=emb_label))
    return paths
