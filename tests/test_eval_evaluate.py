"""evaluate_images on built-to-collapse image sets, the markdown report, and ``hrf evaluate`` end to end."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from hrf.api import model_slug
from hrf.benchmarks import get_benchmark
from hrf.data.faces import FACTORS, faces_tensor
from hrf.evaluation.metrics import evaluate_images
from hrf.evaluation.report import metrics_markdown


class StandInClassifier:
    """A fixed random linear classifier over 4×4-pooled pixels: same image → same prediction.

    Stands in for hrf.data.classifier (trained elsewhere) so that these tests do not depend on its weights.
    """

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.heads = {f: torch.randn(3 * 16, len(v), generator=g) * 4 for f, v in FACTORS.items()}

    def features(self, images):
        return torch.nn.functional.adaptive_avg_pool2d(images.float(), 4).flatten(1)

    def probs(self, images):
        f = self.features(images)
        return {name: (f @ w).softmax(-1) for name, w in self.heads.items()}


@pytest.fixture
def stand_in_classifier(monkeypatch):
    module = types.SimpleNamespace(load_face_classifier=StandInClassifier)
    monkeypatch.setitem(sys.modules, "hrf.data.classifier", module)
    return module


def _collapsed(n: int) -> torch.Tensor:
    """n copies of one face, with pixel noise far below the differences between faces."""
    one, _ = faces_tensor(1, seed=5)
    noise = torch.randn(n, *one.shape[1:], generator=torch.Generator().manual_seed(0))
    return (one.repeat(n, 1, 1, 1) + 0.01 * noise).clamp(-1, 1)


def test_collapsed_set_scores_lower_diversity(stand_in_classifier):
    diverse, _ = faces_tensor(64, seed=1)
    report = evaluate_images(
        {"diverse": diverse, "collapsed": _collapsed(64)},
        embedders=["pixels"],
        rewards=["jpeg_incompressibility"],
        benchmark=get_benchmark("faces"),
        n_boot=20,
        is_splits=4,
    )
    d, c = report["models"]["diverse"], report["models"]["collapsed"]
    keys = ("vendi/pixels", "vendi/domain", "vendi/evaluator", "factors/entropy", "factors/coverage", "is/domain")
    for key in keys:
        assert c[key]["value"] < d[key]["value"], key
    # the benchmark's independent evaluator reads data faces surely
    assert 0.9 < d["confidence/evaluator"]["value"] <= 1.0
    assert report["labels"]["vendi/evaluator"] == "Vendi (independent evaluator classifier)"
    assert c["factors/entropy"]["value"] == pytest.approx(0.0)
    assert c["factors/coverage"]["value"] == pytest.approx(1 / 576)
    assert c["vendi/pixels"]["value"] < 1.01
    assert d["vendi/pixels"]["ci"][0] <= d["vendi/pixels"]["ci"][1]
    assert report["labels"]["is/domain"].startswith("IS (domain classifier")
    assert set(report["extra"]["diverse"]["factor_marginals"]) == set(FACTORS)
    legend = metrics_markdown(report).rstrip().splitlines()[-1]  # says what is in the table, nothing more
    assert "Factor metrics" in legend and "KD/KID" not in legend


def test_reference_distances_and_reference_row(stand_in_classifier):
    reference, _ = faces_tensor(48, seed=2)
    same, _ = faces_tensor(48, seed=3)
    report = evaluate_images(
        {"same": same, "collapsed": _collapsed(48)}, embedders=["pixels"], reference=reference, benchmark=None, n_boot=0
    )
    assert list(report["models"]) == ["reference", "same", "collapsed"]
    s, c = report["models"]["same"], report["models"]["collapsed"]
    assert s["fd/pixels"]["value"] < c["fd/pixels"]["value"]
    assert s["recall/pixels"]["value"] > c["recall/pixels"]["value"]
    assert s["coverage/pixels"]["value"] > c["coverage/pixels"]["value"]
    assert "fd/pixels" not in report["models"]["reference"]
    assert report["labels"]["fd/pixels"] == "FD (pixels)"  # a Fréchet distance on pixels is not an FID
    table = metrics_markdown(report)
    own, distances = table.split("## Distance to the reference set")
    assert [line.split(" | ")[0] for line in own.splitlines() if line.startswith("| ") and "---" not in line] == [
        "| model",
        "| reference",
        "| same",
        "| collapsed",
    ]
    assert [line.split(" | ")[0] for line in distances.splitlines() if line.startswith("| ")][2:] == [
        "| same",
        "| collapsed",
    ]
    assert "FD (pixels)" in distances and "FID" not in table.replace("not FID", "")
    assert "KD/KID" in table and "Factor metrics" not in table


def test_unknown_embedder_and_reserved_name():
    from hrf.errors import HrfError

    images = torch.zeros(4, 3, 8, 8)
    with pytest.raises(HrfError, match="unknown embedder"):
        evaluate_images({"a": images}, embedders=["inception"])
    with pytest.raises(HrfError, match="reserved"):
        evaluate_images({"reference": images})


def test_model_slugs_are_unique_and_safe():
    taken: set[str] = set()
    assert model_slug("hrf:faces32", taken) == "hrf_faces32"
    assert model_slug("runs/a b/final/", taken) == "final"
    assert model_slug("other/final", taken) == "final_2"


def _save_tiny(tmp_path, name, seed):
    from diffusers import DDPMScheduler

    from hrf.models import save_model, tiny_unet

    sched = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=True
    )
    return str(save_model(tiny_unet(sample_size=8, seed=seed), sched, tmp_path / name))


def test_cli_evaluate_end_to_end_and_resume(tmp_path, capsys):
    from hrf.cli.main import main

    a, b = _save_tiny(tmp_path, "base", 0), _save_tiny(tmp_path, "tuned", 1)
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--model",
        a,
        b,
        "--num",
        "12",
        "--steps",
        "3",
        "--seed",
        "4",
        "--out",
        str(out),
        "--reward",
        "jpeg_compressibility",
        "--embedder",
        "pixels",
        "--n-boot",
        "5",
        "--is-splits",
        "2",
    ]
    assert main(argv) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["models"]) == ["base", "tuned"]
    assert report["models"]["base"]["reward/jpeg_compressibility"]["err"] > 0
    for name in (
        "metrics.md",
        "evaluate_args.json",
        "grid_base.png",
        "figure1_embeddings.png",
        "figure5_reward_vs_vendi.png",
        "figure7_incremental_vendi.png",
        "samples_tuned.npz",
    ):
        assert (out / name).is_file(), name
    with np.load(out / "samples_base.npz") as f:
        first = f["images"].copy()
    # Same seed → same initial noise for both models: the two samples differ, but a rerun reuses the cache.
    mtime = (out / "samples_base.npz").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "samples_base.npz").stat().st_mtime_ns == mtime
    assert json.loads((out / "metrics.json").read_text())["models"] == report["models"]
    with np.load(out / "samples_base.npz") as f:
        np.testing.assert_array_equal(f["images"], first)


def test_cli_evaluate_same_model_twice_gives_identical_samples(tmp_path):
    from hrf.cli.main import main

    a = _save_tiny(tmp_path, "base", 0)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                a,
                a,
                "--num",
                "6",
                "--steps",
                "2",
                "--out",
                str(out),
                "--embedder",
                "pixels",
                "--n-boot",
                "0",
                "--is-splits",
                "1",
            ]
        )
        == 0
    )
    with np.load(out / "samples_base.npz") as x, np.load(out / "samples_base_2.npz") as y:
        np.testing.assert_array_equal(x["images"], y["images"])


def test_cli_evaluate_bad_input_is_one_line(tmp_path, capsys):
    from hrf.cli.main import main

    a = _save_tiny(tmp_path, "base", 0)
    assert main(["evaluate", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--model",
                a,
                "--num",
                "4",
                "--steps",
                "2",
                "--out",
                str(tmp_path / "o"),
                "--embedder",
                "pixels",
                "--reference",
                str(tmp_path / "nothing"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("hrf evaluate: error:") and "reference" in err and err.count("\n") == 1


def test_collapse_is_seen_by_the_real_face_classifier():
    diverse, labels = faces_tensor(200, seed=1)
    report = evaluate_images(
        {"diverse": diverse, "collapsed": _collapsed(200)},
        embedders=["pixels"],
        benchmark=get_benchmark("faces"),
        n_boot=0,
        is_splits=2,
    )
    d, c = report["models"]["diverse"], report["models"]["collapsed"]
    assert c["factors/entropy"]["value"] == pytest.approx(0.0)
    assert c["is/domain"]["value"] == pytest.approx(1.0, abs=0.05)
    # The classifier is accurate on clean faces: the predicted combinations are the true ones.
    from hrf.evaluation.diversity import combo_coverage

    true_codes = mixed_radix_codes_of(labels)
    assert d["factors/coverage"]["value"] == pytest.approx(combo_coverage(true_codes, 576))
    assert d["is/domain"]["value"] > 50 * c["is/domain"]["value"]


def mixed_radix_codes_of(labels):
    from hrf.data.faces import HIGH_LEVEL, mixed_radix_codes

    return mixed_radix_codes({f: labels[f] for f in HIGH_LEVEL}, {f: len(FACTORS[f]) for f in HIGH_LEVEL})


def test_cli_evaluate_on_the_benchmark_with_data_reference(tmp_path):
    from diffusers import DDPMScheduler

    from hrf.cli.main import main
    from hrf.models import save_model, tiny_unet

    sched = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=True
    )
    model = save_model(tiny_unet(sample_size=32, seed=0), sched, tmp_path / "m32")
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--num",
                "10",
                "--steps",
                "2",
                "--out",
                str(out),
                "--reference",
                "data",
                "--embedder",
                "pixels",
                "--n-boot",
                "3",
                "--is-splits",
                "2",
                "--reward",
                "faces_smile",
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    assert report["config"]["benchmark"] is True
    ref, model_row = report["models"]["reference"], report["models"]["m32"]
    assert ref["factors/coverage"]["value"] == pytest.approx(10 / 576)  # 10 distinct true faces, all recognised
    assert "fd/domain" in model_row and "precision/pixels" in model_row
    assert "reward/faces_smile" in model_row


def test_sample_cache_is_reused_only_for_the_same_weights(tmp_path):
    from hrf.evaluation.samples import sample_or_load

    spec = _save_tiny(tmp_path, "m", 0)
    cache = tmp_path / "samples.npz"
    first = sample_or_load(spec, cache, 3, seed=0, steps=2)
    stamp = cache.stat().st_mtime_ns
    torch.testing.assert_close(sample_or_load(spec, cache, 3, seed=0, steps=2), first)
    assert cache.stat().st_mtime_ns == stamp
    _save_tiny(tmp_path, "m", 1)  # retrained in place
    second = sample_or_load(spec, cache, 3, seed=0, steps=2)
    assert cache.stat().st_mtime_ns != stamp and not torch.equal(first, second)
    assert not list(tmp_path.glob("*.tmp*"))  # each write renamed its temporary file over the cache


def test_split_label(tmp_path):
    from hrf.api import split_label
    from hrf.errors import HrfError

    assert split_label("early/s0=runs/x") == ("early/s0", "runs/x")
    assert split_label("hrf:faces32") == (None, "hrf:faces32")
    odd = tmp_path / "lr=3e-4"
    odd.mkdir()
    assert split_label(str(odd)) == (None, str(odd))
    with pytest.raises(HrfError, match="LABEL=SPEC"):
        split_label("=runs/x")


def test_cli_evaluate_with_labels(tmp_path):
    from hrf.cli.main import main

    a, b = _save_tiny(tmp_path, "a", 0), _save_tiny(tmp_path, "b", 1)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                f"base={a}",
                f"hrf/s0={b}",
                "--num",
                "4",
                "--steps",
                "2",
                "--out",
                str(out),
                "--embedder",
                "pixels",
                "--n-boot",
                "0",
                "--is-splits",
                "1",
                "--reward",
                "jpeg_compressibility",
            ]
        )
        == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["models"]) == ["base", "hrf/s0"]
    assert report["config"]["models"] == {"base": a, "hrf/s0": b}
    assert (out / "samples_hrf_s0.npz").is_file() and (out / "grid_hrf_s0.png").is_file()


def test_cli_evaluate_passes_reward_options(tmp_path, monkeypatch, capsys):
    from hrf.cli.main import main
    from hrf.images import from_uint8_hwc
    from hrf.rewards.registry import REWARDS

    def factory(scale: float):  # a reward that cannot be built without its option
        return lambda images: (images.float().mean(dim=(1, 2, 3)) * scale, {})

    monkeypatch.setitem(REWARDS, "test_scaled_mean", factory)
    a = _save_tiny(tmp_path, "base", 0)
    out = tmp_path / "eval"
    common = [
        "evaluate",
        "--model",
        a,
        "--num",
        "4",
        "--steps",
        "2",
        "--out",
        str(out),
        "--embedder",
        "pixels",
        "--n-boot",
        "0",
        "--is-splits",
        "1",
    ]
    assert main([*common, "--reward", "test_scaled_mean", "--reward-option", "test_scaled_mean.scale=3"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    with np.load(out / "samples_base.npz") as f:
        expected = 3 * float(from_uint8_hwc(f["images"]).double().mean())
    assert report["models"]["base"]["reward/test_scaled_mean"]["value"] == pytest.approx(expected, rel=1e-5)
    # the aesthetic reward receives its options: its own error names the bad directory
    assert main([*common, "--reward", "aesthetic", "--reward-option", f"aesthetic.clip_path={tmp_path / 'no'}"]) == 2
    assert "'" + str(tmp_path / "no") + "'" in capsys.readouterr().err
    assert main([*common, "--reward", "jpeg_compressibility", "--reward-option", "aesthetic.clip_path=x"]) == 2
    assert "not one of the --reward names" in capsys.readouterr().err
