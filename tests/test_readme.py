"""The README cannot drift from the code: its commands and its Python quickstart run here, at tiny size.

Every command of the README's ``bash`` blocks is either run (in order, in a scratch directory, with options
appended that shrink it: later options override the README's) or listed in :data:`NOT_RUN` with the reason
and the test that covers it instead. A command the README gains that is in neither list fails the test.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from hrf.cli.main import main
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()

# Appended to each `hrf` subcommand the README shows, to run it in seconds: short chains, a few samples.
TINY_TRAIN = [
    "sampling.num_steps=5",
    "train.max_epochs=1",
    "train.references=2",
    "train.sample_batch_size=4",
    "train.train_batch_size=16",
    "output.grid_every=0",
]
TINY_HRF = ["schedule.windows=[[1,2]]", "schedule.iterations=[2]", "train.branches=2"]  # HRF's presets only
TINY = {
    "train": [],  # built by tiny_train
    "resume": ["--set", "train.max_epochs=2", "--no-progress"],
    "evaluate": ["--num", "6", "--steps", "4", "--embedder", "pixels", "--n-boot", "0", "--is-splits", "1"],
    "sample": ["--num", "4", "--steps", "4"],
    "pretrain": ["--steps", "2", "--size", "8", "--batch-size", "4", "--warmup-steps", "1"],
    "frontier": ["--num", "500", "--steps", "2", "--benchmark", "none", "--no-progress"],
}
# Commands shown but not run here, by their first words: why, and what runs instead.
NOT_RUN = {
    "bash scripts/setup.sh": "the set-up itself (what .ci/run does before the suite); hrf demo's pipeline runs "
    "at toy size in tests/test_demo.py (hrf demo --quick), the suite is this suite",
    "hrf train --config sd/": "needs Stable Diffusion's weights from the hub; tests/test_latent.py trains HRF "
    "and DDPO_IS with LoRA on a tiny random pipeline built from configs, and opens the adapters with "
    "load_lora_weights",
    "hrf evaluate --model base=runwayml/": "needs Stable Diffusion's weights; tests/test_latent.py evaluates "
    "per prompt on the tiny pipeline",
}


def tiny_train(words: list[str]) -> list[str]:
    """The options that shrink one README ``hrf train`` command (HRF's window schedule needs its own)."""
    overrides = TINY_TRAIN + ([] if any(w.endswith("-ddpo") for w in words) else TINY_HRF)
    return [*(word for o in overrides for word in ("--set", o)), "--no-progress"]


def bash_commands(text: str) -> list[str]:
    """Every command of the ``bash`` blocks of a markdown text: continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_every_readme_command_is_run_or_says_why_not():
    hrf_commands = 0
    for command in bash_commands(README):
        words = shlex.split(command)
        if words[0].startswith("PYTHONPATH="):
            words = words[1:]
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        assert words[0] == "hrf", f"README command not covered: {command}"
        assert words[1] in TINY or (words[1] == "train" and "--resume" in words), command
        hrf_commands += 1
    assert hrf_commands >= 6  # the quickstart's train, resume, evaluate, sample, pretrain


def _reward_module() -> str:
    """The README's example reward (the Python block that says it is ``my_reward.py``)."""
    (block,) = [b for b in python_blocks(README) if b.startswith("# my_reward.py")]
    return block


@pytest.mark.slow
def test_the_readme_commands_run_at_tiny_size(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # PYTHONPATH=. of the README's commands
    (tmp_path / "my_reward.py").write_text(_reward_module())
    (tmp_path / "my_photos").mkdir()
    for i in range(4):  # "a folder of PNG/JPEG files"
        Image.new("RGB", (12, 10), (40 * i, 80, 200 - 40 * i)).save(tmp_path / "my_photos" / f"{i}.png")
    ran = []
    for command in bash_commands(README):
        words = shlex.split(command)
        if words[0].startswith("PYTHONPATH="):
            words = words[1:]
        if words[0] != "hrf" or any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        kind = "resume" if "--resume" in words else words[1]
        assert main(words[1:] + (tiny_train(words) if kind == "train" else TINY[kind])) == 0, command
        ran.append(kind)
    assert sorted(set(ran)) == sorted(TINY)
    assert (tmp_path / "runs" / "hrf" / "final").is_dir() and (tmp_path / "runs" / "my-eval" / "metrics.json").is_file()
    assert len((tmp_path / "runs" / "ddpo" / "metrics.jsonl").read_text().splitlines()) == 2  # resumed to epoch 2


@pytest.mark.slow
def test_the_readme_python_quickstart_runs_on_a_tiny_run(tmp_path, monkeypatch, capsys):
    """The README's Python block, verbatim, with hrf's functions shrunk (same signatures, tiny sizes)."""
    import hrf
    from hrf.config import parse_override

    (block,) = [b for b in python_blocks(README) if b.startswith("import hrf")]
    load, evaluate, sample, frontier = hrf.load_config, hrf.evaluate, hrf.sample, hrf.frontier
    tiny = {".".join(keys): value for keys, value in map(parse_override, TINY_TRAIN + TINY_HRF)}
    monkeypatch.setattr(hrf, "load_config", lambda source, overrides=(): load(source, {**overrides, **tiny}))
    monkeypatch.setattr(
        hrf, "evaluate", lambda *a, **k: evaluate(*a, **k | dict(num=6, steps=4, n_boot=0, is_splits=1, progress=False))
    )
    monkeypatch.setattr(hrf, "sample", lambda model, num, **k: sample(model, num, **k | dict(steps=4)))
    tiny_frontier = dict(num=500, steps=2, benchmark="none", progress=False)
    monkeypatch.setattr(hrf, "frontier", lambda *a, **k: frontier(*a, **k | tiny_frontier))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "'epochs': 1" in printed and "base " in printed and "HRF " in printed
    assert (tmp_path / "runs" / "py-hrf" / "final").is_dir()
    assert (tmp_path / "runs" / "py-frontier" / "frontier_jpeg_compressibility.json").is_file()


def test_import_hrf_is_cheap_and_lists_the_api():
    import subprocess

    from tests.helpers import subprocess_env

    probe = (
        "import sys, pydoc, hrf\n"
        "text = pydoc.render_doc(hrf, renderer=pydoc.plaintext)\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'accelerate') if m in sys.modules))\n"
        "print(all(f in text for f in ('load_config(', 'train(', 'sample(', 'evaluate(')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_every_relative_link_of_the_readme_and_docs_exists():
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, missing
