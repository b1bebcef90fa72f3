"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019), k-NN manifold method.

Each feature set approximates its manifold by the union of balls around its points, each ball's
radius the distance to the point's k-th nearest neighbour within its own set.

  precision = fraction of *generated* samples inside the *real* manifold (are samples realistic?)
  recall    = fraction of *real* samples inside the *generated* manifold (is the data covered?)

Distances are computed a block of rows at a time, so memory stays at batch_size x n distances
(10k x 10k sets of 2048-d features need about 40 MB per block, not 400 MB at once).
"""

from typing import NamedTuple

import numpy as np

K = 3  # The paper's default.
BATCH_SIZE = 1000


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j|^2 via the Gram matrix (one matmul), clipped at 0 against round-off."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return np.maximum(sq, 0)


def knn_radii(features: np.ndarray, k: int = K, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour in the same set."""
    if len(features) <= k:
        raise ValueError(
            f'need more than k={k} samples to find k-th neighbours, got {len(features)}'
        )
    radii = np.empty(len(features), features.dtype)
    for start in range(0, len(features), batch_size):
        sq = _squared_distances(features[start : start + batch_size], features)
        # Column k, not k - 1: each point is its own nearest neighbour at distance 0.
        radii[start : start + batch_size] = np.partition(sq, k, axis=1)[:, k]
    return radii


def coverage(
    manifold: np.ndarray,
    manifold_radii: np.ndarray,
    queries: np.ndarray,
    batch_size: int = BATCH_SIZE,
) -> float:
    """Fraction of queries within manifold_radii[i] of some manifold point i."""
    inside = np.empty(len(queries), bool)
    for start in range(0, len(queries), batch_size):
        sq = _squared_distances(queries[start : start + batch_size], manifold)
        inside[start : start + batch_size] = (sq <= manifold_radii[None, :]).any(1)
    return float(inside.mean())


def precision_recall(
    real_features, generated_features, k: int = K, batch_size: int = BATCH_SIZE
) -> PrecisionRecall:
    real = np.asarray(real_features, np.float32)
    generated = np.asarray(generated_features, np.float32)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            'real and generated features must be [n, d] matrices with the same d, got '
            f'{real.shape} and {generated.shape}'
        )
    real_radii = knn_radii(real, k, batch_size)
    generated_radii = knn_radii(generated, k, batch_size)
    return PrecisionRecall(
        precision=coverage(real, real_radii, generated, batch_size),
        recall=coverage(generated, generated_radii, real, batch_size),
    )
