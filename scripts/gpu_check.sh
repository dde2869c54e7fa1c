#!/usr/bin/env bash
# hrf's self-check of the GPU path: run it first on a new machine.
#
#   scripts/gpu_check.sh [--keep DIR] [--only ROW ...]   (PYTHON=/path/to/python to pick the interpreter)
#
# Every paper preset trains one tiny epoch with `hrf train` (on CUDA in bf16, fp16 and with 2 processes, on a
# random UNet of google/ddpm-celebahq-256's architecture; on the CPU on a tiny stand-in), and every command
# (sample, evaluate with each embedder, pretrain, inject, transition, frontier) runs once per device. Each row
# prints the device the command used; CUDA rows are SKIPPED without a GPU. Prints a pass/fail table and exits
# 1 if any row failed. The rows and their checks are in src/hrf/cli/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m hrf.cli.gpu_check "$@"
