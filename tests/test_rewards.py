"""Rewards: JPEG sizes against PIL directly, the [-1,1] mapping, the aesthetic reward on tiny weights."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hrf.errors import HrfError
from hrf.images import to_uint8_hwc
from hrf.rewards import make_reward, validate_rewards
from hrf.rewards.jpeg import jpeg_sizes_kb
from tests.helpers import tiny_clip_dir


def test_flat_image_is_more_compressible_than_noise():
    flat = torch.zeros(1, 3, 32, 32)
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    comp = make_reward("jpeg_compressibility")
    r, info = comp(torch.cat([flat, noise]))
    assert r[0] > r[1]
    inc, _ = make_reward("jpeg_incompressibility")(torch.cat([flat, noise]))
    torch.testing.assert_close(inc, -r)


def test_minus_half_is_grey_not_black():
    pixels = to_uint8_hwc(torch.full((1, 3, 4, 4), -0.5))
    assert pixels.dtype == np.uint8 and (pixels == 64).all()  # (−0.5 + 1) / 2 · 255 = 63.75 → 64
    assert (to_uint8_hwc(torch.full((1, 1, 2, 2), 1.0)) == 255).all()


def test_sizes_match_direct_pil():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    expected = []
    for img in images:
        arr = ((img.permute(1, 2, 0).numpy() + 1) / 2 * 255).round().clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=95)
        expected.append(len(buf.getvalue()) / 1000)
    np.testing.assert_allclose(jpeg_sizes_kb(images), expected)


def test_unknown_reward_suggests_close_match():
    with pytest.raises(HrfError, match="did you mean 'jpeg_compressibility'"):
        make_reward("jpeg_compressability")


def test_user_reward_import_errors_are_one_line():
    with pytest.raises(HrfError, match="cannot import module"):
        make_reward("no_such_module_xyz:fn")
    with pytest.raises(HrfError, match="has no attribute"):
        make_reward("math:no_such_fn")


def test_validate_rewards_shape():
    with pytest.raises(HrfError, match="shape"):
        validate_rewards(torch.zeros(3, 1), 3)
    assert validate_rewards([1.0, 2.0], 2).shape == (2,)


def test_aesthetic_end_to_end_with_tiny_random_weights(tmp_path):
    from hrf.rewards.aesthetic import AestheticMLP

    clip_dir = tiny_clip_dir(tmp_path)
    torch.manual_seed(0)
    torch.save(AestheticMLP(12).state_dict(), tmp_path / "mlp.pth")
    fn = make_reward("aesthetic", clip_path=str(clip_dir), mlp_path=str(tmp_path / "mlp.pth"))
    images = torch.rand(5, 3, 16, 16) * 2 - 1
    scores, _ = fn(images)
    assert scores.shape == (5,) and torch.isfinite(scores).all()
    assert scores.std() > 0  # different images, different scores


def test_aesthetic_missing_paths_give_one_line(tmp_path):
    with pytest.raises(HrfError, match=r"reward\.options\.clip_path: a local CLIPModel directory"):
        make_reward("aesthetic", clip_path=str(tmp_path / "nope"), mlp_path=None)
    clip_dir = tiny_clip_dir(tmp_path)
    with pytest.raises(HrfError, match=r"reward\.options\.mlp_path: the LAION MLP"):
        make_reward("aesthetic", clip_path=str(clip_dir), mlp_path=str(tmp_path / "missing.pth"))
