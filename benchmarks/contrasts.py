"""Every method against DDPO_IS in a finished Pareto study: Welch differences over seeds, Holm-adjusted.

    python benchmarks/contrasts.py benchmarks/results/pareto      # prints contrasts.md, writes contrasts.json

For each task, method and quantity (the reward gain and each diversity fraction of ``pareto.json``'s rows),
the difference of means method − DDPO_IS over seeds, its Welch standard error, the difference in standard
errors, the two-sided Welch p-value, and the p-value Holm-adjusted over every diversity contrast of the
file (the family a reader scans). These are endpoint comparisons at equal budgets, not at matched reward:
the reward row says how far apart the rewards are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hrf.evaluation.matched import holm, welch

QUANTITIES = {
    "reward_gain": "reward gain",
    "vendi/pixels/fraction": "Vendi (pixels) / base",
    "vendi/domain/fraction": "Vendi (domain) / base",
    "is/domain/fraction": "IS (domain) / base",
    "factors/entropy/fraction": "factor entropy / base",
    "factors/coverage/fraction": "combo coverage / base",
}
BASELINE = "ddpo"


def contrasts(rows: list[dict]) -> list[dict]:
    """Method − DDPO_IS for every task, method and quantity, with Holm over the diversity contrasts."""
    out = []
    for base in (r for r in rows if r["method"] == BASELINE):
        for row in (r for r in rows if r["task"] == base["task"] and r["method"] != BASELINE):
            for key, label in QUANTITIES.items():
                w = welch(row[key]["values"], base[key]["values"])
                out.append(
                    {
                        "task": row["task"],
                        "method": row["label"],
                        "quantity": label,
                        "key": key,
                        "diff": w["diff"],
                        "se": w["se"],
                        "diff_in_se": w["diff"] / w["se"] if w["se"] else None,
                        "p": w["p"],
                        "ci": w["ci"],
                        "n": [w["n_a"], w["n_b"]],
                    }
                )
    family = [c for c in out if c["key"] != "reward_gain"]
    for c, p in zip(family, holm([c["p"] for c in family]), strict=True):
        c["p_holm"] = p
    return out


def markdown(items: list[dict]) -> str:
    lines = [
        "Method − DDPO_IS over seeds (Welch). `d/se`: the difference in standard errors. Holm: adjusted over "
        f"the {sum('p_holm' in c for c in items)} diversity contrasts of this table.",
        "",
        "| task | method | quantity | difference [95 % CI] | d/se | p | Holm p |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in items:
        holm_p = f"{c['p_holm']:.3g}" if "p_holm" in c else "—"
        lines.append(
            f"| {c['task']} | {c['method']} | {c['quantity']} | {c['diff']:+.3f} "
            f"[{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | {c['diff_in_se']:+.1f} | {c['p']:.3g} | {holm_p} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / "pareto.json").is_file():
        print("usage: python benchmarks/contrasts.py STUDY_DIR (a directory holding pareto.json)", file=sys.stderr)
        return 2
    study = Path(args[0])
    items = contrasts(json.loads((study / "pareto.json").read_text())["rows"])
    (study / "contrasts.json").write_text(json.dumps(items, indent=1))
    text = markdown(items)
    (study / "contrasts.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
