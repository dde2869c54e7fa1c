"""Metrics checked on inputs with known answers and against independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from hrf.data.faces import mixed_radix_codes
from hrf.evaluation.diversity import combo_coverage, factor_entropy
from hrf.evaluation.fid import frechet_distance, kernel_distance, knn_radii, prdc
from hrf.evaluation.inception import inception_score, joint_probs
from hrf.evaluation.vendi import bootstrap_ci, incremental_vendi, normalize_rows, vendi_bootstrap_ci, vendi_score


def _vendi_nxn(X: np.ndarray) -> float:
    """The definition, computed the slow way: exp entropy of the eigenvalues of K / n."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    w = np.clip(np.linalg.eigvalsh(Xn @ Xn.T / len(X)), 0, None)
    w = w[w > 0]
    return math.exp(-(w * np.log(w)).sum())


# --- Vendi -------------------------------------------------------------------------------------------


def test_vendi_identical_rows_is_one():
    X = np.tile(np.random.default_rng(0).normal(size=(1, 16)), (20, 1))
    assert vendi_score(X) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("q", [0.5, 1.0, 2.0, math.inf])
def test_vendi_orthogonal_rows_is_n(q):
    X = np.eye(7)[:5] * np.arange(1, 6)[:, None]  # scaling must not matter
    assert vendi_score(X, q) == pytest.approx(5.0, rel=1e-9)


@pytest.mark.parametrize("shape", [(30, 50), (80, 6)])
@pytest.mark.parametrize("q", [1.0, 2.0, 0.5, math.inf])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_vendi_matches_official_package(shape, q):
    from vendi_score import vendi

    X = np.random.default_rng(1).normal(size=shape)
    if q == 1.0:
        expected = vendi.score_X(X)  # score_X ignores q (it always computes q = 1)
    else:
        Xn = normalize_rows(X)
        expected = vendi.score_K(Xn @ Xn.T, q="inf" if math.isinf(q) else q)
    # For n > d the package keeps the n − d rounding-noise eigenvalues (≈1e-17), which shift q < 1 by ~1e-8.
    assert vendi_score(X, q) == pytest.approx(expected, rel=1e-6 if q < 1 else 1e-9)


def test_vendi_dual_path_equals_nxn_path():
    X = np.random.default_rng(2).normal(size=(200, 12)) + 0.5  # n > d: the d × d path
    assert vendi_score(X) == pytest.approx(_vendi_nxn(X), rel=1e-10)


@pytest.mark.parametrize("d", [40, 80])  # 60 rows: the d × d path, and the merged n × n path
def test_vendi_merges_duplicates_exactly(d):
    base = np.random.default_rng(3).normal(size=(10, d))
    X = base[np.random.default_rng(4).integers(0, 10, 60)]
    assert vendi_score(X) == pytest.approx(_vendi_nxn(X), rel=1e-10)


def test_zero_row_means_constant_direction():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(normalize_rows(X)[0], normalize_rows(X)[1])


def test_bootstrap_ci_is_deterministic_and_ordered():
    X = np.random.default_rng(5).normal(size=(60, 10))
    low, high = bootstrap_ci(vendi_score, X, n_boot=30, alpha=0.1, seed=7)
    assert (low, high) == bootstrap_ci(vendi_score, X, n_boot=30, alpha=0.1, seed=7)
    assert 1.0 <= low < high <= 10.0
    assert bootstrap_ci(vendi_score, np.ones((8, 3)), n_boot=5) == pytest.approx((1.0, 1.0))


@pytest.mark.parametrize("shape", [(60, 10), (40, 70)])  # the d × d and the merged n × n path
@pytest.mark.parametrize("q", [1.0, 2.0])
def test_vendi_bootstrap_ci_equals_the_generic_bootstrap(shape, q):
    base = np.random.default_rng(8).normal(size=shape)
    X = np.concatenate([base, base[:5]])  # rows repeated in X itself, not only by the resampling
    expected = bootstrap_ci(lambda Y: vendi_score(Y, q), X, n_boot=25, alpha=0.1, seed=3)
    assert vendi_bootstrap_ci(X, n_boot=25, alpha=0.1, seed=3, q=q) == pytest.approx(expected, rel=1e-9)
    assert vendi_bootstrap_ci(np.ones((8, 3)), n_boot=5) == pytest.approx((1.0, 1.0))


def test_incremental_vendi_equals_prefix_scores():
    X = np.random.default_rng(6).normal(size=(50, 8))
    sizes = [40, 3, 8, 9, 50, 40]  # unsorted, repeated, both sides of d
    expected = [vendi_score(X[:s]) for s in sizes]
    np.testing.assert_allclose(incremental_vendi(X, sizes), expected, rtol=1e-9)


# --- Inception Score ---------------------------------------------------------------------------------


def test_is_of_uniform_classifier_is_one():
    assert inception_score(np.full((40, 7), 1 / 7), splits=4) == pytest.approx((1.0, 0.0))


def test_is_of_balanced_one_hot_is_number_of_classes():
    probs = np.eye(6)[np.arange(60) % 6]
    mean, std = inception_score(probs, splits=5)
    assert mean == pytest.approx(6.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_is_matches_torchmetrics():
    from torchmetrics.image.inception import InceptionScore

    class Logits(torch.nn.Module):
        def forward(self, x):
            return x

    logits = torch.randn(200, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    probs = logits.softmax(-1).numpy()
    metric = InceptionScore(feature=Logits(), splits=1)
    metric.update(logits)
    assert inception_score(probs, splits=1)[0] == pytest.approx(float(metric.compute()[0]), rel=1e-9)

    # torchmetrics shuffles with the global RNG before splitting: replay its permutation.
    metric = InceptionScore(feature=Logits(), splits=10)
    metric.update(logits)
    torch.manual_seed(123)
    tm_mean, tm_std = metric.compute()
    torch.manual_seed(123)
    perm = torch.randperm(200).numpy()
    mean, std = inception_score(probs[perm], splits=10)
    assert mean == pytest.approx(float(tm_mean), rel=1e-9)
    assert std == pytest.approx(float(tm_std) * math.sqrt(9 / 10), rel=1e-6)  # ddof 0 vs ddof 1


def test_is_rejects_non_probabilities():
    with pytest.raises(ValueError):
        inception_score(np.ones((4, 3)))


def test_joint_probs_orders_combinations_as_mixed_radix_codes():
    rng = np.random.default_rng(0)
    labels = {"a": rng.integers(0, 3, 50), "b": rng.integers(0, 4, 50)}
    probs = {"a": np.eye(3)[labels["a"]], "b": np.eye(4)[labels["b"]]}
    joint = joint_probs(probs, ("a", "b"))
    assert joint.shape == (50, 12)
    np.testing.assert_array_equal(joint.argmax(1), mixed_radix_codes(labels, {"a": 3, "b": 4}))
    soft = {"a": rng.dirichlet(np.ones(3), 50), "b": rng.dirichlet(np.ones(4), 50)}
    joint = joint_probs(soft, ("a", "b"))
    np.testing.assert_allclose(joint.sum(1), 1.0)
    np.testing.assert_allclose(joint[:, 2 * 4 + 1], soft["a"][:, 2] * soft["b"][:, 1])


# --- FID, KID, precision/recall/density/coverage ------------------------------------------------------


def _scipy_fd(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


@pytest.mark.parametrize("n_real,n_fake,d", [(300, 250, 6), (20, 30, 50)])  # d × d route, n × n route
def test_frechet_distance_matches_scipy_sqrtm_and_torchmetrics(n_real, n_fake, d):
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_real, d))
    b = rng.normal(size=(n_fake, d)) @ rng.normal(size=(d, d)) * 0.5 + 1.0
    ours = frechet_distance(a, b)
    assert ours == pytest.approx(_scipy_fd(a, b), rel=1e-6)

    class Identity(torch.nn.Module):
        num_features = d

        def forward(self, x):
            return x

    metric = FrechetInceptionDistance(feature=Identity())
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    assert ours == pytest.approx(float(metric.compute()), rel=1e-5)


def test_frechet_distance_of_a_shift_is_its_squared_length():
    a = np.random.default_rng(1).normal(size=(100, 5))
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-6)


def test_kernel_distance_matches_unbiased_mmd_on_full_sets():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 4)), rng.normal(size=(40, 4)) + 0.3
    k = lambda x, y: (x @ y.T / 4 + 1) ** 3  # noqa: E731  (KID's cubic kernel, gamma = 1 / d)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    m = len(a)
    expected = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    # Subsets are capped at half the smaller set, so compare the full-set MMD with torchmetrics' own kernel.
    from torchmetrics.image.kid import poly_mmd

    assert float(poly_mmd(torch.from_numpy(a), torch.from_numpy(b))) == pytest.approx(expected, rel=1e-9)
    mean, std = kernel_distance(a, b, subsets=50, subset_size=1000)
    assert std > 0 and abs(mean - expected) < 3 * std
    again = kernel_distance(a, b, subsets=5, subset_size=20, seed=1)
    assert kernel_distance(a, b, subsets=5, subset_size=20, seed=1) == again


def test_prdc_identical_sets():
    X = np.random.default_rng(3).normal(size=(50, 3))
    out = prdc(X, X.copy(), k=5)
    # Open balls: each real ball holds its own copy and the k - 1 nearer neighbours, not the k-th on its edge.
    assert out == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0})


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_the_reference_implementation(k):
    """Naeem et al. 2020's own code (the ``prdc`` package), on lattice points where many distances tie with
    the k-NN radii, so an open ball (``<``, the published definition) and a closed one (``<=``) differ."""
    from prdc import compute_prdc

    rng = np.random.default_rng(k)
    real = rng.integers(0, 4, size=(60, 2)).astype(np.float64)
    fake = rng.integers(1, 5, size=(45, 2)).astype(np.float64)
    expected = compute_prdc(real, fake, nearest_k=k)
    assert prdc(real, fake, k=k) == pytest.approx({name: float(v) for name, v in expected.items()}, abs=1e-12)


def test_prdc_disjoint_sets():
    X = np.random.default_rng(4).normal(size=(30, 3))
    assert prdc(X, X + 100.0, k=3) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_hand_computed_example():
    real = np.arange(10, dtype=float)[:, None]  # k = 1 radii: all 1
    fake = np.array([[0.5], [20.0], [21.0]])  # radii 19.5, 1, 1
    np.testing.assert_allclose(knn_radii(real, 1), 1.0)
    out = prdc(real, fake, k=1)
    # precision: only 0.5 lies in a real ball; recall: the ball of 0.5 (radius 19.5) holds every real point;
    # density: 0.5 lies in the balls of reals 0 and 1 → 2 / (1·3); coverage: balls of 0 and 1 → 2 / 10.
    assert out == pytest.approx({"precision": 1 / 3, "recall": 1.0, "density": 2 / 3, "coverage": 0.2})
    # the balls are open: 11 lies exactly at distance 1 (the radius) from real 9, so it is in no ball
    assert prdc(real, np.array([[11.0], [30.0]]), k=1)["precision"] == 0.0


# --- ground-truth diversity ----------------------------------------------------------------------------


def test_factor_entropy_and_coverage():
    uniform = np.arange(120) % 12
    assert factor_entropy(uniform, 12) == pytest.approx({"nats": math.log(12), "fraction": 1.0})
    assert combo_coverage(uniform, 12) == 1.0
    collapsed = np.full(120, 5)
    assert factor_entropy(collapsed, 12) == pytest.approx({"nats": 0.0, "fraction": 0.0})
    assert combo_coverage(collapsed, 12) == pytest.approx(1 / 12)
    half = np.array([0, 1] * 30)
    assert factor_entropy(half)["nats"] == pytest.approx(math.log(2))
    assert factor_entropy(half)["fraction"] is None
    with pytest.raises(ValueError):
        combo_coverage(np.array([0, 12]), 12)


def test_mixed_radix_codes_are_a_bijection():
    a, b, c = np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing="ij")
    codes = mixed_radix_codes({"a": a.ravel(), "b": b.ravel(), "c": c.ravel()}, {"a": 2, "b": 3, "c": 4})
    np.testing.assert_array_equal(codes, np.arange(24))


def test_an_embedder_joins_the_features_and_probabilities_of_its_batches():
    from hrf.evaluation.embedders import Embedder

    x = torch.arange(20.0).reshape(5, 1, 2, 2)
    with_probs = Embedder(
        "p", "p", lambda b: (b.flatten(1).numpy(), {"h": b.flatten(1)[:, :1].double().numpy()}), batch_size=2
    )
    feats, probs = with_probs.embed(x)
    np.testing.assert_array_equal(feats, x.flatten(1).numpy())
    np.testing.assert_array_equal(probs["h"][:, 0], [0.0, 4.0, 8.0, 12.0, 16.0])
    assert Embedder("f", "f", lambda b: (b.flatten(1).numpy(), None), batch_size=2).embed(x)[1] is None


def test_an_embedder_giving_probabilities_for_some_batches_only_is_an_error():
    from hrf.errors import HrfError
    from hrf.evaluation.embedders import Embedder

    answers = iter([{"h": np.ones((2, 3))}, None])
    emb = Embedder("half", "half", lambda b: (b.flatten(1).numpy(), next(answers)), batch_size=2)
    with pytest.raises(HrfError, match="some batches only"):
        emb.embed(torch.zeros(4, 1, 2, 2))


def test_factor_metrics_of_a_benchmark_with_one_combination_is_a_clear_error():
    from hrf.benchmarks import Benchmark
    from hrf.errors import HrfError
    from hrf.evaluation.metrics import factor_metrics

    bench = Benchmark(
        name="single",
        models=(),
        presets="",
        factors={"a": 1},
        high_level=("a",),
        data=lambda n, seed: (torch.zeros(n, 1, 2, 2), ""),
        classifier=lambda: None,
    )
    with pytest.raises(HrfError, match="1 high-level combination"):
        factor_metrics({"a": np.ones((4, 1))}, 2, bench)
