"""One device rule and batch-size-free noise, for every command, checked on the CPU.

"The same images" means the same noise exactly and images equal up to the float rounding of the UNet's
batched kernels (a convolution may sum in another order at another batch size: ~1e-6 here, against
differences of order 1 when the noise itself changes, as the sequential scheme's does).

Commands are run with ``--device cpu:0``: a real device, and one no code uses by default, so every network
recorded moving to "cpu:0" was put there by the command's device and nothing was left on a hard-coded
CPU. ``hrf train``, which takes accelerate's devices, runs with a GPU simulated: with
``torch.cuda.is_available`` patched to True, ignoring ``--device cpu`` would pick CUDA and crash on this
CUDA-less torch. The meta device stands in for the GPU where a network only has to land on it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from hrf.cli.main import main
from hrf.evaluation.samples import sample_or_load
from hrf.images import to_uint8_hwc
from hrf.models import load_pipeline_parts, make_ddim_scheduler, resolve_device, save_model, tiny_unet
from hrf.sampling import SampleNoise, make_noise, sample_images, step_sigmas
from hrf.sampling.noise import gaussian
from tests.helpers import celebahq_like_scheduler
from tests.test_gpu_path import DrawsOnTheGeneratorsDevice


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_model(tiny_unet(8, seed=0), celebahq_like_scheduler(), tmp_path_factory.mktemp("m") / "model"))


# ---------------------------------------------------------------- the legacy scheme is what hrf drew before


def _old_way(unet, scheduler, num: int, seed: int, batch_size: int) -> torch.Tensor:
    """Images as hrf drew them before noise schemes were named: one CPU generator, each batch's initial noise
    and then each step's noise drawn in turn, x_prev = μ + σ·z (μ alone on the deterministic last step)."""
    from hrf.sampling import ddim_step_with_logprob

    gen = torch.Generator().manual_seed(seed)
    cfg = unet.config
    out = []
    for i in range(0, num, batch_size):
        b = min(batch_size, num - i)
        x = torch.randn((b, cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=gen, dtype=torch.float32)
        for t in scheduler.timesteps:
            eps = unet(x, t).sample
            _, _, mean = ddim_step_with_logprob(scheduler, eps, t, x, prev_sample=x, return_mean=True)
            sigma = step_sigmas(scheduler, t)
            if float(sigma) == 0:
                x = mean
            else:
                z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
                x = mean + sigma.to(x.dtype) * z
        out.append(x.float())
    return torch.cat(out)


@torch.no_grad()
def test_sequential_noise_reproduces_the_collapse_studys_images(model_dir, tmp_path):
    """benchmarks/collapse.py's call (1,000 samples, its seed, batch 250) with the legacy scheme gives the
    images the code before noise schemes gave, bit for bit."""
    unet, scheduler = load_pipeline_parts(model_dir, 3)
    expected = to_uint8_hwc(_old_way(unet.eval(), scheduler, 1000, 2026113001, 250))
    sample_or_load(model_dir, tmp_path / "samples.npz", 1000, 2026113001, 3, batch_size=250, noise="sequential")
    with np.load(tmp_path / "samples.npz") as cached:
        assert np.array_equal(cached["images"], expected)
        assert str(cached["noise"]) == "sequential" and int(cached["noise_batch_size"]) == 250


class _Halve(torch.nn.Module):
    """A stand-in UNet of elementwise float ops only, so its images are the same bits on every CPU."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.config = type("Config", (), {"in_channels": 3, "sample_size": 4})()

    def forward(self, x, t):
        return type("Out", (), {"sample": x * self.w})()


@torch.no_grad()
def test_sequential_noise_matches_a_hash_frozen_before_the_schemes():
    """The hash was made by the code before noise schemes existed (sample_images with a CPU generator)."""
    ddim = make_ddim_scheduler(celebahq_like_scheduler(), 4)
    images = sample_images(_Halve(), ddim, 10, make_noise("sequential", 2026113001, 10), 4)
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()
    assert digest == "d416d461d5f8c5812c486af0eec3a69fb2f5e7be76cb2c0dd1f12326072012e3"


# ---------------------------------------------------------------- per-sample noise


@torch.no_grad()
def test_per_sample_images_do_not_depend_on_batch_size_or_count(unet8, ddim40):
    ddim = make_ddim_scheduler(celebahq_like_scheduler(), 5)
    a = sample_images(unet8, ddim, 8, make_noise("per_sample", 7, 8), batch_size=4)
    b = sample_images(unet8, ddim, 8, make_noise("per_sample", 7, 8), batch_size=8)
    c = sample_images(unet8, ddim, 3, make_noise("per_sample", 7, 3), batch_size=2)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(a[:3], c, atol=1e-4)
    legacy = [sample_images(unet8, ddim, 8, make_noise("sequential", 7, 8), batch_size=bs) for bs in (4, 8)]
    assert (legacy[0] - legacy[1]).abs().max() > 0.5  # what the per-sample scheme fixes


def test_per_sample_noise_is_drawn_on_the_cpu_and_moved():
    """The same initial noise on every device: drawn on the CPU (meta stands in for the GPU)."""
    on_cpu = gaussian(SampleNoise.for_samples(3, range(4)), (4, 3, 8, 8), "cpu")
    moved = gaussian(SampleNoise.for_samples(3, range(4)), (4, 3, 8, 8), "meta")
    assert moved.device.type == "meta" and moved.shape == on_cpu.shape
    gen = torch.Generator().manual_seed(3)
    assert gaussian(gen, (2, 3), "meta").device.type == "meta"  # a CPU generator for a GPU model: no error
    with DrawsOnTheGeneratorsDevice() as mode:
        gaussian(SampleNoise.for_samples(3, range(4)), (4, 3, 8, 8), "meta")
        gaussian(torch.Generator().manual_seed(3), (2, 3), "meta")
    assert mode.violations == []


def test_sample_cache_key_holds_the_noise(model_dir, tmp_path):
    """Item 3 of issue 26: the cache cannot mix noises. Per-sample images are the same at batch 4 and 8 (the
    cache is right to serve either); the sequential scheme's batch size is part of its key."""
    path = tmp_path / "s.npz"
    a = sample_or_load(model_dir, path, 8, 11, 3, batch_size=4)
    b = sample_or_load(model_dir, tmp_path / "fresh.npz", 8, 11, 3, batch_size=8)
    assert torch.allclose(a, b, atol=1 / 127.5)  # at most one uint8 level apart
    seq4 = sample_or_load(model_dir, path, 8, 11, 3, batch_size=4, noise="sequential")
    seq8 = sample_or_load(model_dir, path, 8, 11, 3, batch_size=8, noise="sequential")
    assert (seq4 - seq8).abs().max() > 0.5
    with np.load(path) as cached:
        assert int(cached["noise_batch_size"]) == 8 and str(cached["device"]) == "cpu"


# ---------------------------------------------------------------- the device rule


def test_resolve_device_rule(monkeypatch):
    assert resolve_device(None) == resolve_device("auto") == torch.device("cpu")  # no CUDA here
    assert resolve_device("meta") == torch.device("meta")
    from hrf.errors import HrfError

    with pytest.raises(HrfError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(HrfError, match="unknown device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


def test_models_embedders_classifiers_and_rewards_land_on_the_device_given(model_dir):
    """The meta device stands in for the GPU: every network a command builds is put there."""
    from hrf.benchmarks import get_benchmark
    from hrf.data.classifier import load_face_classifier
    from hrf.evaluation.embedders import classifier_embedder, make_embedder
    from hrf.evaluation.transition import factor_measure
    from hrf.rewards import make_reward, register_reward
    from hrf.rewards.registry import REWARDS

    unet, _ = load_pipeline_parts(model_dir, 3, device="meta")
    assert next(unet.parameters()).device.type == "meta"
    emb = classifier_embedder(load_face_classifier(), "meta")
    assert emb.device == "meta"
    assert next(load_face_classifier().parameters()).device.type == "cpu"  # the cached classifier is not moved
    assert make_embedder("domain", "meta").device == "meta"
    factor_measure(get_benchmark("faces"), "meta")
    assert next(load_face_classifier().parameters()).device.type == "cpu"

    seen = {}

    @register_reward("_device_probe")
    def probe(device: str = "cpu"):
        seen["device"] = device
        return lambda images: torch.zeros(len(images))

    try:
        make_reward("_device_probe", default_device=torch.device("meta"))
        assert seen["device"] == "meta"  # the device of the model being scored
        make_reward("_device_probe", default_device="meta", device="cpu")
        assert seen["device"] == "cpu"  # unless the user says otherwise
    finally:
        REWARDS.pop("_device_probe")


@pytest.fixture
def gpu_machine(monkeypatch):
    """torch says a GPU is there: a command that ignored --device cpu would move to CUDA and crash."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.fixture
def moves(monkeypatch):
    """Every ``Module.to(device)`` call, as (class name, device)."""
    seen: list[tuple[str, str]] = []
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        device = kwargs.get("device", args[0] if args else None)
        if isinstance(device, (str, torch.device)):
            seen.append((type(self).__name__, str(device)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return seen


PROBED: list[str] = []  # devices the probe reward was built for


def device_probe(device: str = "cpu"):
    """A reward factory with a ``device`` option (as the aesthetic reward): records where it was put."""
    PROBED.append(str(device))
    return lambda images: images.flatten(1).mean(1)


def _json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def faces_model(tmp_path_factory):
    """A 32×32 RGB model, so that the faces benchmark's classifiers can read its images."""
    return str(save_model(tiny_unet(32, seed=0), celebahq_like_scheduler(), tmp_path_factory.mktemp("f") / "model"))


def test_sample_runs_where_told_and_same_images_at_batch_4_and_8(model_dir, tmp_path, moves, capsys):
    outs = []
    for bs in (4, 8):
        out = tmp_path / f"b{bs}"
        with DrawsOnTheGeneratorsDevice() as mode:
            args = ["sample", "--model", model_dir, "--num", "8", "--steps", "3", "--out", str(out)]
            assert main([*args, "--batch-size", str(bs), "--device", "cpu:0"]) == 0
        assert mode.violations == []
        assert _json(out / "sample_args.json")["device_used"] == "cpu:0"
        outs.append(np.load(out / "samples.npz")["images"])
    assert np.abs(outs[0].astype(int) - outs[1]).max() <= 1
    assert ("UNet2DModel", "cpu:0") in moves
    assert "device cpu:0" in capsys.readouterr().out


def test_evaluate_runs_where_told_and_same_metrics_at_batch_4_and_8(faces_model, tmp_path, moves, capsys):
    PROBED.clear()
    reports = []
    for bs in (4, 8):
        out = tmp_path / f"b{bs}"
        args = ["evaluate", "--model", faces_model, "--num", "8", "--steps", "3", "--out", str(out), "--n-boot", "0"]
        args += ["--benchmark", "faces", "--embedder", "pixels", "--is-splits", "1"]
        args += ["--reward", "jpeg_compressibility", "tests.test_device:device_probe"]
        assert main([*args, "--batch-size", str(bs), "--device", "cpu:0"]) == 0
        report = _json(out / "metrics.json")
        assert report["config"]["device"] == "cpu:0" and report["config"]["noise"] == "per_sample"
        assert _json(out / "evaluate_args.json")["device_used"] == "cpu:0"
        reports.append({k: v["value"] for k, v in report["models"][next(iter(report["models"]))].items()})
    assert reports[0] == pytest.approx(reports[1], rel=1e-3)
    for network in ("UNet2DModel", "FaceClassifier", "MixerClassifier"):  # the model, domain and evaluator
        assert (network, "cpu:0") in moves
    assert PROBED == ["cpu:0", "cpu:0"]  # the reward followed the command's device
    assert "device cpu:0" in capsys.readouterr().out


def test_evaluate_puts_every_embedder_where_told(faces_model, tmp_path, moves):
    """The optional networks (EfficientNet-Lite0, Inception) where installed, and a CLIP directory."""
    from hrf.evaluation.embedders import efficientnet_installed, make_embedder
    from tests.helpers import tiny_clip_dir

    names = ["domain", f"clip:{tiny_clip_dir(tmp_path)}"]
    names += ["efficientnet_lite0"] if efficientnet_installed() else []
    try:
        make_embedder("fid_inception")
        names.append("fid_inception")
    except Exception:  # not installed here
        pass
    for name in names:
        moves.clear()
        emb = make_embedder(name, "cpu:0")
        assert emb.device == "cpu:0" and any(device == "cpu:0" for _, device in moves), name


def test_inject_runs_where_told_and_sample_i_does_not_depend_on_num(model_dir, tmp_path, moves):
    finals = []
    for num in (4, 8):
        out = tmp_path / f"n{num}"
        args = ["inject", "--model", model_dir, "--base", model_dir, "--num", str(num), "--steps", "4"]
        assert main([*args, "--inject", "1", "2", "--out", str(out), "--device", "cpu:0"]) == 0
        assert _json(out / "inject.json")["config"]["device_used"] == "cpu:0"
    assert sum(m == ("UNet2DModel", "cpu:0") for m in moves) == 4  # fine-tuned and base, twice
    from hrf.evaluation.inject import switched_trajectory

    unet, scheduler = load_pipeline_parts(model_dir, 4)
    for num in (4, 8):
        finals.append(switched_trajectory(unet.eval(), unet, scheduler, num, 0, 4).images[:4])
    assert torch.allclose(*finals, atol=1e-4)


@pytest.mark.parametrize("benchmark", ["none", "faces"])
def test_transition_runs_where_told_and_same_curves_at_batch_4_and_8(
    model_dir, faces_model, tmp_path, moves, benchmark
):
    curves = []
    model = faces_model if benchmark == "faces" else model_dir
    for bs in (4, 8):
        out = tmp_path / f"b{bs}"
        args = ["transition", "--model", model, "--out", str(out), "--steps", "4", "--grid", "0", "2"]
        args += ["--refs", "3", "--branches", "3", "--benchmark", benchmark, "--embedder", "pixels"]
        assert main([*args, "--batch-size", str(bs), "--device", "cpu:0"]) == 0
        report = _json(out / "transition.json")
        assert report["config"]["device_used"] == "cpu:0"
        curves.append(report["curves"])
    assert ("UNet2DModel", "cpu:0") in moves
    if benchmark == "faces":
        assert ("FaceClassifier", "cpu:0") in moves
    assert curves[0].keys() == curves[1].keys()
    for key, values in curves[0].items():
        assert values == pytest.approx(curves[1][key], rel=1e-3, abs=1e-6)


def test_pretrain_runs_where_told(tmp_path, moves):
    out = tmp_path / "run"
    args = ["pretrain", "--data", "faces", "--out", str(out), "--steps", "2", "--size", "8", "--batch-size", "2"]
    assert main([*args, "--warmup-steps", "1", "--device", "cpu:0"]) == 0
    assert _json(out / "model" / "hrf_info.json")["device"] == "cpu:0"
    assert ("UNet2DModel", "cpu:0") in moves


def test_pretrain_puts_model_and_batches_on_the_device(tmp_path, monkeypatch):
    """The meta device as the GPU: the UNet's first forward sees its weights and its input there."""
    import hrf.models
    from hrf.training import pretrain as pt

    seen = []

    def record(module, args):
        seen.append((next(module.parameters()).device.type, args[0].device.type))
        raise KeyboardInterrupt  # one forward is enough

    def hooked(*args):
        unet = tiny_unet(8)
        unet.register_forward_pre_hook(record)
        return unet

    monkeypatch.setattr(hrf.models, "unet_from_preset", hooked)
    cfg = pt.PretrainConfig(data="faces", size=8, steps=2, batch_size=2, warmup_steps=1)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(cfg, tmp_path / "run", progress=False, device="meta")
    assert seen == [("meta", "meta")]


def test_train_runs_where_told_and_the_reward_follows(tmp_path, model_dir, gpu_machine, moves, capsys):
    from tests.helpers import write_run_config

    PROBED.clear()
    cfg = write_run_config(
        tmp_path / "c.toml", model_dir, train={"max_epochs": 1}, reward={"name": "tests.test_device:device_probe"}
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert _json(out / "derived.json")["device"] == "cpu"
    assert PROBED == ["cpu"]  # the trainer's device, passed to the reward
    assert ("UNet2DModel", "cpu") in moves
    assert "device cpu" in capsys.readouterr().out


def test_demo_passes_its_device_on(tmp_path, monkeypatch):
    """The demo hands its device to training and to the evaluation (the run itself is tests/test_demo.py's)."""
    import hrf.experiments.demo as demo

    calls = {}

    def fake_demo(out, *args, device=None, **kwargs):
        calls["device"] = device
        (out / "REPORT.md").write_text("report")

    monkeypatch.setattr(demo, "run_demo", fake_demo)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quick", "--device", "cpu:0"]) == 0
    assert calls["device"] == torch.device("cpu:0")


def test_demo_trains_and_evaluates_where_told(tmp_path, monkeypatch):
    import hrf.evaluation.pipeline as pipeline
    import hrf.experiments.demo as demo

    seen = {}

    def fake_train(cfg, out, progress, device):
        seen["train"] = device
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"last_reward_mean": 0.0, "epochs": 1}))
        return out / "final"

    monkeypatch.setattr(demo, "train_to_completion", fake_train)

    def fake_sample(spec, path, num, seed, steps, device):
        seen.setdefault("sample", set()).add(device)

    monkeypatch.setattr(demo, "_sample", fake_sample)

    def fake_evaluate(models, **kwargs):
        seen["evaluate"] = kwargs["device"]
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate_models", fake_evaluate)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(tmp_path / "d", quick=True, progress=False, device="cpu:0", jobs=1)  # jobs=1: in this process
    assert seen == {"train": "cpu", "sample": {"cpu:0"}, "evaluate": torch.device("cpu:0")}
