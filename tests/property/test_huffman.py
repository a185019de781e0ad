"""Properties of the canonical Huffman coder (quantize/huffman.py).

Optimality is checked against the textbook identity "cost of an optimal prefix code = sum of
the weights of all merged nodes", computed here from the frequencies alone; the bit stream
is decoded here by its prefix property, independently of the module's decoder.
"""

import heapq
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantize.huffman import (
    HuffmanCode,
    canonical_codes,
    code_lengths,
    decode,
    encode,
    huffman_bits,
)

frequencies = st.lists(st.integers(0, 10**6), min_size=1, max_size=64)


@st.composite
def streams(draw, max_alphabet=40, max_size=400):
    """A symbol stream over a skewed alphabet (some symbols absent, some dominant)."""
    alphabet = draw(st.integers(1, max_alphabet))
    weights = draw(st.lists(st.sampled_from([0, 1, 2, 5, 50]), min_size=alphabet,
                            max_size=alphabet))
    present = [s for s, w in enumerate(weights) for _ in range(w)]
    if not present:
        return alphabet, np.zeros(0, dtype=np.int64)
    symbols = draw(st.lists(st.sampled_from(present), max_size=max_size))
    return alphabet, np.array(symbols, dtype=np.int64)


def optimal_cost(freqs):
    """Bits of an optimal prefix code for ``freqs`` (one bit per symbol if only one)."""
    f = [int(x) for x in freqs if x > 0]
    if len(f) == 1:
        return f[0]
    heapq.heapify(f)
    cost = 0
    while len(f) > 1:
        merged = heapq.heappop(f) + heapq.heappop(f)
        cost += merged
        heapq.heappush(f, merged)
    return cost


def code_words(lengths):
    codes = canonical_codes(lengths)
    return {s: format(int(codes[s]), f"0{int(lengths[s])}b")
            for s in np.flatnonzero(lengths)}


@settings(deadline=None, max_examples=300)
@given(frequencies)
def test_code_lengths_optimal_and_complete(freqs):
    lengths = code_lengths(freqs)
    f = np.array(freqs, dtype=np.int64)
    present = f > 0
    assert ((lengths > 0) == present).all()
    if present.sum() == 0:
        return
    assert int(np.sum(f * lengths)) == optimal_cost(freqs)
    kraft = sum(Fraction(1, 2 ** int(n)) for n in lengths[present])
    if present.sum() >= 2:
        assert kraft == 1                    # a full binary tree: no wasted code space
        fixed = math.ceil(math.log2(present.sum()))
        assert int(np.sum(f * lengths)) <= fixed * int(f.sum())
    else:
        assert lengths[present].tolist() == [1]


@settings(deadline=None, max_examples=300)
@given(frequencies)
def test_canonical_codes_prefix_free(freqs):
    lengths = code_lengths(freqs)
    words = code_words(lengths)
    assert all(len(w) == lengths[s] for s, w in words.items())
    ws = sorted(words.values())
    # In lexicographic order, a word that is a prefix of another sits right before one.
    for a, b in zip(ws, ws[1:], strict=False):
        assert not b.startswith(a)
    # Canonical: ordered by (length, symbol), the left-aligned codes strictly increase.
    order = sorted(words, key=lambda s: (len(words[s]), s))
    width = max((len(w) for w in ws), default=0)
    aligned = [int(words[s].ljust(width, "0"), 2) for s in order]
    assert aligned == sorted(set(aligned))


@settings(deadline=None, max_examples=300)
@given(streams())
def test_encode_decode_round_trip(case):
    alphabet, symbols = case
    code = encode(symbols, alphabet)
    assert code.count == symbols.size
    freqs = np.bincount(symbols, minlength=alphabet)
    assert code.nbits == int(np.sum(freqs * code.lengths)) == huffman_bits(symbols, alphabet)
    assert code.nbits == (optimal_cost(freqs) if symbols.size else 0)
    assert len(code.data) == math.ceil(code.nbits / 8)
    np.testing.assert_array_equal(decode(code), symbols)
    # The stream is the symbols' code words back to back, MSB first, zero padded.
    words = code_words(code.lengths)
    bits = "".join(format(b, "08b") for b in code.data)
    assert bits == "".join(words[int(s)] for s in symbols).ljust(8 * len(code.data), "0")


@settings(deadline=None, max_examples=100)
@given(streams(), st.integers(-5, 5))
def test_out_of_range_symbols_refused(case, delta):
    alphabet, symbols = case
    bad = np.append(symbols, alphabet + delta if delta >= 0 else delta)
    with pytest.raises(ValueError, match="symbols must be in"):
        encode(bad, alphabet)


@settings(deadline=None, max_examples=300)
@given(streams(max_size=60), st.data())
def test_decode_of_corrupt_code_raises_value_error_or_counts(case, data):
    alphabet, symbols = case
    code = encode(symbols, alphabet)
    raw, nbits, lengths, count = bytearray(code.data), code.nbits, code.lengths.copy(), code.count
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["byte", "nbits", "count", "length", "truncate"]))
        if what == "byte" and raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        elif what == "nbits":
            nbits = data.draw(st.integers(0, 8 * len(raw) + 16))
        elif what == "count":
            count = data.draw(st.integers(0, count + 5))
        elif what == "length":
            lengths[data.draw(st.integers(0, lengths.size - 1))] = data.draw(st.integers(-2, 255))
        elif what == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw)))]
    try:
        out = decode(HuffmanCode(bytes(raw), nbits, lengths, count))
    except ValueError:
        return
    assert out.shape == (count,)
    assert ((out >= 0) & (out < lengths.size)).all()
