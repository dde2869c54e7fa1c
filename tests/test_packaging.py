"""hrf as an installed library: presets found by name, the version defined once, a fast ``hrf --help``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrf.config import PRESETS, config_source, load_config, preset_names, preset_path
from hrf.errors import HrfError


def test_presets_ship_inside_the_package():
    import hrf

    assert PRESETS.parent == Path(hrf.__file__).parent
    assert "faces32/compressibility-hrf" in preset_names()
    assert len(preset_names()) == len(list(PRESETS.rglob("*.toml"))) > 20


def test_a_preset_is_found_by_name_with_or_without_suffix():
    assert preset_path("faces32/compressibility-hrf") == preset_path("faces32/compressibility-hrf.toml")
    assert config_source("faces32/compressibility-hrf") == PRESETS / "faces32" / "compressibility-hrf.toml"


def test_an_unknown_preset_is_one_line_naming_the_presets():
    with pytest.raises(HrfError, match="no preset named 'faces32/nope'; presets: .*faces32/compressibility-hrf"):
        preset_path("faces32/nope")
    with pytest.raises(HrfError, match="no preset named 'nope'"):
        config_source("nope")


def test_a_file_path_wins_over_a_preset_name(tmp_path, monkeypatch):
    own = tmp_path / "faces32" / "compressibility-hrf.toml"
    own.parent.mkdir()
    own.write_text("[train]\nlr = 0.5\nbranches = 2\n")
    monkeypatch.chdir(tmp_path)
    assert config_source("faces32/compressibility-hrf.toml") == own.relative_to(tmp_path)
    assert load_config(config_source("faces32/compressibility-hrf.toml")).train.lr == 0.5
    # A missing *.toml that is no preset either stays a path, so load_config names the missing file.
    assert config_source("mine.toml").name == "mine.toml"


def test_hrf_train_takes_a_preset_name(tmp_path, capsys):
    """The CLI resolves the name: a bad --set on a named preset fails on the override, not on the name."""
    from hrf.cli.main import main

    assert (
        main(["train", "--config", "faces32/compressibility-hrf", "--out", str(tmp_path / "r"), "--set", "train.lr=-1"])
        == 2
    )
    assert "train.lr" in capsys.readouterr().err
    assert main(["train", "--config", "faces32/nope", "--out", str(tmp_path / "r")]) == 2
    assert "no preset named 'faces32/nope'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _cli_benchmark():
    """benchmarks/cli.py imported as a module (benchmarks/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "cli.py"
    spec = importlib.util.spec_from_file_location("cli_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_help_and_argument_errors_import_no_heavy_library():
    """``hrf --help``, every ``COMMAND --help`` and a bad argument answer without torch, diffusers, accelerate."""
    bench = _cli_benchmark()
    for label, args in bench.invocations(quick=False).items():
        assert bench.measure(args, repeats=1)["heavy_imports"] == [], label


def test_the_cli_benchmark_writes_its_table(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "benchmarks" / "cli.py"),
            "--quick",
            "--out",
            str(tmp_path / "cli.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / "cli.json").read_text())["rows"]
    assert set(rows) == {"hrf --help", "hrf sample --help", "hrf train --help", "hrf train --bogus (argument error)"}
    assert all(row["seconds"] > 0 for row in rows.values()) and "hrf --help" in res.stdout


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_finds_its_package_data(tmp_path):
    """Build a wheel, install it (not editable) into a fresh venv, and from another directory train a shipped preset
    on the shipped model and evaluate it with both shipped classifiers.

    Offline: the wheel is built with this interpreter's setuptools from a copy of the sources, and the fresh venv
    reaches the test venv's dependencies through a .pth line; .pth files are not read from a directory a .pth
    line adds, so the test venv's editable hrf stays invisible there.
    """
    import shutil
    import site
    import venv

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}  # no source tree
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("hrf-*.whl"))

    venv.create(tmp_path / "env")  # no pip of its own: this venv's pip installs into it (--python)
    python = tmp_path / "env" / "bin" / "python"
    env_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(env_site) / "test_venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import hrf, importlib.metadata as m; print(hrf.__file__, hrf.__version__, m.version('hrf'))"],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
        check=True,
    )
    location, version, installed = where.stdout.split()
    assert Path(location).is_relative_to(tmp_path / "env") and not Path(location).is_relative_to(root)
    assert version == installed
    # Every kind of package data, used from the installed wheel: a preset by name, the shipped model, the
    # domain classifier (the smile reward and the factor metrics) and the independent evaluator.
    train = subprocess.run(
        [tmp_path / "env" / "bin" / "hrf", "train", "--config", "faces32/smile-hrf", "--out", "run", "--no-progress"]
        + [x for o in INSTALLED_TINY for x in ("--set", o)],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
        timeout=1200,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    evaluate = subprocess.run(
        [python, "-c", INSTALLED_EVALUATE],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
        timeout=1200,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    report = json.loads((elsewhere / "eval" / "metrics.json").read_text())
    for name in ("base", "tuned"):
        metrics = report["models"][name]
        assert {"reward/faces_smile", "vendi/domain", "vendi/evaluator", "confidence/evaluator"} <= set(metrics)


# A tiny run of a shipped preset, and an evaluation through the Python API, for the installed-wheel test.
INSTALLED_TINY = [
    "sampling.num_steps=5",
    "schedule.windows=[[1,2]]",
    "schedule.iterations=[1]",
    "train.max_epochs=1",
    "train.references=2",
    "train.branches=2",
    "train.sample_batch_size=4",
    "train.train_batch_size=16",
    "output.grid_every=0",
]
INSTALLED_EVALUATE = (
    "import hrf\n"
    "hrf.evaluate({'base': 'hrf:faces32', 'tuned': 'run/final'}, 'eval', num=6, steps=5, rewards=['faces_smile'],\n"
    "             embedders=['pixels'], n_boot=0, is_splits=1, progress=False)\n"
)
