"""hrf as an installed library: presets found by name, the version defined once, a fast ``hrf --help``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hrf.config import load_config
from hrf.errors import HrfError
from hrf.experiments.runs import PRESETS, config_source, preset_names, preset_path


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

    assert main(["train", "--config", "faces32/compressibility-hrf", "--out", str(tmp_path / "r"),
                 "--set", "train.lr=-1"]) == 2
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


def test_help_and_argument_errors_import_no_heavy_library():
    """``hrf --help``, every ``COMMAND --help`` and a bad argument answer without torch, diffusers, accelerate."""
    bench = _cli_benchmark()
    for label, args in bench.invocations(quick=False).items():
        assert bench.measure(args, repeats=1)["heavy_imports"] == [], label


def test_the_cli_benchmark_writes_its_table(tmp_path):
    res = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "cli.py"),
                          "--quick", "--out", str(tmp_path / "cli.json")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / "cli.json").read_text())["rows"]
    assert set(rows) == {"hrf --help", "hrf sample --help", "hrf train --help", "hrf train --bogus (argument error)"}
    assert all(row["seconds"] > 0 for row in rows.values()) and "hrf --help" in res.stdout
