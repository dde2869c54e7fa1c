"""How long ``hrf demo`` takes, phase by phase.

    python benchmarks/demo.py [--out-dir runs/demo-bench] [--out FILE] [-- DEMO ARGS]

Runs ``hrf demo`` in a fresh interpreter into ``--out-dir`` (emptied first, so nothing is reused) and prints
and writes JSON: the command's wall time, the demo's own phase times (its report's ``timings_seconds``: each
training run, the samples summed over the processes, training and sampling as a whole, the metrics of the
final models and of the checkpoints), the thread counts it ran with and the machine. Target on 2 idle cores:
6 minutes. Arguments after ``--`` go to ``hrf demo`` (e.g. ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from suite import emit_row  # noqa: E402  (one writer for the benchmark rows)

TARGET_SECONDS = 360.0


def demo_row(out_dir: Path, seconds: float, exit_code: int, demo_args: list[str]) -> dict:
    """The benchmark row of a finished demo run in ``out_dir`` (its ``metrics.json``) that took ``seconds``."""
    metrics = out_dir / "metrics.json"
    report = json.loads(metrics.read_text()) if metrics.is_file() else {}
    demo = report.get("demo", {})
    return {
        "demo_args": demo_args,
        "seconds": round(seconds, 1),
        "target_seconds": TARGET_SECONDS,
        "exit_code": exit_code,
        "phases": report.get("timings_seconds", {}),
        "threads": demo.get("threads"),
        "num_eval": demo.get("num_eval"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="runs/demo-bench", help="the demo's output directory (emptied first)")
    parser.add_argument("--out", default=None, help="also write the JSON row to this file")
    parser.add_argument("demo_args", nargs="*", help="extra hrf demo arguments (after --)")
    opts = parser.parse_args()
    out_dir = Path(opts.out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [sys.executable, "-m", "hrf", "demo", "--out", str(out_dir), "--no-progress", *opts.demo_args]
    start = time.perf_counter()
    done = subprocess.run(command)
    row = demo_row(out_dir, time.perf_counter() - start, done.returncode, opts.demo_args)
    print(f"hrf demo: {row['seconds']:.1f} s (target {TARGET_SECONDS:.0f} s)")
    for phase, seconds in row["phases"].items():
        print(f"{seconds:>8.1f} s  {phase}")
    emit_row(row, opts.out)
    return row["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
