"""hrf as an installed library: presets found by name, the version defined once, a fast ``hrf --help``."""

from __future__ import annotations

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
