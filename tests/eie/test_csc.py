"""Interleaved-CSC encoder and decoder (hw/eie/csc.py)."""

import numpy as np
import pytest

from hw.eie import EieConfig
from hw.eie.csc import decode, encode, pack_words


@pytest.mark.parametrize("pes", [1, 3, 4, 16, 64])
@pytest.mark.parametrize("shape,density", [((10, 7), 0.3), ((300, 50), 0.01), ((37, 20), 1.0),
                                           ((5, 5), 0.0), ((1, 1), 1.0), ((700, 3), 0.02)])
def test_roundtrip(pes, shape, density):
    rng = np.random.default_rng(pes * 1000 + shape[0])
    w = ((rng.random(shape) < density) * rng.integers(1, 16, shape)).astype(np.uint8)
    layer = encode(w, EieConfig(pes=pes))
    assert np.array_equal(decode(layer), w)
    assert layer.pointers.shape == (pes, shape[1] + 1)
    assert (np.diff(layer.pointers, axis=1) >= 0).all()


def test_format_by_hand():
    # 2 PEs; column 0: rows 0 and 4 in PE 0 (local 0, 2), row 1 in PE 1 (local 0).
    # Column 1: row 40 in PE 0 is local row 20: one padding entry (16 rows), then z = 4.
    w = np.zeros((41, 2), dtype=np.uint8)
    w[0, 0], w[4, 0], w[1, 0], w[40, 1] = 3, 5, 9, 1
    layer = encode(w, EieConfig(pes=2))
    assert layer.pe_entries(0).tolist() == [3 | 0 << 4, 5 | 1 << 4, 0 | 15 << 4, 1 | 4 << 4]
    assert layer.pe_entries(1).tolist() == [9]
    assert layer.pointers.tolist() == [[0, 2, 4], [0, 1, 1]]
    assert layer.padding_counts.tolist() == [1, 0]


def test_exactly_fifteen_and_sixteen_zeros():
    w = np.zeros((40, 2), dtype=np.uint8)
    w[15, 0] = 2      # 15 zeros before: fits
    w[16, 1] = 2      # 16 zeros before: one padding entry
    layer = encode(w, EieConfig(pes=1))
    assert layer.pe_entries(0).tolist() == [2 | 15 << 4, 15 << 4, 2]


def test_pack_words():
    config = EieConfig(pes=1)
    words = pack_words(np.arange(1, 11), config)
    assert words.tolist() == [0x0807060504030201, 0x0A09]


def test_errors():
    config = EieConfig(pes=4)
    with pytest.raises(ValueError, match="index out of range"):
        encode(np.full((3, 3), 16, dtype=np.uint8), config)
    with pytest.raises(ValueError, match="reserved for the value 0"):
        encode(np.ones((3, 3), dtype=np.uint8), config, codebook=np.arange(1, 17))
    with pytest.raises(ValueError, match="16 integers"):
        encode(np.ones((3, 3), dtype=np.uint8), config, codebook=np.arange(8))
    with pytest.raises(ValueError, match="2-D integer"):
        encode(np.ones(3), config)


def test_large_layer_round_trips():
    """EIE's 4096 x 4096 benchmark shape on 64 PEs (how fast it encodes is a bench figure,
    not a test)."""
    rng = np.random.default_rng(0)
    w = ((rng.random((4096, 4096), dtype=np.float32) < 0.09)
         * rng.integers(1, 16, (4096, 4096), dtype=np.uint8)).astype(np.uint8)
    layer = encode(w, EieConfig(pes=64))
    np.testing.assert_array_equal(decode(layer), w)
    assert int(layer.entry_counts.sum()) >= int(np.count_nonzero(w))
