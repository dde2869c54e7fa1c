"""The frontier: weighted diversity against duplicated samples and an exactly tilted discrete distribution."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hrf.evaluation import frontier as fr
from hrf.evaluation.vendi import vendi_score


def test_uniform_weights_give_the_ordinary_vendi():
    X = np.random.default_rng(0).normal(size=(300, 12))
    assert fr.weighted_vendi_score(X, np.ones(300)) == pytest.approx(vendi_score(X), rel=1e-10)


def test_integer_weights_equal_duplicated_samples():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6))
    counts = rng.integers(1, 5, size=40)
    duplicated = np.repeat(X, counts, axis=0)
    assert fr.weighted_vendi_score(X, counts.astype(float)) == pytest.approx(vendi_score(duplicated), rel=1e-9)
    # and wider features than samples take the other (n × n) branch to the same answer
    Xw = rng.normal(size=(10, 50))
    cw = rng.integers(1, 4, size=10)
    assert fr.weighted_vendi_score(Xw, cw.astype(float)) == pytest.approx(
        vendi_score(np.repeat(Xw, cw, axis=0)), rel=1e-9
    )


def _discrete_world(beta: float):
    """Atoms k with base probability p_k (as integer multiplicities), reward r_k and one-hot features."""
    p_counts = np.array([50, 30, 15, 5])
    r_atoms = np.array([0.0, 1.0, 2.0, 3.0])
    atoms = np.repeat(np.arange(4), p_counts)
    p = p_counts / p_counts.sum()
    q = p * np.exp(beta * r_atoms)
    q /= q.sum()
    return atoms, r_atoms[atoms], np.eye(4)[atoms], p, q, r_atoms


@pytest.mark.parametrize("beta", [0.0, 0.7, 2.0])
def test_a_discrete_tilt_is_exact(beta):
    atoms, r, feats, p, q, r_atoms = _discrete_world(beta)
    w = fr.tilted_weights(r, beta)
    assert np.bincount(atoms, weights=w) == pytest.approx(q, rel=1e-12)
    assert float(w @ r) == pytest.approx(float(q @ r_atoms), rel=1e-12)
    assert fr.tilted_kl(w) == pytest.approx(float((q * np.log(q / p)).sum()), abs=1e-12)
    h = float(-(q * np.log(q)).sum())
    # orthogonal atoms: the Vendi score is exp of the entropy of the atom probabilities
    assert fr.weighted_vendi_score(feats, w) == pytest.approx(math.exp(h), rel=1e-9)
    assert fr.weighted_entropy(atoms, w, 4) == pytest.approx(h, rel=1e-12)
    expected_cov = float(np.mean(1 - (1 - q) ** 10))
    assert fr.expected_coverage(atoms, w, 4, draws=10) == pytest.approx(expected_cov, rel=1e-12)


def test_effective_sample_size_bounds():
    assert fr.effective_sample_size(np.ones(500)) == pytest.approx(500)
    assert fr.effective_sample_size(np.eye(1, 500)[0]) == pytest.approx(1)


def test_weights_are_stable_for_large_beta_and_refuse_bad_rewards():
    w = fr.tilted_weights(np.array([0.0, 1000.0, 999.0]), 5.0)
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)
    with pytest.raises(fr.HrfError, match="finite rewards"):
        fr.tilted_weights(np.array([0.0, np.nan]), 1.0)


def test_beta_for_gain_and_the_reachable_limit():
    r = np.random.default_rng(2).normal(size=20_000)
    beta = fr.beta_for_gain(r, 0.5)
    assert beta is not None
    assert float(fr.tilted_weights(r, beta) @ r - r.mean()) == pytest.approx(0.5, abs=1e-8)
    assert fr.beta_for_gain(r, r.max() - r.mean() + 1) is None
    limit = fr.reachable_beta(r)
    assert fr.effective_sample_size(fr.tilted_weights(r, limit)) == pytest.approx(fr.MIN_ESS, rel=1e-3)
    assert fr.reachable_beta(r[:999]) == 0.0  # fewer samples than MIN_ESS reach nothing


def _samples(n: int = 4000, seed: int = 3) -> fr.FrontierSamples:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, size=n)
    # the reward favours combinations 4 and 5: tilting concentrates on them and loses diversity
    r = (codes >= 4).astype(float) + 0.1 * rng.normal(size=n)
    feats = np.eye(6)[codes] + 0.05 * rng.normal(size=(n, 6))
    return fr.FrontierSamples(rewards=r, features={"f": feats}, codes={"f": codes}, n_combos=6, gold=r * 0.5)


def test_frontier_curve_levels_and_reading():
    s = _samples()
    result = fr.frontier_curve(s, gains=[0.1, 0.3, 5.0], points=12)
    base = result["base"]
    assert base["gain"] == 0 and base["frac/vendi/f"] == pytest.approx(1.0)
    reached = [p for p in result["curve"] if p["reached"]]
    gains = [p["gain"] for p in reached]
    assert gains == sorted(gains)  # E_q[r] rises with β
    assert reached[-1]["frac/vendi/f"] < 1.0  # the tilt gives up diversity for reward here
    assert max(gains) == pytest.approx(result["largest_reachable_gain"])
    lv = result["levels"]
    assert lv[0]["gain"] == pytest.approx(0.1, abs=1e-8) and lv[0]["reached"]
    assert lv[0]["gold_gain"] == pytest.approx(0.05, abs=1e-8)  # gold is half the reward here
    assert lv[2]["reached"] is False and "no β" in lv[2]["why"]
    # reading the curve at a level agrees with the exact level within the grid's interpolation error
    assert fr.read_frontier(result, 0.1, "frac/vendi/f") == pytest.approx(lv[0]["frac/vendi/f"], abs=0.02)
    assert fr.read_frontier(result, result["largest_reachable_gain"] + 0.01, "frac/vendi/f") is None
    text = fr.frontier_markdown(
        {"toy": result | {"key": {"model": "m", "weights": "0" * 64, "steps": 1, "num": 4000, "seed": 0}}}
    )
    assert "no β reaches it" in text and "+0.1" in text


def test_the_command_writes_resumes_and_refuses_bad_gains(tmp_path, monkeypatch, capsys):
    from diffusers import DDPMScheduler

    from hrf.cli.main import main
    from hrf.models import save_model, tiny_unet

    model = str(save_model(tiny_unet(8, seed=0), DDPMScheduler(), tmp_path / "model"))
    out = tmp_path / "fr"
    args = ["frontier", "--model", model, "--reward", "jpeg_compressibility", "--num", "600", "--steps", "2"]
    args += ["--out", str(out), "--benchmark", "none", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    data = json.loads((out / "frontier_jpeg_compressibility.json").read_text())
    assert data["key"]["num"] == 600 and data["key"]["steps"] == 2 and data["device"] == "cpu"
    assert "vendi/pixels" in data["base"]
    assert len(list((out / "chunks").glob("chunk*.npz"))) == 2
    # 600 samples cannot hold ESS ≥ 1,000: nothing is reachable and every level says so
    assert data["largest_reachable_gain"] == 0.0
    assert all(not lv["reached"] for lv in data["levels"] if lv["gain_target"] > 0)

    import hrf.sampling

    def no_sampling(*a, **k):
        raise AssertionError("a cached chunk was sampled again")

    monkeypatch.setattr(hrf.sampling, "sample_images", no_sampling)
    assert main(args) == 0  # every chunk comes from the cache
    capsys.readouterr()
    assert main([*args, "--gain", "nope=0.1"]) == 2
    assert "--gain 'nope=0.1'" in capsys.readouterr().err


def test_the_study_betas_are_the_shipped_frontiers():
    from hrf.evaluation.frontier import shipped_frontier
    from hrf.experiments.collapse import FRONTIER_BETA, collapse_config

    smile = shipped_frontier("hrf:faces32", "faces_smile", 10)
    jpeg = shipped_frontier("hrf:faces32", "jpeg_compressibility", 10)
    assert smile is not None and jpeg is not None  # the shipped curves match the shipped weights
    level = next(lv for lv in smile["levels"] if abs(lv["gain_target"] - 0.4692) < 1e-3)
    assert FRONTIER_BETA["smile"] == pytest.approx(level["beta"], rel=1e-4)
    assert FRONTIER_BETA["compressibility"] == pytest.approx(jpeg["largest_reachable_beta"], rel=1e-4)
    assert collapse_config("smile", "rtb", 0).train.kl_beta == FRONTIER_BETA["smile"]
    assert collapse_config("compressibility", "hrfkl", 0).schedule.kind == "windows"


# ---------------------------------------------------------------- the frontier within each class of a conditional model


def _class_arrays(c: int, n: int = 3000) -> dict[str, np.ndarray]:
    """What measure_base reads of class ``c``: the reward scales with the class, so each has its own reach."""
    rng = np.random.default_rng(20 + c)
    codes = rng.integers(0, 6, size=n)
    r = (1.0 + c) * ((codes >= 4) + 0.1 * rng.normal(size=n))
    feats = np.eye(6)[codes] + 0.05 * rng.normal(size=(n, 6))
    return {
        "reward/jpeg_compressibility": r,
        "gold/jpeg_compressibility": 0.5 * r,
        "features/f": feats,
        "codes/f": codes,
    }


def _run_on_fake_classes(tmp_path, monkeypatch, gains):
    from types import SimpleNamespace

    from hrf.models import save_model
    from tests.helpers import celebahq_like_scheduler, class_unet

    seen = []

    def fake_measure(spec, fns, num, seed, steps, work, benchmark, embedders, device, progress, condition, *rest):
        seen.append((condition, work))
        return _class_arrays(condition)

    monkeypatch.setattr(fr, "measure_base", fake_measure)
    monkeypatch.setattr(fr, "frontier_figure", lambda *a: None)  # figures are the command test's; time is short
    model = str(save_model(class_unet(4), celebahq_like_scheduler(), tmp_path / "m"))
    out = tmp_path / "fr"
    out.mkdir(exist_ok=True)
    bench = SimpleNamespace(n_combos=6)
    results = fr.run_frontier(
        model, ["jpeg_compressibility"], out, num=3000, benchmark=bench, gains=gains, classes=[0, 1, 2]
    )
    return results["jpeg_compressibility"], seen, out


def test_each_class_is_tilted_on_its_own_samples_and_the_average_is_their_mean(tmp_path, monkeypatch):
    tops = [fr.largest_reachable_gain(_class_arrays(c)["reward/jpeg_compressibility"]) for c in range(3)]
    assert tops[0] < tops[1] < tops[2]
    mid = 0.5 * (tops[0] + tops[1])  # reached by classes 1 and 2 only
    res, seen, out = _run_on_fake_classes(tmp_path, monkeypatch, {"jpeg_compressibility": [0.1, mid, 100.0]})
    assert {work for _, work in seen} == {out / "prompts" / f"class{c}" for c in range(3)}  # a cache per class
    pooled = np.concatenate([_class_arrays(c)["reward/jpeg_compressibility"] for c in range(3)])
    for c in range(3):
        own = fr.frontier_samples(_class_arrays(c), "jpeg_compressibility", 6)
        alone = fr.frontier_curve(own, [0.1, mid, 100.0])
        got = res["prompts"][str(c)]
        assert got["levels"] == alone["levels"] and got["curve"] == alone["curve"]
        lv = got["levels"][0]  # the class's own weights: its ESS is that of its rewards alone, not the pool's
        assert lv["ess"] == pytest.approx(fr.effective_sample_size(fr.tilted_weights(own.rewards, lv["beta"])))
        assert lv["ess"] != pytest.approx(fr.effective_sample_size(fr.tilted_weights(pooled, lv["beta"])), rel=1e-3)
        assert got["key"]["condition"] == c and "chunk_seed(seed, i, c)" in got["key"]["noise"]
        assert (out / "prompts" / f"class{c}" / "frontier_jpeg_compressibility.json").is_file()
    avg = res["average"]
    assert [lv["prompts_reached"] for lv in avg["levels"]] == [3, 2, 0]
    for j, classes in ((0, ["0", "1", "2"]), (1, ["1", "2"])):
        for key in ("gain", "ess", "kl", "gold_gain", "frac/vendi/f", "frac/entropy/f", "coverage/f"):
            mean = np.mean([res["prompts"][c]["levels"][j][key] for c in classes])
            assert avg["levels"][j][key] == pytest.approx(mean, rel=1e-12)
    assert avg["levels"][1]["gain"] == pytest.approx(mid, abs=1e-8)
    assert "ess" not in avg["levels"][2] and "beta" not in avg["levels"][0]
    assert avg["base"]["reward"] == pytest.approx(np.mean([res["prompts"][c]["base"]["reward"] for c in "012"]))
    saved = json.loads((out / "frontier_prompts_jpeg_compressibility.json").read_text())
    assert saved["average"]["levels"][1]["prompts_reached"] == 2 and saved["key"]["classes"] == [0, 1, 2]
    assert "| 2 of 3 |" in (out / "frontier_prompts.md").read_text()
    # without gains every class is read at the default fractions of the median class's reach
    res, _, _ = _run_on_fake_classes(tmp_path, monkeypatch, None)
    targets = [lv["gain_target"] for lv in res["average"]["levels"]]
    assert targets == pytest.approx([f * tops[1] for f in fr.DEFAULT_FRACTIONS])


def test_chunk_seeds_differ_per_class_and_keep_the_unconditional_ones():
    seeds = {fr.chunk_seed(7, i, c) for i in range(3) for c in (None, 0, 1, 2)}
    assert len(seeds) == 12
    assert fr.chunk_seed(7, 1, 2) == fr.chunk_seed(7, 1, 2)
    assert fr.chunk_seed(7, 1) == int(np.random.SeedSequence([7, 1]).generate_state(1, dtype=np.uint64)[0] >> 1)


def test_the_command_per_class_writes_keys_each_cache_and_never_mixes_them(tmp_path, monkeypatch, capsys):
    import shutil

    from hrf.cli.main import main
    from hrf.models import save_model
    from tests.helpers import celebahq_like_scheduler, class_unet

    monkeypatch.setattr(fr, "CHUNK", 4)  # a few samples per class, two chunks each
    model = str(save_model(class_unet(4), celebahq_like_scheduler(), tmp_path / "model"))
    out = tmp_path / "fr"
    args = ["frontier", "--model", model, "--reward", "jpeg_compressibility", "--num", "6", "--steps", "2"]
    args += ["--classes", "0", "2", "--guidance-scale", "2", "--out", str(out), "--benchmark", "none"]
    args += ["--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert "within each class" in capsys.readouterr().out
    data = json.loads((out / "frontier_prompts_jpeg_compressibility.json").read_text())
    assert set(data["prompts"]) == {"0", "2"} and data["key"]["guidance_scale"] == 2.0
    assert all(lv["prompts"] == 2 and lv["prompts_reached"] == 0 for lv in data["average"]["levels"])  # 6 < 1,000
    for c in ("0", "2"):
        d = out / "prompts" / f"class{c}"
        assert {"frontier_jpeg_compressibility.json", "frontier.md", "frontier.png"} <= {p.name for p in d.iterdir()}
        assert sorted(p.name for p in (d / "chunks").iterdir()) == ["chunk00000.npz", "chunk00001.npz"]
        key = data["prompts"][c]["key"]
        assert key["condition"] == int(c) and key["guidance_scale"] == 2.0 and key["num"] == 6
        chunks = [np.load(d / "chunks" / f"chunk0000{i}.npz") for i in (0, 1)]
        assert str(chunks[0]["key_condition"]) == c and str(chunks[0]["key_guidance_scale"]) == "2.0"
        rewards = np.concatenate([z["reward/jpeg_compressibility"] for z in chunks])[:6]
        assert data["prompts"][c]["base"]["reward"] == pytest.approx(rewards.mean())  # the class's samples alone
    with (
        np.load(out / "prompts/class0/chunks/chunk00000.npz") as a,
        np.load(out / "prompts/class2/chunks/chunk00000.npz") as b,
    ):
        assert not np.array_equal(a["images"], b["images"])  # each class its own samples and noise

    import hrf.sampling

    drawn = []
    real = hrf.sampling.sample_images
    monkeypatch.setattr(hrf.sampling, "sample_images", lambda *a, **k: drawn.append(k) or real(*a, **k))
    shutil.copy(out / "prompts/class0/chunks/chunk00000.npz", out / "prompts/class2/chunks/chunk00000.npz")
    assert main(args) == 0  # class 0's chunk in class 2's place is sampled again, under class 2; the rest is cached
    assert len(drawn) == 1 and drawn[0]["cond"].values.unique().tolist() == [2] and drawn[0]["guidance_scale"] == 2
    with np.load(out / "prompts/class2/chunks/chunk00000.npz") as z:
        assert str(z["key_condition"]) == "2"


def test_the_frontier_refuses_classes_that_do_not_fit_the_model(tmp_path, capsys):
    from diffusers import DDPMScheduler

    import hrf
    from hrf.cli.main import main
    from hrf.models import save_model, tiny_unet
    from tests.helpers import class_unet

    plain = str(save_model(tiny_unet(8, seed=0), DDPMScheduler(), tmp_path / "plain"))
    cond = str(save_model(class_unet(4), DDPMScheduler(), tmp_path / "cond"))
    base = ["frontier", "--reward", "jpeg_compressibility", "--out", str(tmp_path / "o"), "--benchmark", "none"]
    cases = [
        (["--model", plain, "--classes", "0"], "--classes needs a class-conditional model"),
        (["--model", plain, "--guidance-scale", "2"], "guidance scale needs a class-conditional model"),
        (["--model", cond], "is class-conditional (4 class embeddings)"),
        (["--model", cond, "--classes", "0", "4"], "class ids [4] are outside 0..3"),
        (["--model", cond, "--classes", "1", "1"], "names a class twice"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(fr.HrfError, match="--classes needs"):
        hrf.frontier(plain, ["jpeg_compressibility"], tmp_path / "o", classes=[0], progress=False)
    assert not list((tmp_path / "o").glob("**/*.npz"))  # refused before anything was sampled
