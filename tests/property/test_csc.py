"""Properties of the interleaved-CSC encoder and decoder (hw/eie/csc.py).

Each property is checked against a direct computation from the dense matrix or from the
module docstring's format, never against the encoder's own intermediate values.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.eie import EieConfig
from hw.eie.csc import CscLayer, balanced_row_order, decode, encode, pack_words


@st.composite
def configs(draw, max_pes=64, max_zrun_bits=8):
    """A valid EieConfig: every index/zero-run width it allows, a word of 1..64 bits."""
    index_bits = draw(st.integers(1, 8))
    zrun_bits = draw(st.integers(1, max_zrun_bits))
    entry_bits = index_bits + zrun_bits
    epw = draw(st.sampled_from([1 << k for k in range(7) if entry_bits << k <= 64]))
    pes = draw(st.integers(1, max_pes))
    return EieConfig(pes=pes, index_bits=index_bits, zrun_bits=zrun_bits,
                     word_bits=entry_bits * epw)


@st.composite
def index_matrices(draw, config, max_rows=80, max_cols=24):
    """A codebook-index matrix: any shape from 0×0, densities from all-zero to dense, some
    columns emptied, values over the whole codebook."""
    rows = draw(st.integers(0, max_rows))
    cols = draw(st.integers(0, max_cols))
    density = draw(st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    top = (1 << config.index_bits) - 1
    w = (rng.random((rows, cols)) < density) * rng.integers(1, top + 1, (rows, cols))
    if cols and draw(st.booleans()):
        w[:, rng.random(cols) < 0.3] = 0
    return w.astype(np.uint8)


@st.composite
def cases(draw, max_pes=64, max_zrun_bits=8, max_rows=80):
    config = draw(configs(max_pes=max_pes, max_zrun_bits=max_zrun_bits))
    return config, draw(index_matrices(config, max_rows=max_rows))


@st.composite
def long_run_cases(draw):
    """Few PEs and narrow zero-run fields, so zero runs of 2**zrun_bits and more (padding
    entries) are common, up to several paddings in a row."""
    config = draw(configs(max_pes=4, max_zrun_bits=3))
    rows = draw(st.integers(1, 160))
    cols = draw(st.integers(1, 6))
    w = np.zeros((rows, cols), dtype=np.uint8)
    top = (1 << config.index_bits) - 1
    for _ in range(draw(st.integers(0, 8))):
        r, c = draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))
        w[r, c] = draw(st.integers(1, top))
    return config, w


def pe_row_blocks(w, pes):
    """PE ``p``'s rows of ``w`` (rows ``p, p + pes, ...``): the reference split."""
    return [w[p::pes] for p in range(pes)]


def expected_entries(w, config):
    """Entry count and padding count per PE, straight from the format's definition."""
    span = 1 << config.zrun_bits
    counts, pads = [], []
    for block in pe_row_blocks(w, config.pes):
        n = p = 0
        for col in block.T:
            prev = -1
            for local in np.flatnonzero(col):
                run = int(local) - prev - 1
                p += run // span
                n += run // span + 1
                prev = int(local)
        counts.append(n)
        pads.append(p)
    return counts, pads


@settings(deadline=None, max_examples=300)
@given(cases())
def test_round_trip(case):
    config, w = case
    layer = encode(w, config)
    out = decode(layer)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, w)


@settings(deadline=None, max_examples=200)
@given(long_run_cases())
def test_round_trip_long_zero_runs(case):
    config, w = case
    np.testing.assert_array_equal(decode(encode(w, config)), w)


@settings(deadline=None, max_examples=150)
@given(st.one_of(cases(max_rows=40), long_run_cases()))
def test_counts_pointers_and_fields(case):
    config, w = case
    layer = encode(w, config)
    counts, pads = expected_entries(w, config)
    assert layer.entry_counts.tolist() == counts
    assert layer.padding_counts.tolist() == pads
    assert layer.pointers.shape == (config.pes, w.shape[1] + 1)
    assert (layer.pointers[:, 0] == 0).all()
    assert (np.diff(layer.pointers, axis=1) >= 0).all()
    np.testing.assert_array_equal(layer.pointers[:, -1], layer.entry_counts)
    assert layer.pe_offsets[0] == 0 and layer.pe_offsets[-1] == layer.entries.size
    span = 1 << config.zrun_bits
    for p in range(config.pes):
        e = layer.pe_entries(p).astype(np.int64)
        v, z = e & ((1 << config.index_bits) - 1), e >> config.index_bits
        assert (z < span).all()
        assert ((v == 0) <= (z == span - 1)).all()   # padding always covers a full span
        # A column's non-zeros, in row order, are exactly its non-padding values.
        ptr = layer.pointers[p]
        for j in range(w.shape[1]):
            col = v[ptr[j]:ptr[j + 1]]
            ref = w[p::config.pes, j]
            assert col[col != 0].tolist() == ref[ref != 0].tolist()
    assert ((layer.entries & ((1 << config.index_bits) - 1)) != 0).sum() == np.count_nonzero(w)


@settings(deadline=None, max_examples=150)
@given(configs(), st.lists(st.integers(0, 2**16 - 1), max_size=300))
def test_pack_words_unpacks_by_documented_layout(config, raw):
    eb, epw = config.entry_bits, config.entries_per_word
    entries = np.array(raw, dtype=np.int64) & ((1 << eb) - 1)
    words = pack_words(entries, config)
    assert words.dtype == np.uint64
    assert words.size == math.ceil(entries.size / epw)
    back = [(int(words[k // epw]) >> ((k % epw) * eb)) & ((1 << eb) - 1)
            for k in range(entries.size)]
    assert back == entries.tolist()
    assert all(int(x) < 1 << config.word_bits for x in words)


@settings(deadline=None, max_examples=150)
@given(cases(max_rows=60))
def test_balanced_row_order(case):
    config, w = case
    pes, rows = config.pes, w.shape[0]
    order = balanced_row_order(w, pes)
    slots = math.ceil(rows / pes)
    assert order.shape == (slots * pes,)
    assert sorted(order[order >= 0].tolist()) == list(range(rows))
    assert (order[order < 0] == -1).all()
    for p in range(pes):
        assert np.count_nonzero(order[p::pes] >= 0) <= slots
    # The permuted matrix round-trips and unpermutes to the original.
    engine = np.zeros((slots * pes, w.shape[1]), dtype=np.uint8)
    engine[order >= 0] = w[order[order >= 0]]
    back = decode(encode(engine, config))
    restored = np.zeros_like(w)
    restored[order[order >= 0]] = back[order >= 0]
    np.testing.assert_array_equal(restored, w)
    assert not back[order < 0].any()


def mutate(layer, data):
    """``layer`` with a few random pointer, offset and entry corruptions."""
    pointers = layer.pointers.copy()
    offsets = layer.pe_offsets.copy()
    entries = layer.entries.copy()
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        what = data.draw(st.sampled_from(["pointer", "offset", "entry", "truncate", "extend"]))
        if what == "pointer" and pointers.size:
            p = data.draw(st.integers(0, pointers.shape[0] - 1))
            j = data.draw(st.integers(0, pointers.shape[1] - 1))
            pointers[p, j] = data.draw(st.integers(-3, int(pointers.max()) + 3))
        elif what == "offset":
            k = data.draw(st.integers(0, offsets.size - 1))
            offsets[k] = data.draw(st.integers(-3, int(offsets.max()) + 3))
        elif what == "entry" and entries.size:
            k = data.draw(st.integers(0, entries.size - 1))
            entries[k] = data.draw(st.integers(0, 2**16 - 1))
        elif what == "truncate" and entries.size:
            entries = entries[:data.draw(st.integers(0, entries.size - 1))]
        elif what == "extend":
            entries = np.concatenate([entries, np.full(data.draw(st.integers(1, 3)), 1,
                                                       dtype=entries.dtype)])
    return CscLayer(layer.rows, layer.cols, layer.pes, layer.index_bits, layer.zrun_bits,
                    entries, offsets, pointers, layer.codebook)


@settings(deadline=None, max_examples=400)
@given(cases(max_pes=8, max_rows=30), st.data())
def test_decode_of_corrupt_layer_raises_value_error_or_keeps_shape(case, data):
    config, w = case
    bad = mutate(encode(w, config), data)
    try:
        out = decode(bad)
    except ValueError:
        return
    assert out.shape == w.shape and out.dtype == np.uint8


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (1, 1), (3, 2)])
@pytest.mark.parametrize("pes", [1, 4, 64])
def test_edge_shapes(shape, pes):
    config = EieConfig(pes=pes)
    for w in (np.zeros(shape, np.uint8), np.full(shape, 15, np.uint8)):
        layer = encode(w, config)
        np.testing.assert_array_equal(decode(layer), w)
        assert layer.padding_counts.tolist() == [0] * pes
        assert layer.entry_counts.sum() == np.count_nonzero(w)


@settings(deadline=None, max_examples=150)
@given(configs(max_pes=4), st.data())
def test_codebook_checked_and_carried(config, data):
    size, width = 1 << config.index_bits, config.weight_width
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = data.draw(st.lists(st.integers(lo - 2, hi + 2), min_size=size - 1,
                                max_size=size - 1))
    first = data.draw(st.sampled_from([0, 0, 0, 1, -1]))
    cb = np.array([first, *values], dtype=np.int64)
    w = np.ones((3, 2), dtype=np.uint8)
    valid = first == 0 and all(lo <= v <= hi for v in values)
    if valid:
        layer = encode(w, config, codebook=cb)
        np.testing.assert_array_equal(layer.codebook, cb)
    else:
        with pytest.raises(ValueError, match="codebook"):
            encode(w, config, codebook=cb)
    with pytest.raises(ValueError, match="codebook must be"):
        encode(w, config, codebook=cb[:-1])
    with pytest.raises(ValueError, match="codebook must be"):
        encode(w, config, codebook=cb.astype(np.float64))


@settings(deadline=None, max_examples=60)
@given(configs(max_pes=4), st.integers(0, 3), st.integers(1, 300))
def test_encode_refuses_bad_indices(config, extra, big):
    top = 1 << config.index_bits
    with pytest.raises(ValueError, match="index out of range"):
        encode(np.full((2, 3), top + big - 1, dtype=np.int64), config)
    with pytest.raises(ValueError, match="index out of range"):
        encode(np.full((2, 3), -1 - extra, dtype=np.int64), config)
    for bad in (np.zeros(3, np.uint8), np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2))):
        with pytest.raises(ValueError, match="2-D integer"):
            encode(bad, config)
