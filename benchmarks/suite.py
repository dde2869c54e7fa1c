"""How long the test suite takes, and its ten slowest tests.

    python benchmarks/suite.py [--fast] [--workers N] [--out FILE] [-- PYTEST ARGS]
    python benchmarks/suite.py --results benchmarks/RESULTS.md   # the tables of the committed rows, no run

Runs ``pytest -q`` (``--fast``: ``-m "not slow"``, the fast tier) in a fresh interpreter with one thread per
process, as ``.ci/run`` does, on ``--workers`` pytest-xdist worker processes (default 2, the suite's own
``-n 2``; 0: one process), and prints and writes JSON: the wall time, the worker count, the pass/fail counts,
the summed test time (over all workers) and the ten slowest tests (setup + call + teardown, from pytest's
JUnit XML, which xdist's workers feed too). Targets on 2 idle cores: the whole suite within 5 minutes, the
fast tier within 60 s. Arguments after ``--`` go to pytest (e.g. a test file, to measure one file).
``--results`` writes the committed rows (``results/suite_all.json``, ``results/suite_fast.json`` and
``benchmarks/demo.py``'s ``results/demo.json``) as tables into RESULTS.md, between its ``benchmark-rows``
markers, without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = {"all": 300.0, "fast": 60.0}


def slowest(junit_xml: Path, count: int = 10) -> tuple[list[dict], dict[str, int], float]:
    """The ``count`` slowest test cases of a JUnit XML report, the counts of each outcome and the summed time."""
    cases = []
    outcomes = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        outcomes[outcome] += 1
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        cases.append({"test": name, "seconds": round(float(case.get("time", 0.0)), 2), "outcome": outcome})
    total = round(sum(c["seconds"] for c in cases), 1)
    return sorted(cases, key=lambda c: -c["seconds"])[:count], outcomes, total


def run_suite(fast: bool, pytest_args: list[str], workers: int = 2) -> dict:
    """Run the suite once in a child interpreter on ``workers`` xdist workers; returns the benchmark row."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
        command += ["-n", str(workers)] + (["-m", "not slow"] if fast else []) + pytest_args
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        tests, outcomes, total = slowest(xml) if xml.is_file() else ([], {}, 0.0)
    tier = "fast" if fast else "all"
    return {
        "tier": tier,
        "pytest_args": ["-n", str(workers)] + (["-m", "not slow"] if fast else []) + pytest_args,
        "workers": workers,
        "seconds": round(seconds, 1),
        "test_seconds_summed": total,
        "target_seconds": TARGET_SECONDS[tier],
        "exit_code": done.returncode,
        "outcomes": outcomes,
        "slowest": tests,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "summary_line": (done.stdout.strip().splitlines() or [""])[-1],
    }


def emit_row(row: dict, out: str | Path | None) -> None:
    """Write a benchmark row as strict JSON to ``out`` (atomically, making its folder), or print it."""
    if out:
        from hrf.atomic import write_json

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), row)
        print(f"wrote {out}")
    else:
        print(json.dumps(row, indent=2))


def rows_markdown(results: Path = RESULTS) -> str:
    """The suite's and the demo's committed rows as two tables, each target met or not."""
    lines = ["| tier | wall | tests summed | passed / skipped | target |", "| --- | --- | --- | --- | --- |"]
    for name, label in (("suite_all", "whole suite"), ("suite_fast", 'fast (`-m "not slow"`)')):
        if (path := results / f"{name}.json").is_file():
            row = json.loads(path.read_text())
            met = "met" if row["seconds"] <= row["target_seconds"] else "missed"
            counts = row["outcomes"]
            lines.append(
                f"| {label} | **{row['seconds']:.1f} s** | {row['test_seconds_summed']:.1f} s | "
                f"{counts.get('passed', 0)} / {counts.get('skipped', 0)} | {row['target_seconds']:.0f} s ({met}) |"
            )
    if (path := results / "demo.json").is_file():
        row = json.loads(path.read_text())
        met = "met" if row["seconds"] <= row["target_seconds"] else "missed"
        lines += [
            "",
            f"`{' '.join(['hrf demo', *row['demo_args']])}`: **{row['seconds']:.1f} s** (target "
            f"{row['target_seconds']:.0f} s, {met}; exit code {row['exit_code']}), by phase:",
            "",
            "| phase | seconds |",
            "| --- | --- |",
        ]
        lines += [f"| {phase} | {seconds:.1f} |" for phase, seconds in row["phases"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help='the fast tier only (-m "not slow")')
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (-n; default 2, 0: one process)")
    parser.add_argument("--out", default=None, help="also write the JSON row to this file")
    parser.add_argument("--results", type=Path, default=None, help="write the committed rows' tables into this file")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    opts = parser.parse_args()
    if opts.results:
        sys.path.insert(0, str(Path(__file__).parent))
        from frontier import insert_report  # one marker writer for every RESULTS.md section

        insert_report(opts.results, rows_markdown(), "benchmark-rows")
        print(f"wrote the committed rows into {opts.results}")
        return 0
    row = run_suite(opts.fast, opts.pytest_args, opts.workers)
    print(
        f"{row['tier']} tier: {row['seconds']:.1f} s on {row['workers']} workers (target "
        f"{row['target_seconds']:.0f} s; {row['test_seconds_summed']:.0f} s of tests summed); {row['summary_line']}"
    )
    for case in row["slowest"]:
        print(f"{case['seconds']:>8.2f} s  {case['test']}")
    emit_row(row, opts.out)
    return row["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
