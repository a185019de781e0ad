"""1-D k-means and weight sharing."""

import numpy as np
import pytest

from quantize.kmeans import INITS, inertia, init_centroids, kmeans_1d
from quantize.share import share_weights


def _lloyd_reference(x, c, iters=500):
    """Plain Lloyd on unsorted data (empty clusters keep their centroid)."""
    c = np.sort(c.astype(np.float64))
    for _ in range(iters):
        lab = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        new = np.array([x[lab == j].mean() if np.any(lab == j) else c[j]
                        for j in range(c.size)])
        if np.allclose(new, c, rtol=0, atol=0):
            break
        c = np.sort(new)
    return c


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("seed", range(4))
def test_never_above_start(init, seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(3000), rng.laplace(0, 3, 500)])
    for k in (2, 5, 16, 64):
        r = kmeans_1d(x, k, init=init, seed=seed)
        start = inertia(x, init_centroids(np.sort(x), k, init, seed))
        assert inertia(x, r.centroids) <= start * (1 + 1e-12)
        assert r.inertia == pytest.approx(inertia(x, r.centroids), rel=1e-6)
        assert np.all(np.diff(r.centroids) >= 0)
        # labels are the nearest centroids
        d = np.abs(x[:, None] - r.centroids[None, :])
        np.testing.assert_allclose(d[np.arange(x.size), r.labels], d.min(axis=1))


def test_matches_plain_lloyd():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(2000)
    r = kmeans_1d(x, 8, init="linear", max_iter=500)
    ref = _lloyd_reference(x, np.linspace(x.min(), x.max(), 8))
    np.testing.assert_allclose(r.centroids, ref, rtol=1e-9, atol=1e-12)


def test_well_separated_clusters_found():
    x = np.concatenate([np.full(10, -3.0), np.full(20, 0.5), np.full(5, 4.0)])
    r = kmeans_1d(x, 3)
    np.testing.assert_allclose(r.centroids, [-3.0, 0.5, 4.0])
    assert r.inertia == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("reserve_zero", [False, True])
def test_share_zeros_stay_zero(bits, reserve_zero):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((40, 30)).astype(np.float32)
    mask = rng.random(w.shape) < 0.2
    s = share_weights(w * mask, mask, bits, reserve_zero=reserve_zero)
    shared = s.weight()
    assert np.all(shared[~mask] == 0)
    assert len(np.unique(shared[mask])) <= 2 ** bits - reserve_zero
    assert s.codebook.size == 2 ** bits
    if reserve_zero:
        assert s.codebook[0] == 0 and np.all(s.index[mask] >= 1) and np.all(s.index[~mask] == 0)
    # every kept weight maps to its nearest centroid
    used = s.codebook[1:] if reserve_zero else s.codebook
    err = np.abs(w[mask] - shared[mask])
    best = np.min(np.abs(w[mask][:, None] - used[None, :]), axis=1)
    np.testing.assert_allclose(err, best, atol=1e-6)


def test_share_rejects_bits():
    with pytest.raises(ValueError, match="2..8"):
        share_weights(np.ones((2, 2)), None, 9)
