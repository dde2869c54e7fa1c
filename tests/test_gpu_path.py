"""The GPU path checked on a CPU: where random draws are made, start steps' devices, mixed precision."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from hrf.models import make_ddim_scheduler, tiny_unet
from hrf.sampling import start_states
from hrf.training.run_dir import prepare_run
from hrf.training.trainer import resolve_mixed_precision
from tests.helpers import celebahq_like_scheduler
from tests.test_trainer import _cfg


class DrawsOnTheGeneratorsDevice(TorchFunctionMode):
    """Records every random draw that does not name its generator's device.

    On a GPU torch refuses a CUDA generator for a tensor made on the CPU, the default device; on a CPU both
    are the CPU and such a draw passes unnoticed. Naming the generator's device is what makes it right on both.
    """

    def __init__(self):
        super().__init__()
        self.violations: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        generator = kwargs.get("generator")
        if generator is not None:
            device = kwargs.get("device")
            if device is None or torch.device(device) != generator.device:
                self.violations.append(f"{func.__name__}(device={device})")
        return func(*args, **kwargs)


@pytest.mark.parametrize("kind", ["full", "windows", "dynamic"])
def test_every_draw_is_made_on_its_generators_device(tmp_path, kind):
    """HRF crashed at epoch 0 on CUDA: the window draw used a CUDA generator for a CPU tensor."""
    trainer = prepare_run(
        _cfg(kind, timestep_fraction=0.5),
        tmp_path / "run",
        unet=tiny_unet(8),
        train_scheduler=celebahq_like_scheduler(),
        progress=False,
    )
    with DrawsOnTheGeneratorsDevice() as mode:
        trainer.run_epoch(0)
    assert mode.violations == []


def test_start_states_take_start_steps_from_another_device():
    """HRF-D's probe crashed on CUDA: start steps built on the CPU met references on the GPU in torch.where.

    The meta device stands in for the GPU: mixing it with CPU tensors fails as CUDA does.
    """
    ddim = make_ddim_scheduler(celebahq_like_scheduler(), 6)
    refs = torch.zeros(4, 3, 8, 8, device="meta")
    start = torch.tensor([0, 2, 2, 4])  # on the CPU
    xs = start_states(refs, start, ddim, tuple(refs.shape), torch.Generator().manual_seed(0), refs.device)
    assert xs.device.type == "meta" and xs.shape == refs.shape


@pytest.mark.parametrize(
    ("requested", "cuda", "bf16", "expected"),
    [
        ("auto", True, True, "bf16"),
        ("auto", True, False, "fp16"),
        ("auto", False, False, "no"),
        ("fp16", True, True, "fp16"),
        ("no", True, True, "no"),
        ("bf16", False, False, "bf16"),
    ],
)
def test_auto_precision_is_bf16_where_the_gpu_has_it(requested, cuda, bf16, expected):
    assert resolve_mixed_precision(requested, cuda, bf16) == expected


@pytest.fixture
def fp16_accelerator():
    """An fp16 accelerator with a CPU GradScaler, as accelerate builds one on a GPU (native amp + scaler)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    def make(init_scale: float):
        AcceleratorState._reset_state(True)  # accelerate keeps one precision per process
        acc = Accelerator(cpu=True, mixed_precision="fp16")
        acc.native_amp = True
        acc.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
        return acc

    yield make
    AcceleratorState._reset_state(True)


def test_an_fp16_overflow_skips_the_step_and_resumes_with_the_scale(tmp_path, fp16_accelerator):
    """A scale of 2^60 overflows fp16 gradients: each update is skipped and the scale halved, not an error."""
    cfg = _cfg("windows", max_epochs=2, updates_per_epoch=2, warmup_epochs=1)
    kw = dict(unet=tiny_unet(8), train_scheduler=celebahq_like_scheduler(), progress=False)
    trainer = prepare_run(cfg, tmp_path / "run", accelerator=fp16_accelerator(2.0**60), **kw)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.cfg.train.max_epochs = 1
    (metrics,) = trainer.train()
    assert metrics["skipped_updates"] == 2 and metrics["optimizer_updates"] == 0
    assert metrics["grad_scale"] == 2.0**58
    assert metrics["lr"] == pytest.approx(1e-3 / 2)  # warm-up not advanced by skipped steps
    assert all(torch.equal(p, q) for p, q in zip(before, trainer.model.parameters(), strict=True))
    resumed = prepare_run(None, tmp_path / "run", resume=True, accelerator=fp16_accelerator(2.0**10), **kw)
    assert resumed.acc.scaler.get_scale() == 2.0**58
