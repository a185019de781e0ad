"""Properties of the storage accounting (quantize/storage.py).

The relative-index stream is decoded here by its definition (every entry advances the
position by its run + 1; fillers carry symbol 0 and the longest run) and compared with
the mask; the sizes are compared with counts made directly from the mask.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantize.storage import (
    DENSE_BITS,
    MAX_INDEX_BITS,
    MIN_INDEX_BITS,
    layer_storage,
    relative_indices,
    totals,
)


@st.composite
def masks(draw, max_rows=40, max_cols=40):
    """A weight mask of any shape (0-sized too) from empty to full, with long gaps."""
    rows, cols = draw(st.integers(0, max_rows)), draw(st.integers(0, max_cols))
    density = draw(st.sampled_from([0.0, 0.002, 0.02, 0.1, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.random((rows, cols)) < density


@st.composite
def layers(draw):
    """``(mask, index, bits)``: kept weights carry a codebook index in 1 .. 2**bits - 1."""
    mask = draw(masks())
    bits = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    index = np.where(mask, rng.integers(1, 2**bits, mask.shape), 0)
    return mask, index, bits


def decode_runs(runs, symbols, size):
    """Column-major positions of the kept entries (non-zero symbols) of a run stream."""
    pos = np.cumsum(runs + 1) - 1
    assert pos.size == 0 or pos[-1] < size
    return pos[symbols != 0]


def direct_fillers(mask, index_bits):
    """Filler entries: ``gap // 2**index_bits`` for every gap before a kept weight."""
    pos = np.flatnonzero(mask.T.reshape(-1))
    gaps = np.diff(np.concatenate(([-1], pos))) - 1
    return int(sum(int(g) // 2**index_bits for g in gaps))


@settings(deadline=None, max_examples=300)
@given(layers(), st.integers(1, 8))
def test_relative_indices_reconstruct_the_mask(layer, index_bits):
    mask, index, _ = layer
    runs, symbols = relative_indices(mask, index_bits, index)
    span = 2**index_bits
    assert ((runs >= 0) & (runs < span)).all()
    assert runs.size == symbols.size == np.count_nonzero(mask) + direct_fillers(mask, index_bits)
    flat = mask.T.reshape(-1)
    np.testing.assert_array_equal(decode_runs(runs, symbols, flat.size), np.flatnonzero(flat))
    np.testing.assert_array_equal(symbols[symbols != 0], index.T.reshape(-1)[flat])
    # A filler always covers a full span of zeros.
    assert (runs[symbols == 0] == span - 1).all()


@settings(deadline=None, max_examples=100)
@given(masks(), st.integers(1, 8))
def test_relative_indices_without_index(mask, index_bits):
    runs, symbols = relative_indices(mask, index_bits)
    assert not symbols.any()
    assert runs.size == np.count_nonzero(mask) + direct_fillers(mask, index_bits)


@settings(deadline=None, max_examples=200)
@given(layers(), st.integers(1, 8))
def test_layer_storage_sizes(layer, index_bits):
    mask, index, bits = layer
    s = layer_storage("fc", mask, index, bits, index_bits)
    kept = int(np.count_nonzero(mask))
    fillers = direct_fillers(mask, index_bits)
    entries = kept + fillers
    assert (s.weights, s.kept, s.fillers) == (mask.size, kept, fillers)
    assert s.dense_bits == DENSE_BITS * mask.size
    assert s.pruned_bits == entries * (DENSE_BITS + index_bits)
    codebook = 2**bits * DENSE_BITS
    assert s.pq_bits == entries * (bits + index_bits) + codebook
    # Huffman coding never needs more payload bits than the fixed-width fields.
    tables = codebook + (2**bits + 2**index_bits) * 8
    assert 0 <= s.huffman_bits - tables <= s.pq_bits - codebook
    d = s.as_dict()                            # every figure is reportable, even if empty
    assert d["kept"] == kept and math.isfinite(d["ratio_pq"])
    if entries:
        assert d["ratio_pruned"] == s.dense_bits / s.pruned_bits
    elif mask.size:
        assert d["ratio_pruned"] == math.inf    # every weight pruned: nothing stored
    t = totals([s, s])
    assert t["fillers"] == 2 * fillers and t["pq_bits"] == 2 * s.pq_bits


@settings(deadline=None, max_examples=60)
@given(masks(max_rows=6, max_cols=6),
       st.one_of(st.integers(-64, MIN_INDEX_BITS - 1), st.integers(MAX_INDEX_BITS + 1, 80)))
def test_invalid_index_bits_refused(mask, index_bits):
    with pytest.raises(ValueError, match=f"{MIN_INDEX_BITS}..{MAX_INDEX_BITS}"):
        relative_indices(mask, index_bits)
    with pytest.raises(ValueError, match=f"{MIN_INDEX_BITS}..{MAX_INDEX_BITS}"):
        layer_storage("fc", mask, np.zeros(mask.shape, np.int64), 4, index_bits)


@settings(deadline=None, max_examples=30)
@given(masks(max_rows=6, max_cols=6), st.integers(-8, 0))
def test_invalid_codebook_bits_refused(mask, bits):
    with pytest.raises(ValueError, match="bits"):
        layer_storage("fc", mask, np.zeros(mask.shape, np.int64), bits, 5)
