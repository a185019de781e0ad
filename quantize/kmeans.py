"""Exact 1-D k-means (Lloyd) on sorted values with prefix sums.

In one dimension every cluster is a contiguous run of the sorted values, bounded by the
midpoints between neighbouring centroids. After one ``O(n log n)`` sort, each Lloyd step is
``k`` binary searches plus prefix-sum differences — ``O(k log n)``, independent of ``n`` —
so 10 M weights take about as long as the sort itself.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["KMeansResult", "kmeans_1d", "init_centroids", "inertia", "INITS"]

INITS = ("linear", "density", "random")


@dataclass
class KMeansResult:
    """Members: ``centroids`` (float64[k], ascending), ``labels`` (int[n], input order),
    ``inertia`` (sum of squared distances), ``initial_inertia`` (of the initial centroids),
    ``iterations``."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    initial_inertia: float
    iterations: int


def init_centroids(sorted_values: np.ndarray, k: int, init: str = "linear", seed: int = 0):
    """Initial centroids: ``linear`` (evenly spaced over [min, max], Han's default),
    ``density`` (evenly spaced on the CDF) or ``random`` (k distinct samples, Forgy)."""
    x = sorted_values
    if init == "linear":
        return np.linspace(float(x[0]), float(x[-1]), k)
    if init == "density":
        return x[np.minimum(((np.arange(k) + 0.5) / k * x.size).astype(np.int64),
                            x.size - 1)].astype(np.float64)
    if init == "random":
        rng = np.random.default_rng(seed)
        return np.sort(x[rng.choice(x.size, size=min(k, x.size), replace=False)]
                       .astype(np.float64))
    raise ValueError(f"unknown k-means init {init!r}; choose one of {', '.join(INITS)}")


def _cuts(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    bounds = (centroids[1:] + centroids[:-1]) / 2
    return np.concatenate(([0], np.searchsorted(x, bounds, side="right"), [x.size]))


def _segment_stats(s1, s2, cuts):
    n = np.diff(cuts)
    return n, s1[cuts[1:]] - s1[cuts[:-1]], s2[cuts[1:]] - s2[cuts[:-1]]


def inertia(values: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances from each value to its nearest centroid (direct, exact)."""
    c = np.sort(np.asarray(centroids, dtype=np.float64))
    v = np.asarray(values, dtype=np.float64)
    labels = np.clip(np.searchsorted((c[1:] + c[:-1]) / 2, v, side="left"), 0, c.size - 1)
    return float(np.sum((v - c[labels]) ** 2))


def kmeans_1d(values, k: int, init: str = "linear", max_iter: int = 300, seed: int = 0):
    """Cluster 1-D ``values`` into ``k`` clusters; returns a :class:`KMeansResult`.

    Empty clusters keep their centroid (so inertia never rises above the start's).
    Stops when no boundary moves. Raises ``ValueError`` for ``k < 1``, no values, or a NaN
    or infinite value.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = np.asarray(values).reshape(-1)
    if values.size == 0:
        raise ValueError("k-means needs at least one value")
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ValueError(f"k-means needs finite values: {bad} of {values.size} are NaN or "
                         f"infinite (check the weights)")
    x = np.sort(values.astype(np.float64, copy=False))
    s1 = np.concatenate(([0.0], np.cumsum(x)))
    s2 = np.concatenate(([0.0], np.cumsum(x * x)))
    c = init_centroids(x, k, init, seed)
    if c.size < k:  # fewer distinct samples than clusters
        c = np.concatenate([c, np.full(k - c.size, c[-1])])
    c = np.sort(c)
    cuts = _cuts(x, c)
    n, sx, sxx = _segment_stats(s1, s2, cuts)
    start = float(np.sum(sxx - 2 * c * sx + n * c * c))
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        c = np.sort(np.where(n > 0, sx / np.maximum(n, 1), c))
        new = _cuts(x, c)
        if np.array_equal(new, cuts):
            break
        cuts = new
        n, sx, sxx = _segment_stats(s1, s2, cuts)
    labels = np.clip(np.searchsorted((c[1:] + c[:-1]) / 2, values, side="left"), 0, k - 1)
    final = float(np.sum(np.maximum(sxx - 2 * c * sx + n * c * c, 0)))
    return KMeansResult(c, labels, final, start, iterations)
