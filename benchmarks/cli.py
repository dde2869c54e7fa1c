"""How fast the ``hrf`` command answers without doing work: ``--help``, every ``COMMAND --help``, an argument error.

    python benchmarks/cli.py [--quick] [--repeats N] [--out benchmarks/results/cli.json]

Each row is the median wall time of ``repeats`` fresh interpreters (``python -m hrf ...``), so it includes
Python's start-up, and lists the heavy libraries (torch, diffusers, accelerate) the command imported: none
should be, since they are imported only inside the commands that use them. Target: about a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "diffusers", "accelerate")
TARGET_SECONDS = 1.0
# Runs ``hrf`` in-process, then prints which heavy libraries that loaded, so one interpreter gives both answers.
PROBE = (
    "import sys\nfrom hrf.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def invocations(quick: bool) -> dict[str, list[str]]:
    """Label -> arguments of each measured ``hrf`` call."""
    from hrf.cli.main import COMMANDS

    commands = COMMANDS[:2] if quick else COMMANDS
    return {
        "hrf --help": ["--help"],
        **{f"hrf {c} --help": [c, "--help"] for c in commands},
        "hrf train --bogus (argument error)": ["train", "--bogus"],
    }


def measure(args: list[str], repeats: int) -> dict:
    """Median wall seconds over ``repeats`` fresh interpreters, and the heavy modules the call imported."""
    times, heavy = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - start)
        heavy = res.stderr.rsplit("HEAVY=", 1)[-1].strip()
    return {"seconds": statistics.median(times), "heavy_imports": heavy.split(",") if heavy else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two commands and one repeat (CI)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per row")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cli.json"))
    opts = parser.parse_args()
    repeats = 1 if opts.quick else opts.repeats
    rows = {label: measure(args, repeats) for label, args in invocations(opts.quick).items()}
    print(f"{'invocation':<40} {'seconds':>8}  heavy imports (target {TARGET_SECONDS:.0f} s, none)")
    for label, row in rows.items():
        print(f"{label:<40} {row['seconds']:>8.2f}  {', '.join(row['heavy_imports']) or '-'}")
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeats": repeats, "target_seconds": TARGET_SECONDS, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
