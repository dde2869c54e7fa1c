"""scripts/gpu_check.sh on this machine: the CPU rows pass; without CUDA every CUDA row is SKIPPED."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_its_cpu_rows_and_skips_cuda_without_a_gpu():
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [ln.split() for ln in done.stdout.splitlines() if ln.startswith(("cpu ", "cuda "))]
    cpu = [r for r in table if r[0] == "cpu"]
    assert len(cpu) == 11 and all("PASS" in r for r in cpu)  # 9 presets, resume, 2 processes
    if not torch.cuda.is_available():
        cuda = [r for r in table if r[0] == "cuda"]
        assert len(cuda) == 28 and all("SKIPPED" in r for r in cuda)
