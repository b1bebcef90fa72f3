"""FID and improved precision/recall against closed forms and hand-computed cases."""

import numpy as np
import pytest

from nvae_tfx.evaluation import fid
from nvae_tfx.evaluation import precision_recall as pr


def gaussian(mean, variances, n, seed):
    rng = np.random.RandomState(seed)
    return mean + rng.randn(n, len(variances)) * np.sqrt(variances)


# --- FID ---------------------------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = fid.frechet_distance(
        fid.GaussianStatistics(mu1, np.diag(var1), 0), fid.GaussianStatistics(mu2, np.diag(var2), 0)
    )
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_of_sampled_gaussians_approaches_closed_form():
    var1, var2 = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 2.0, 1.0, 0.5])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = fid.fid_from_features(gaussian(mu1, var1, 200_000, 0), gaussian(mu2, var2, 200_000, 1))
    assert got == pytest.approx(expected, abs=0.03)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    a = gaussian(np.zeros(16), np.linspace(0.5, 2, 16), 500, 0)
    b = gaussian(np.full(16, 0.3), np.ones(16), 400, 1)
    assert fid.fid_from_features(a, a) == pytest.approx(0, abs=1e-8)
    assert fid.fid_from_features(a, b) == pytest.approx(fid.fid_from_features(b, a), rel=1e-9)
    assert fid.fid_from_features(a, b) > 1


def test_singular_covariances():
    # 10 samples in 64 dimensions: rank-9 covariances, a singular product.
    a, b = gaussian(np.zeros(64), np.ones(64), 10, 0), gaussian(np.zeros(64), np.ones(64), 10, 1)
    value = fid.fid_from_features(a, b)
    assert np.isfinite(value) and value > 0
    assert abs(fid.fid_from_features(a, a)) < 1e-6 * np.trace(np.cov(a.T))
    # Equal to the general matrix square root where that is well conditioned.
    from scipy import linalg

    c, d = (gaussian(np.zeros(8), np.linspace(0.5, 2, 8), 500, seed) for seed in (2, 3))
    s1, s2 = np.cov(c.T), np.cov(d.T)
    reference = (
        np.sum((c.mean(0) - d.mean(0)) ** 2)
        + np.trace(s1 + s2)
        - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    )
    np.testing.assert_allclose(fid.fid_from_features(c, d), reference, rtol=1e-6)


def test_invalid_statistics_raise():
    good = fid.statistics(gaussian(np.zeros(3), np.ones(3), 50, 0))
    with pytest.raises(ValueError, match='do not match'):
        fid.frechet_distance(good, fid.statistics(gaussian(np.zeros(4), np.ones(4), 50, 0)))
    broken = fid.GaussianStatistics(np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]), 0)
    with pytest.raises(ValueError, match='not positive semi-definite'):
        fid.frechet_distance(broken, fid.GaussianStatistics(np.zeros(2), np.eye(2), 0))
    with pytest.raises(ValueError, match='at least 2 samples'):
        fid.statistics(np.zeros((1, 3)))


def test_streaming_statistics_equal_one_shot():
    # A large common offset checks that the streaming sums do not lose the covariance's digits.
    features = gaussian(np.full(8, 1e4), np.linspace(0.1, 1, 8), 1003, 0)
    stream = fid.StreamingStatistics()
    for start in range(0, len(features), 128):
        stream.update(features[start : start + 128])
    got, want = stream.result(), fid.statistics(features)
    assert got.count == want.count == 1003
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(got.covariance, want.covariance, rtol=1e-9, atol=1e-12)


def test_streaming_statistics_reject_a_changed_dimension():
    stream = fid.StreamingStatistics()
    stream.update(np.zeros((4, 3)))
    with pytest.raises(ValueError, match='from 3 to 5'):
        stream.update(np.zeros((4, 5)))


# --- precision and recall ----------------------------------------------------------------------


def test_identical_sets_have_full_precision_and_recall():
    x = gaussian(np.zeros(8), np.ones(8), 300, 0)
    assert pr.precision_recall(x, x) == (1.0, 1.0)


def test_mode_collapse_gives_high_precision_and_low_recall():
    real = gaussian(np.zeros(2), np.ones(2), 2000, 0)
    # Generated samples sit in a small region near the real data's centre.
    generated = gaussian(np.zeros(2), np.full(2, 0.01), 2000, 1)
    result = pr.precision_recall(real, generated)
    assert result.precision > 0.95
    assert result.recall < 0.2


def test_far_apart_sets_have_zero_precision_and_recall():
    real = gaussian(np.zeros(4), np.ones(4), 200, 0)
    generated = gaussian(np.full(4, 100.0), np.ones(4), 200, 1)
    assert pr.precision_recall(real, generated) == (0.0, 0.0)


def test_hand_computed_example():
    # k=1 on a line. Real radii (to the nearest other real point): 0, 1, 2, 3 -> 1; 10 -> 7.
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    # Generated radii: -0.5 and -1.5 -> 1; 12 and 13 -> 1.
    generated = np.array([[-0.5], [-1.5], [12.0], [13.0]])
    np.testing.assert_allclose(pr.knn_radii(real.astype(np.float32), k=1), [1, 1, 1, 1, 49])
    result = pr.precision_recall(real, generated, k=1)
    # Inside a real ball: -0.5 (0's), 12 and 13 (10's, radius 7); not -1.5.
    assert result.precision == 0.75
    # Inside a generated ball: only 0 (-0.5's); 10 is 2 away from 12.
    assert result.recall == 0.2


def test_precision_and_recall_are_not_swapped():
    # Real data covers [-1, 1]; generated samples cover [-1, 3]. Half the samples are unrealistic
    # (precision ~ 0.5) but all real data is covered (recall ~ 1).
    rng = np.random.RandomState(0)
    real = rng.uniform(-1, 1, (1000, 1))
    generated = rng.uniform(-1, 3, (1000, 1))
    result = pr.precision_recall(real, generated)
    assert result.precision == pytest.approx(0.5, abs=0.05)
    assert result.recall > 0.95


def test_batched_equals_unbatched():
    real = gaussian(np.zeros(5), np.ones(5), 257, 0)
    generated = gaussian(np.full(5, 0.5), np.ones(5), 311, 1)
    assert pr.precision_recall(real, generated, batch_size=7) == pr.precision_recall(
        real, generated, batch_size=10_000
    )


def test_mismatched_features_raise():
    with pytest.raises(ValueError, match=r'same d, got \(10, 3\) and \(10, 4\)'):
        pr.precision_recall(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match='more than k=3'):
        pr.knn_radii(np.zeros((3, 2), np.float32))
