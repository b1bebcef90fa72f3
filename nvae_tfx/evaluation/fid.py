"""Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

    FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

With Inception-v3 pool3 features this is the usual FID; any FeatureNetwork works
(feature_networks.py). Tr((S1 S2)^(1/2)) is computed from symmetric eigendecompositions rather
than the reference implementations' general matrix square root (TTUR, pytorch-fid): the same
value, but exact also for singular covariances (fewer samples than features), where the general
square root returns garbage and the references fall back to offsetting the diagonals.
"""

from typing import NamedTuple

import numpy as np


class GaussianStatistics(NamedTuple):
    mean: np.ndarray  # [d]
    covariance: np.ndarray  # [d, d]
    count: int


def _as_feature_matrix(features) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(
            f'features must be a [num_samples, dim] matrix, got shape {features.shape}'
        )
    return features


def statistics(features) -> GaussianStatistics:
    """Mean and (unbiased) covariance of a [n, d] feature matrix held in memory."""
    features = _as_feature_matrix(features)
    if len(features) < 2:
        raise ValueError(f'a covariance needs at least 2 samples, got {len(features)}')
    return GaussianStatistics(features.mean(0), np.cov(features, rowvar=False), len(features))


class StreamingStatistics:
    """Mean and covariance of features that arrive in batches, in O(d^2) memory.

    Keeps the count, the sum and the sum of outer products in float64. The sums are taken around
    the first batch's mean so that large feature means do not cancel the covariance's digits.
    """

    def __init__(self):
        self._shift = None
        self._count = 0
        self._sum = None
        self._outer = None

    def update(self, features) -> None:
        features = _as_feature_matrix(features)
        if self._shift is None:
            self._shift = features.mean(0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((len(self._shift), len(self._shift)))
        if features.shape[1] != len(self._shift):
            raise ValueError(
                f'feature dimension changed from {len(self._shift)} to {features.shape[1]}'
            )
        centred = features - self._shift
        self._count += len(features)
        self._sum += centred.sum(0)
        self._outer += centred.T @ centred

    def result(self) -> GaussianStatistics:
        if self._count < 2:
            raise ValueError(f'a covariance needs at least 2 samples, got {self._count}')
        mean = self._sum / self._count
        covariance = (self._outer - self._count * np.outer(mean, mean)) / (self._count - 1)
        return GaussianStatistics(self._shift + mean, covariance, self._count)


def _check_psd(eigenvalues: np.ndarray, what: str) -> None:
    if eigenvalues.min() < -1e-6 * max(1.0, float(np.abs(eigenvalues).max())):
        raise ValueError(
            f'{what} is not positive semi-definite (eigenvalue '
            f'{eigenvalues.min():.3g}): covariances are not valid'
        )


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for covariances S1, S2: S1 S2 has the eigenvalues of the symmetric PSD
    matrix S1^(1/2) S2 S1^(1/2), whose square roots sum to the trace."""
    w, v = np.linalg.eigh(sigma1)
    _check_psd(w, 'the first covariance')
    _check_psd(np.linalg.eigvalsh(sigma2), 'the second covariance')
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    product = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(stats1: GaussianStatistics, stats2: GaussianStatistics) -> float:
    mu1, mu2 = np.atleast_1d(stats1.mean), np.atleast_1d(stats2.mean)
    sigma1, sigma2 = np.atleast_2d(stats1.covariance), np.atleast_2d(stats2.covariance)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f'statistics do not match: means {mu1.shape} and {mu2.shape}, '
            f'covariances {sigma1.shape} and {sigma2.shape}'
        )
    diff = mu1 - mu2
    return float(
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2)
    )


def fid_from_features(features1, features2) -> float:
    return frechet_distance(statistics(features1), statistics(features2))
