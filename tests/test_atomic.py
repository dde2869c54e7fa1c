"""Atomic writes: a finished block replaces the file, a failed one leaves it and no temporary behind."""

import numpy as np
import pytest

from hrf.atomic import atomic_path, write_text_atomic


def test_write_replaces_and_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "cell.json"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["cell.json"]


def test_failed_block_keeps_old_file_and_removes_temporary(tmp_path):
    path = tmp_path / "cell.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_temporary_is_invisible_to_suffix_globs_while_written(tmp_path):
    path = tmp_path / "cell.json"
    with atomic_path(path) as tmp:
        tmp.write_text("{}")
        assert list(tmp_path.glob("*.json")) == []
        assert tmp.name.endswith(".tmp")


def test_npz_through_an_open_file_lands_at_the_exact_path(tmp_path):
    path = tmp_path / "samples.npz"
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, images=np.arange(6, dtype=np.uint8))
    with np.load(path) as f:
        assert f["images"].tolist() == list(range(6))
    assert [p.name for p in tmp_path.iterdir()] == ["samples.npz"]
