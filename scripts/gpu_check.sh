#!/usr/bin/env bash
# hrf's self-check of the GPU path: run it first on a new machine.
#
#   scripts/gpu_check.sh [--keep DIR]          (PYTHON=/path/to/python to pick the interpreter)
#
# Every paper preset (src/hrf/configs/paper/*) trains one tiny epoch (2 references, T = 4, one or two probe candidates) with
# `hrf train`, as a user would run it:
#   - on CUDA in bf16 and in fp16, and with 2 processes (torchrun), on a randomly initialised UNet of
#     google/ddpm-celebahq-256's architecture at 256×256 (113.7 M parameters; no download);
#   - on the CPU, on a 0.26 M-parameter stand-in at 32×32, so that the check is short where there is no GPU.
# Resume rows train 2 epochs, delete the second checkpoint and resume from the first: on the CPU the
# resumed epoch must reproduce the original one exactly. One 2-process row also runs on the CPU (gloo).
# The aesthetic presets train on the JPEG reward here: the check is of the training path, not of the
# CLIP weights. CUDA rows are SKIPPED without a GPU (fp16-only and 2-GPU rows likewise). Prints a
# pass/fail table; exits 1 if any row failed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" - "$@" <<'PY'
import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from hrf.config import load_config
from hrf.config import PRESETS as PRESET_DIR
from hrf.models import save_model, tiny_unet
from hrf.models.configs import CELEBAHQ_SCHEDULER, CELEBAHQ_UNET

PRESETS = sorted((PRESET_DIR / "paper").glob("*.toml"))  # the installed package's presets


@dataclass
class Row:
    name: str
    preset: Path
    device: str  # "cpu" | "cuda"
    precision: str = "no"
    processes: int = 1
    resume: bool = False
    result: str = "SKIPPED"
    seconds: float = 0.0
    note: str = ""


def rows(cuda: int, bf16: bool) -> list[Row]:
    """Every row of the table, with the CUDA rows this machine cannot run already marked SKIPPED."""
    out = [Row(f"cpu {p.stem}", p, "cpu") for p in PRESETS]
    out.append(Row("cpu resume", PRESETS[0], "cpu", resume=True))
    out.append(Row("cpu 2 processes", next(p for p in PRESETS if p.stem.endswith("hrfd")), "cpu", processes=2))
    for p in PRESETS:
        out += [Row(f"cuda bf16 {p.stem}", p, "cuda", "bf16"), Row(f"cuda fp16 {p.stem}", p, "cuda", "fp16"),
                Row(f"cuda 2 processes {p.stem}", p, "cuda", "auto", processes=2)]
    out.append(Row("cuda fp16 resume", PRESETS[0], "cuda", "fp16", resume=True))
    for r in out:
        if r.device == "cuda":
            need = r.processes
            r.note = ("no CUDA device" if not cuda else f"needs {need} GPUs" if cuda < need
                      else "no bf16 on this GPU" if r.precision == "bf16" and not bf16 else "")
            r.result = "SKIPPED" if r.note else ""
        else:
            r.result = ""
    return out


def overrides(row: Row, model: Path, epochs: int) -> list[str]:
    """The preset shrunk to one tiny epoch: 2 references, T = 4, windows and candidates within 0..2."""
    cfg = load_config(row.preset)
    sets = [f"model.path={model}", f"model.mixed_precision={row.precision}", "sampling.num_steps=4",
            "train.references=2", f"train.branches={min(cfg.train.branches, 2)}", "train.sample_batch_size=4",
            "train.train_batch_size=8", f"train.max_epochs={epochs}", "output.keep_checkpoints=2"]
    if cfg.schedule.kind == "windows":
        sets += ["schedule.windows=[[0,1],[1,2]]", "schedule.iterations=[1,1]"]
    if cfg.schedule.kind == "dynamic":
        sets += ["schedule.candidates=[0,2]", "schedule.probe_samples=1"]
    if cfg.reward.name == "aesthetic":
        sets += ["reward.name=jpeg_compressibility", "reward.options={}"]
    return [a for s in sets for a in ("--set", s)]


def train(row: Row, args: list[str], port: int) -> subprocess.CompletedProcess:
    """``hrf train ARGS`` for a row: in this process for one CPU process on a machine without CUDA (imports
    dominate these tiny runs), else in a subprocess (CUDA hidden for CPU rows; torchrun for 2 processes)."""
    argv = ["train", "--no-progress", *args]
    if row.device == "cpu" and row.processes == 1 and not torch.cuda.is_available():
        from hrf.cli.main import main as hrf_main

        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = hrf_main(argv)
        except Exception as exc:  # a crash is a failed row, not a crashed check
            code, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    launch = [sys.executable, "-m", "hrf"]
    if row.processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(row.processes),
                  "--master_port", str(port), "-m", "hrf"]
    env = dict(os.environ)
    if row.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run(launch + argv, env=env, capture_output=True, text=True)


def epoch_lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in m.items() if not k.startswith("seconds")} for m in lines]


def run_row(row: Row, model: Path, work: Path, port: int) -> None:
    """Run one row and fill in its result and note."""
    out = work / row.name.replace(" ", "-")
    epochs = 2 if row.resume else 1
    done = train(row, ["--config", str(row.preset), "--out", str(out), *overrides(row, model, epochs)], port)
    if done.returncode == 0 and row.resume:
        first = epoch_lines(out)
        shutil.rmtree(out / "checkpoints" / "epoch_000002")
        shutil.rmtree(out / "final")
        done = train(row, ["--resume", str(out)], port)
        if done.returncode == 0:
            again = epoch_lines(out)
            if len(again) != 2:
                row.result, row.note = "FAIL", f"{len(again)} epochs after resume, expected 2"
                return
            if row.device == "cpu" and again != first:
                row.result, row.note = "FAIL", "the resumed epoch differs from the original"
                return
            row.note = f"epoch 2 reward {first[1]['reward_mean']:.6g} → {again[1]['reward_mean']:.6g}"
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
        row.result, row.note = "FAIL", (errors[-1] if errors else f"exit code {done.returncode}")[:200]
        return
    row.result = "PASS"


def stand_in(kind: str, root: Path) -> Path:
    """A saved model: the celebahq-256 architecture at 256 px ("cuda") or a tiny UNet at 32 px ("cpu")."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=256, in_channels=3, out_channels=3, **CELEBAHQ_UNET) if kind == "cuda" \
        else tiny_unet(32)
    return save_model(unet, DDPMScheduler(**CELEBAHQ_SCHEDULER), root / f"model-{kind}")


def main() -> int:
    parser = argparse.ArgumentParser(description="hrf's GPU self-check")
    parser.add_argument("--keep", type=Path, help="keep the runs in this directory (default: a temporary one)")
    args = parser.parse_args()
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bf16 = bool(cuda) and torch.cuda.is_bf16_supported()
    table = rows(cuda, bf16)
    work = args.keep or Path(tempfile.mkdtemp(prefix="hrf-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    models = {kind: stand_in(kind, work) for kind in {r.device for r in table if r.result != "SKIPPED"}}
    print(f"hrf gpu check: {cuda} CUDA device(s){' with bf16' if bf16 else ''}; runs in {work}", flush=True)
    for i, row in enumerate(table):
        if row.result == "SKIPPED":
            continue
        t0 = time.perf_counter()
        run_row(row, models[row.device], work, 29600 + i)
        row.seconds = time.perf_counter() - t0
        print(f"  {row.result:7} {row.name} ({row.seconds:.0f} s)", flush=True)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r.name) for r in table)
    print(f"\n{'row':{width}}  result   seconds  note")
    for r in table:
        print(f"{r.name:{width}}  {r.result:7}  {r.seconds:7.1f}  {r.note}")
    failed = sum(r.result == "FAIL" for r in table)
    print(f"\n{sum(r.result == 'PASS' for r in table)} passed, {failed} failed, "
          f"{sum(r.result == 'SKIPPED' for r in table)} skipped")
    return 1 if failed else 0


sys.exit(main())
PY
