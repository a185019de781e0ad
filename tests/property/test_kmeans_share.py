"""Properties of 1-D k-means (quantize/kmeans.py) and weight sharing (quantize/share.py).

Nearest-centroid assignments and inertias are checked by brute force over all centroids;
Lloyd's monotonicity by running the same start for more and more iterations.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantize.kmeans import INITS, inertia, kmeans_1d
from quantize.share import MAX_BITS, MIN_BITS, share_weights


@st.composite
def value_sets(draw, max_size=300):
    """Weights-like values: clustered, spread, all equal, few distinct, with repeats."""
    n = draw(st.integers(1, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "clusters", "equal", "few", "uniform"]))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 50.0]))
    if kind == "normal":
        x = rng.normal(0, scale, n)
    elif kind == "clusters":
        x = rng.choice(rng.normal(0, scale, 5), n) + rng.normal(0, scale * 1e-3, n)
    elif kind == "equal":
        x = np.full(n, rng.normal(0, scale))
    elif kind == "few":
        x = rng.choice(rng.normal(0, scale, draw(st.integers(1, 4))), n)
    else:
        x = rng.uniform(-scale, scale, n)
    return x.astype(draw(st.sampled_from([np.float32, np.float64])))


def brute_nearest_distance(values, centroids):
    v = np.asarray(values, np.float64)[:, None]
    return np.min(np.abs(v - np.asarray(centroids, np.float64)[None, :]), axis=1)


def close(a, b, values):
    """Equal up to float rounding of sums of squares of ``values``' magnitude."""
    tol = 1e-9 * (float(np.sum(np.asarray(values, np.float64) ** 2)) + 1e-300)
    return abs(a - b) <= tol


@settings(deadline=None, max_examples=300)
@given(value_sets(), st.integers(1, 64), st.sampled_from(INITS), st.integers(0, 3))
def test_kmeans_result(values, k, init, seed):
    r = kmeans_1d(values, k, init=init, seed=seed)
    c = r.centroids
    assert c.shape == (k,) and c.dtype == np.float64
    assert (np.diff(c) >= 0).all()
    assert np.isfinite(c).all()
    # Inside the values' range, up to the rounding of a mean taken from prefix sums.
    slack = 1e-12 * float(np.max(np.abs(values)))
    assert c.min() >= values.min() - slack and c.max() <= values.max() + slack
    assert r.labels.shape == values.shape
    assert ((r.labels >= 0) & (r.labels < k)).all()
    # Every value sits with a nearest centroid.
    own = np.abs(values.astype(np.float64) - c[r.labels])
    np.testing.assert_array_less(own - brute_nearest_distance(values, c),
                                 1e-12 * (1 + np.abs(values)))
    assert close(r.inertia, float(np.sum(own ** 2)), values)
    assert close(r.inertia, inertia(values, c), values)
    assert r.inertia <= r.initial_inertia or close(r.inertia, r.initial_inertia, values)
    # At most as many distinct centroids in use as distinct values.
    assert np.unique(r.labels).size <= min(k, np.unique(values).size)


@settings(deadline=None, max_examples=100)
@given(value_sets(max_size=200), st.integers(2, 32), st.sampled_from(INITS))
def test_kmeans_inertia_never_rises(values, k, init):
    steps = [inertia(values, kmeans_1d(values, k, init=init, max_iter=m).centroids)
             for m in range(0, 8)]
    for a, b in zip(steps, steps[1:], strict=False):
        assert b <= a or close(a, b, values)


@settings(deadline=None, max_examples=60)
@given(st.integers(-5, 0), st.integers(0, 3))
def test_kmeans_refuses_bad_k_and_empty_input(k, n):
    with pytest.raises(ValueError, match="k must be"):
        kmeans_1d(np.ones(n + 1), k)
    with pytest.raises(ValueError, match="at least one value"):
        kmeans_1d(np.zeros(0), 1 - k)


@settings(deadline=None, max_examples=60)
@given(value_sets(max_size=30), st.integers(1, 8),
       st.sampled_from([np.nan, np.inf, -np.inf]))
def test_kmeans_refuses_non_finite_values(values, k, bad):
    x = np.append(values.astype(np.float64), bad)
    with pytest.raises(ValueError, match="finite"):
        kmeans_1d(x, k)


@st.composite
def layers(draw):
    rows, cols = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.normal(0, draw(st.sampled_from([1e-3, 0.05, 1.0])), (rows, cols))
    if draw(st.booleans()):
        w = np.round(w, 1)                        # repeats and few distinct values
    mask = None if draw(st.booleans()) else rng.random((rows, cols)) < draw(
        st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    return w.astype(np.float32), mask


@settings(deadline=None, max_examples=200)
@given(layers(), st.integers(MIN_BITS, MAX_BITS), st.booleans(), st.sampled_from(INITS))
def test_share_weights(layer, bits, reserve_zero, init):
    w, mask = layer
    s = share_weights(w, mask, bits, init=init, reserve_zero=reserve_zero)
    keep = np.ones(w.shape, bool) if mask is None else mask
    assert s.codebook.shape == (2**bits,) and s.codebook.dtype == np.float32
    assert s.index.shape == w.shape and s.index.dtype == np.uint8
    assert (s.index[~keep] == 0).all()
    shared = s.weight()
    assert shared.dtype == np.float32
    assert (shared[~keep] == 0).all()             # pruned weights stay exactly zero
    first = 1 if reserve_zero else 0
    if reserve_zero:
        assert s.codebook[0] == 0.0
        assert (s.index[keep] >= 1).all()
    centroids = s.codebook[first:]
    assert (np.diff(centroids) >= 0).all() or not keep.any()
    if keep.any():
        # Each kept weight takes (one of) its nearest centroid(s), up to float32 rounding.
        own = np.abs(w[keep].astype(np.float64) - s.codebook[s.index[keep]])
        best = brute_nearest_distance(w[keep], centroids)
        np.testing.assert_array_less(own - best, 1e-6 * (1 + np.abs(w[keep])))


@settings(deadline=None, max_examples=40)
@given(layers(), st.one_of(st.integers(-3, MIN_BITS - 1), st.integers(MAX_BITS + 1, 40)))
def test_share_weights_refuses_bad_bits(layer, bits):
    w, mask = layer
    with pytest.raises(ValueError, match="--bits"):
        share_weights(w, mask, bits)


@settings(deadline=None, max_examples=40)
@given(layers(), st.sampled_from([np.nan, np.inf, -np.inf]), st.booleans())
def test_share_weights_non_finite(layer, bad, pruned):
    w, mask = layer
    assume(w.size)
    w = w.copy()
    w.flat[0] = bad
    keep = np.ones(w.shape, bool) if mask is None else mask.copy()
    keep.flat[0] = not pruned
    if pruned:                                  # a pruned NaN is dropped, not shared
        assert np.isfinite(share_weights(w, keep, 4, reserve_zero=True).weight()).all()
    else:
        with pytest.raises(ValueError, match="finite"):
            share_weights(w, keep, 4, reserve_zero=True)
