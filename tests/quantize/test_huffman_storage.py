"""Huffman coding round trip and the storage accounting on hand-computed cases."""

import numpy as np
import pytest

from quantize.huffman import code_lengths, decode, encode, huffman_bits
from quantize.storage import layer_storage, relative_indices, totals, weight_sharing_ratio


@pytest.mark.parametrize("seed", range(5))
def test_round_trip(seed):
    rng = np.random.default_rng(seed)
    alphabet = int(rng.integers(1, 40))
    p = rng.dirichlet(np.full(alphabet, 0.3))
    x = rng.choice(alphabet, size=int(rng.integers(0, 3000)), p=p)
    code = encode(x, alphabet)
    np.testing.assert_array_equal(decode(code), x)
    assert code.nbits == huffman_bits(x, alphabet)
    assert len(code.data) == -(-code.nbits // 8)


def test_single_symbol_and_optimality():
    np.testing.assert_array_equal(decode(encode(np.full(7, 3), 5)), np.full(7, 3))
    # Frequencies 1, 1, 2, 4: lengths 3, 3, 2, 1 -> 1*3 + 1*3 + 2*2 + 4*1 = 14 bits.
    assert code_lengths([1, 1, 2, 4]).tolist() == [3, 3, 2, 1]
    assert huffman_bits([0, 1, 2, 2, 3, 3, 3, 3], 4) == 14
    # Kraft equality for a complete prefix code.
    lengths = code_lengths(np.random.default_rng(0).integers(1, 100, 17))
    assert sum(2.0 ** -lengths) == pytest.approx(1.0)


def test_relative_indices_with_fillers():
    # Column-major positions 0, 3, 20 (one 3-bit run span is 8 positions):
    # entry 0: run 0; entry 3: run 2; gap to 20 is 16 zeros -> 2 fillers (run 7 each,
    # 8 positions each) and the entry with run 0.
    mask = np.zeros((21, 1), bool)
    mask[[0, 3, 20], 0] = True
    index = np.zeros((21, 1), np.int64)
    index[[0, 3, 20], 0] = [5, 6, 7]
    runs, symbols = relative_indices(mask, 3, index)
    assert runs.tolist() == [0, 2, 7, 7, 0]
    assert symbols.tolist() == [5, 6, 0, 0, 7]


def test_formula_on_hand_computed_case():
    # A 4x5 layer, 4 kept weights at column-major positions 1, 2, 9, 19 (2-bit runs).
    mask = np.zeros((4, 5), bool)
    for pos in (1, 2, 9, 19):
        mask[pos % 4, pos // 4] = True
    index = np.where(mask, 1, 0)
    index[1, 0] = 2  # symbols in stream order: 2, 1, (filler 0), 1, (fillers 0 0), 1
    row = layer_storage("fc", mask, index, bits=2, index_bits=2)
    # gaps: 1, 0, 6 (-> 1 filler, rem 2), 9 (-> 2 fillers, rem 1) => 7 entries
    assert (row.kept, row.fillers) == (4, 3)
    assert row.dense_bits == 32 * 20
    assert row.pruned_bits == 7 * (32 + 2)
    assert row.pq_bits == 7 * (2 + 2) + 4 * 32
    # Huffman: index stream 2,1,0,1,0,0,1 -> freqs {0:3, 1:3, 2:1} -> lengths 2,1,2 or
    # 1,2,2: 3*1 + 3*2 + 1*2 = 11 bits; run stream 1,0,3,2,3,3,1 -> freqs {0:1,1:2,2:1,3:3}
    # -> lengths 3,2,3,1: 3 + 4 + 3 + 3 = 13 bits; + codebook 128 + tables 8*(4+4).
    assert row.huffman_bits == 11 + 13 + 128 + 64
    t = totals([row, row])
    assert t["ratio_pq"] == pytest.approx(640 / (7 * 4 + 128))


def test_weight_sharing_ratio_formula():
    # Han et al. 2016, Fig. 3 example: 16 weights, 4 clusters, 32-bit -> 16*32/(16*2+4*32).
    assert weight_sharing_ratio(16, 2) == pytest.approx(512 / 160)
