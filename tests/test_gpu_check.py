"""scripts/gpu_check.sh on this machine: the CPU rows pass and name the CPU; without CUDA every CUDA row is
SKIPPED; a command that runs elsewhere than its row's device fails its row."""

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
    # 9 presets, resume, 2 processes; 6 Stable Diffusion presets and their resume; sample, evaluate × 5
    # embedders, pretrain, inject, transition, frontier
    assert len(cpu) == 11 + 7 + 10
    ran = [r for r in cpu if "SKIPPED" not in r]
    assert all("PASS" in r and r[r.index("PASS") + 1].startswith("cpu") for r in ran), done.stdout[-3000:]
    names = {" ".join(r[: r.index("PASS")]) for r in ran}
    assert {"cpu sample", "cpu evaluate pixels", "cpu evaluate domain", "cpu pretrain", "cpu inject"} <= names
    assert {"cpu transition", "cpu 2 processes", "cpu frontier", "cpu sd resume"} <= names
    if not torch.cuda.is_available():
        cuda = [r for r in table if r[0] == "cuda"]
        assert len(cuda) == 28 + 6 + 10 and all("SKIPPED" in r for r in cuda)


def test_only_runs_the_rows_it_names_and_refuses_a_text_that_names_no_row(capsys):
    from hrf.cli.gpu_check import main, rows, select

    table = rows(0, False)
    assert select(table, ["cpu sample", "cpu evaluate"]) == []
    running = [r.name for r in table if r.result != "SKIPPED"]
    assert running[0] == "cpu sample" and {r.split()[1] for r in running} == {"sample", "evaluate"}
    assert all(r.note == "not selected by --only" for r in table if r.name not in running and not r.skip)
    # a row this machine cannot run keeps its own reason
    assert all(r.result == "SKIPPED" and r.note == r.skip != "" for r in table if r.device == "cuda")

    with pytest.raises(SystemExit) as stop:
        main(["--only", "cpu sample", "tpu sample"])
    assert stop.value.code == 2 and "--only 'tpu sample' names no row" in capsys.readouterr().err


def test_a_row_fails_when_its_command_names_another_device():
    from hrf.cli.gpu_check import Row, _finish, device_used

    assert device_used("hrf sample: device cuda:0, per_sample noise") == "cuda:0"
    row = Row("cuda sample", "cuda", command=("sample",))
    _finish(row, subprocess.CompletedProcess([], 0, "hrf sample: device cpu, per_sample noise\n", ""))
    assert row.result == "FAIL" and "cpu" in row.note
    _finish(row, subprocess.CompletedProcess([], 0, "hrf sample: device cuda:0, per_sample noise\n", ""))
    assert row.result == "PASS" and row.used == "cuda:0"
    _finish(row, subprocess.CompletedProcess([], 2, "", "hrf sample: error: boom\n"))
    assert row.result == "FAIL" and row.note == "hrf sample: error: boom"
