"""Gain over base, evaluator-Vendi fraction of base, and the frontier's fraction at that gain: RUN/summary."""

import json
import sys
from importlib import resources
from pathlib import Path

from hrf.evaluation.frontier import read_frontier

run = Path(sys.argv[1])
models = json.loads((run / "eval" / "metrics.json").read_text())["models"]
shipped = resources.files("hrf") / "assets" / "models" / "faces32" / "frontier" / "T10_faces_smile.json"
front = json.loads(shipped.read_text())
base = models["base"]
out = {}
for name, v in models.items():
    gain = v["reward/faces_smile"]["value"] - base["reward/faces_smile"]["value"]
    out[name] = {
        "reward": v["reward/faces_smile"]["value"],
        "reward_err": v["reward/faces_smile"].get("err"),
        "gain": gain,
        "vendi_evaluator": v["vendi/evaluator"]["value"],
        "vendi_evaluator_frac": v["vendi/evaluator"]["value"] / base["vendi/evaluator"]["value"],
        "frontier_frac_at_gain": read_frontier(front, gain, "frac/vendi/evaluator"),
    }
print(json.dumps(out, indent=2))
