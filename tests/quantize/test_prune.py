"""Pruning: exact counts, Han's threshold, global threshold, activation-aware scores."""

import numpy as np
import pytest

from quantize.prune import prune_activation_aware, prune_global, prune_quality, prune_sparsity


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.99])
def test_sparsity_exact_and_by_magnitude(sparsity):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((50, 40))
    m = prune_sparsity(w, sparsity)
    assert m.sum() == w.size - round(sparsity * w.size)
    if 0 < m.sum() < w.size:
        assert np.abs(w[m]).min() >= np.abs(w[~m]).max()


def test_quality_threshold():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 30))
    m = prune_quality(w, 0.7)
    t = 0.7 * w.std()
    assert np.all(np.abs(w[m]) >= t - 1e-6) and np.all(np.abs(w[~m]) < t + 1e-6)


def test_global_keeps_count_and_one_threshold():
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((20, 10)), 3 * rng.standard_normal((5, 20))]
    ms = prune_global(ws, 0.8)
    kept = sum(int(m.sum()) for m in ms)
    assert kept == 300 - 240
    low = min(np.abs(w[m]).min() for w, m in zip(ws, ms, strict=True))
    high = max(np.abs(w[~m]).max() for w, m in zip(ws, ms, strict=True))
    assert low >= high
    assert ms[1].mean() > ms[0].mean()  # the larger-weight layer keeps more


def test_activation_aware_drops_dead_inputs():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((10, 8))
    x = rng.random((100, 8))
    x[:, 2] = 0  # a dead input: its weights are free to prune
    w[:, 2] = 10.0
    m = prune_activation_aware(w, x, 0.25)
    assert not m[:, 2].any()
    with pytest.raises(ValueError, match="sparsity"):
        prune_sparsity(w, 1.0)
