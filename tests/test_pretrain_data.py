"""``hrf pretrain --data PATH``: a folder of PNG/JPEG images or a .npz array, loaded, cropped, resized and
trained on; every kind of unusable data is one line that names it, and nothing is written."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from hrf.cli.main import main
from hrf.cli.pretrain import BUILT_IN
from hrf.data.images import center_square, load_images, resize_square, to_size
from hrf.errors import HrfError
from hrf.training.pretrain import DATASETS, data_pool


def _pixels(h: int, w: int, c: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def _folder(root, sizes=((40, 30), (24, 24), (17, 50)), mode="RGB"):
    """Images of several sizes in a folder with a subfolder (PNG and JPEG)."""
    (root / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        arr = _pixels(h, w, 3 if mode == "RGB" else 1, i)
        img = Image.fromarray(arr if mode == "RGB" else arr[:, :, 0], mode)
        img.save(root / ("sub" if i % 2 else ".") / f"img{i}.{'jpg' if i == 2 else 'png'}")
    return root


def test_the_cli_names_the_same_built_in_sets_as_the_trainer():
    assert BUILT_IN == DATASETS


def test_center_square_and_resize():
    img = np.arange(4 * 6 * 1, dtype=np.uint8).reshape(1, 4, 6, 1)
    np.testing.assert_array_equal(center_square(img)[0, :, :, 0], img[0, :, 1:5, 0])
    np.testing.assert_array_equal(to_size(img, 4)[0, 0].numpy(), img[0, :, 1:5, 0])  # same size: the crop itself
    # A flat image stays flat at any size; a same-size resize is the identity.
    flat = torch.full((1, 3, 13, 13), 0.3)
    for size in (4, 13, 20):
        torch.testing.assert_close(resize_square(flat, size), torch.full((1, 3, size, size), 0.3))
    noise = torch.rand(2, 1, 8, 8)
    assert resize_square(noise, 8) is noise


def test_a_folder_loads_every_image_at_one_size(tmp_path):
    images = load_images(_folder(tmp_path / "imgs"), 8)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"not an image")  # hidden files are not data
    (tmp_path / "imgs" / "notes.txt").write_text("neither are other files")
    assert torch.equal(load_images(tmp_path / "imgs", 8), images)


def test_an_npz_loads_grey_and_colour(tmp_path):
    np.savez(tmp_path / "grey.npz", images=np.stack([_pixels(12, 12, 1, s) for s in range(5)]))
    np.savez(tmp_path / "rgb.npz", images=np.stack([_pixels(10, 14, 3, s) for s in range(4)]))
    assert load_images(tmp_path / "grey.npz", 8).shape == (5, 1, 8, 8)
    assert load_images(tmp_path / "rgb.npz", 8).shape == (4, 3, 8, 8)


def _bad_data(tmp_path):
    """(path, expected error fragment) for each kind of unusable data."""
    corrupt = _folder(tmp_path / "corrupt")
    (corrupt / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "empty").mkdir()
    mixed = _folder(tmp_path / "mixed")
    Image.fromarray(_pixels(9, 9, 1, 0)[:, :, 0], "L").save(mixed / "zz-grey.png")
    np.savez(tmp_path / "shape.npz", images=np.zeros((3, 8, 8), np.uint8))
    np.savez(tmp_path / "dtype.npz", images=np.zeros((3, 8, 8, 3), np.float32))
    np.savez(tmp_path / "key.npz", pixels=np.zeros((3, 8, 8, 3), np.uint8))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    return [
        (corrupt, f"cannot read image '{corrupt / 'sub' / 'broken.png'}'"),
        (tmp_path / "empty", "holds no PNG or JPEG images"),
        (mixed, f"mixes grey ('{mixed / 'zz-grey.png'}') and colour"),
        (tmp_path / "shape.npz", "must be a non-empty (N, H, W, C) uint8 array with C = 1 or 3, got shape (3, 8, 8)"),
        (tmp_path / "dtype.npz", "dtype float32"),
        (tmp_path / "key.npz", "has no 'images' array (it holds: pixels)"),
        (tmp_path / "junk.npz", "cannot read"),
        (tmp_path / "missing", "--data"),
    ]


def test_unusable_data_is_one_line_and_writes_nothing(tmp_path, capsys):
    for path, message in _bad_data(tmp_path / "data"):
        with pytest.raises(HrfError) as exc:
            data_pool(str(path), 8)
        assert message in str(exc.value) and "\n" not in str(exc.value), (path, exc.value)
        out = tmp_path / "out" / path.name
        assert main(["pretrain", "--data", str(path), "--out", str(out), "--steps", "2", "--size", "8"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (path, err)
        assert not out.exists(), path


def test_a_folder_trains_resumes_and_is_recorded(tmp_path, capsys):
    data = _folder(tmp_path / "imgs")
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(data), "--out", str(out), "--size", "8", "--batch-size", "4", "--steps"]
    assert main([*args, "2"]) == 0
    assert main([*args, "4", "--resume"]) == 0
    info = json.loads((out / "model" / "hrf_info.json").read_text())
    assert info["config"]["data"] == str(data.resolve()) and info["data_images"] == 3
    assert len(info["data_sha256"]) == 64 and info["steps_done"] == 4
    assert [(c["from_step"], c["to_step"]) for c in info["commands"]] == [(0, 2), (2, 4)]
    assert json.loads((out / "model" / "config.json").read_text())["in_channels"] == 3
    # The same folder with other pixels is another data set: the run refuses to continue on it. One image is
    # overwritten at its own size, so the count and shapes stay and only the hash can tell.
    count = len(list(data.rglob("*.*")))
    Image.fromarray(_pixels(40, 30, 3, 9)).save(data / "img0.png")
    assert len(list(data.rglob("*.*"))) == count
    capsys.readouterr()
    assert main([*args, "6", "--resume"]) == 2
    assert "changed since the run" in capsys.readouterr().err


def test_an_npz_trains_a_grey_model(tmp_path):
    np.savez(tmp_path / "grey.npz", images=np.stack([_pixels(12, 12, 1, s) for s in range(6)]))
    out = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(tmp_path / "grey.npz"),
                "--out",
                str(out),
                "--size",
                "8",
                "--batch-size",
                "4",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    assert json.loads((out / "model" / "config.json").read_text())["in_channels"] == 1


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(HrfError, match=r"needs scikit-learn; run: pip install 'hrf\[real\]'"):
        data_pool("digits", 16)
