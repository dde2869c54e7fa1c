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


# ---------------------------------------------------------------- user rewards: module:function


def brightness(images):
    return images.mean(dim=(1, 2, 3))


def brightness_factory():
    """A zero-argument factory, ddpo-pytorch's style."""
    return brightness


def scaled(scale: float = 1.0):
    def fn(images):
        return images.mean(dim=(1, 2, 3)) * scale, {"scale": scale}

    return fn


class Scaled:
    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def __call__(self, images):
        return images.double().mean(dim=(1, 2, 3)) * self.scale


class NeedsPath:
    def __init__(self, path):
        self.path = path

    def __call__(self, images):
        return images.mean(dim=(1, 2, 3))


def test_a_class_is_always_a_factory_even_with_a_required_argument_not_in_the_options():
    """One rule for classes: constructed from reward.options, so a missing constructor argument is named at
    start-up instead of the class being called on the images."""
    with pytest.raises(HrfError, match=r"reward.options do not fit its factory .*'path'.*its options: path"):
        make_reward("tests.test_rewards:NeedsPath")
    rewards, _ = make_reward("tests.test_rewards:NeedsPath", path="x")(_images())
    assert rewards.shape == (4,)


def _images(n=4):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _brightness64(images, scale=1.0):
    return images.double().mean(dim=(1, 2, 3)) * scale


@pytest.mark.parametrize(
    "spec,options,scale",
    [
        ("tests.test_rewards:brightness", {}, 1.0),  # the reward itself: its first parameter takes the images
        ("tests.test_rewards:brightness_factory", {}, 1.0),  # no parameter: a factory
        ("tests.test_rewards:scaled", {}, 1.0),  # only defaults: a factory
        ("tests.test_rewards:scaled", {"scale": 2.0}, 2.0),
        ("tests.test_rewards:Scaled", {"scale": -3.0}, -3.0),  # a class: a factory of callables
    ],
)
def test_user_reward_is_the_reward_or_its_factory_by_signature(spec, options, scale):
    images = _images()
    rewards, info = make_reward(spec, **options)(images)
    assert rewards.dtype == torch.float32 and rewards.shape == (4,) and isinstance(info, dict)
    torch.testing.assert_close(rewards.double(), _brightness64(images, scale), rtol=1e-6, atol=1e-7)


def _raises(images):
    raise RuntimeError("reward server unreachable\nsecond line of detail")


def _returns_text(images):
    return "good"


def _returns_none(images):
    return None


def _bad_info(images):
    return images.mean(dim=(1, 2, 3)), ["not", "a", "dict"]


def _triple(images):
    return images.mean(dim=(1, 2, 3)), {}, {}


def _per_pixel(images):
    return images


def _factory_raises():
    raise FileNotFoundError("weights.pt")


def _factory_returns_number():
    return 3.0


NOT_A_FUNCTION = 7


@pytest.mark.parametrize(
    "attr,options,cause",
    [
        ("_raises", {}, "raised RuntimeError: reward server unreachable"),
        ("_returns_text", {}, "returned str, not numbers"),
        ("_returns_none", {}, "returned NoneType, not numbers"),
        ("_bad_info", {}, "returned a list as its info"),
        ("_triple", {}, "returned a tuple of 3"),
        ("_per_pixel", {}, "returned shape (4, 3, 8, 8) for 4 images"),
        ("_factory_raises", {}, "building it raised FileNotFoundError: weights.pt"),
        ("_factory_returns_number", {}, "the factory returned a float, not a function"),
        (
            "scaled",
            {"scael": 2.0},
            "do not fit its factory (got an unexpected keyword argument 'scael'); its options: scale",
        ),
        (
            "brightness",
            {"scale": 2.0},
            "takes the images as its first parameter, so it takes no reward.options (scale)",
        ),
        ("NOT_A_FUNCTION", {}, "is not a function (it is of type int)"),
    ],
)
def test_user_reward_failures_are_one_line_naming_reward_and_cause(attr, options, cause):
    with pytest.raises(HrfError) as caught:
        make_reward(f"tests.test_rewards:{attr}", **options)(_images())
    message = str(caught.value)
    assert f"reward 'tests.test_rewards:{attr}'" in message and cause in message and "\n" not in message


def flaky_factory():
    """A zero-argument factory whose reward fails while HRF_TEST_REWARD says so (a server outage, a NaN)."""
    import os

    def fn(images):
        mode = os.environ.get("HRF_TEST_REWARD")
        if mode == "raise":
            raise ConnectionError("reward server down")
        r = images.mean(dim=(1, 2, 3))
        return r * float("nan") if mode == "nan" else r

    return fn


@pytest.mark.slow
def test_failing_user_reward_stops_in_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    from diffusers import UNet2DModel

    from hrf.cli.main import main
    from hrf.models import save_model, tiny_unet
    from tests.helpers import celebahq_like_scheduler, write_run_config

    model = save_model(tiny_unet(8), celebahq_like_scheduler(), tmp_path / "model")
    cfg = write_run_config(
        tmp_path / "c.toml", model, reward={"name": "tests.test_rewards:flaky_factory"}, output={"grid_every": 0}
    )
    quiet = ["--no-progress"]
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "a")] + quiet) == 0
    assert (
        main(["train", "--config", str(cfg), "--out", str(tmp_path / "b"), "--set", "train.max_epochs=1"] + quiet) == 0
    )
    for mode, cause in [("raise", "raised ConnectionError: reward server down"), ("nan", "non-finite values")]:
        monkeypatch.setenv("HRF_TEST_REWARD", mode)
        capsys.readouterr()
        assert main(["train", "--resume", str(tmp_path / "b"), "--set", "train.max_epochs=2"] + quiet) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "reward 'tests.test_rewards:flaky_factory'" in err[0] and cause in err[0], err
    monkeypatch.delenv("HRF_TEST_REWARD")
    assert main(["train", "--resume", str(tmp_path / "b"), "--set", "train.max_epochs=2"] + quiet) == 0
    straight, resumed = (UNet2DModel.from_pretrained(tmp_path / run / "final") for run in "ab")
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
