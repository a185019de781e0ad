"""EIE with 2-bit codebook indices (ternary and binary weights): config, encoding, RTL.

A 2-bit index is a 4-entry codebook: the reserved zero plus three values, which holds
trained ternary weights (0, -Wn, +Wp) and binary ones (-a, +a). With ``zrun_bits`` 2 an
entry is 4 bits (16 a 64-bit word), with 6 it is 8 bits (8 a word).
"""

import dataclasses

import numpy as np
import pytest

from hw.eie import PRESETS, EieConfig
from hw.eie.csc import decode, encode, pack_words, unpack_words
from sim.eie import run_rtl_cases

from .cases import make_small_cases, run_and_check

CONFIGS = {
    "ib2_zrun2": dataclasses.replace(PRESETS["test4"], index_bits=2, zrun_bits=2),
    "ib2_zrun6": dataclasses.replace(PRESETS["test4"], index_bits=2, zrun_bits=6),
}


def test_configs_accept_two_bit_indices():
    for config in CONFIGS.values():
        assert config.codebook_size == 4
        assert config.entries_per_word == 64 // (2 + config.zrun_bits)
    with pytest.raises(ValueError, match="word_bits"):
        EieConfig(pes=4, index_bits=2, zrun_bits=4)      # 6-bit entries do not tile 64 bits


@pytest.mark.parametrize("name", list(CONFIGS))
def test_encode_round_trip_and_out_of_range(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(3)
    idx = (rng.random((37, 29)) < 0.4) * rng.integers(1, 4, (37, 29))
    idx[-1, 5] = 3                          # a long zero run before it: padding entries
    layer = encode(idx.astype(np.uint8), config)
    assert np.array_equal(decode(layer), idx)
    for p in range(config.pes):
        entries = layer.pe_entries(p)
        assert np.array_equal(unpack_words(pack_words(entries, config), entries.size, config),
                              entries)
    with pytest.raises(ValueError):
        encode(np.full((4, 4), 4, np.uint8), config)


def _ternary_cases(config, seed):
    """Ternary and binary layers (codebook 0, -Wn, +Wp and -a, +a) over the widths, a
    chained linear-then-ReLU MLP, zero runs of every length, random stalls."""
    rng = np.random.default_rng(seed)
    n = config.pes
    w_hi, a_hi = (1 << (config.weight_width - 1)) - 1, (1 << (config.act_width - 1)) - 1

    def acts(size, density, hi=2000):
        v = rng.integers(-hi, hi + 1, size)
        v[v == 0] = 1
        return v * (rng.random(size) < density)

    def ternary(rows, cols, density):
        return ((rng.random((rows, cols)) < density) * rng.integers(1, 3, (rows, cols))
                ).astype(np.uint8)

    def codebook():
        return np.array([0, -int(rng.integers(1, 4000)), int(rng.integers(1, 4000)), 0])

    cases = []
    for name, rows, cols, density, act_density, stalls in (
            ("ternary_dense", 3 * n + 1, 2 * n + 3, 0.6, 1.0, 0.3),
            ("ternary_sparse_long_runs", 20 * n + 3, 40, 0.05, 0.7, 0.3),
            ("ternary_acts_sparse", 6 * n, 90, 0.5, 0.1, 0.5)):
        cases.append((name, [{"indices": ternary(rows, cols, density), "codebook": codebook(),
                              "relu": False, "bias": rng.integers(-500, 500, rows)}],
                      acts(cols, act_density), {"stalls": stalls}))
    # Binary: every weight kept (no zero runs at all), -a and +a.
    rows, cols = 8 * n + 2, 6 * n + 1
    a = int(rng.integers(1, 4000))
    cases.append(("binary_all_kept", [{"indices": rng.integers(1, 3, (rows, cols)).astype(np.uint8),
                                       "codebook": np.array([0, -a, a, 0]), "relu": True}],
                  acts(cols, 0.9), {"stalls": 0.5}))
    # A low-rank pair (no activation after the first factor) then a ReLU layer, chained
    # on chip, all three emitted: the linear layer's negative outputs reach the next one.
    sizes = [2 * n + 5, n - 1 if n > 1 else 1, 3 * n + 2, n + 1]
    chain = [{"indices": ternary(sizes[k + 1], sizes[k], 0.7), "codebook": codebook(),
              "relu": k == 1, "bias": rng.integers(-300, 300, sizes[k + 1])} for k in range(3)]
    cases.append(("linear_then_relu_chain", chain, acts(sizes[0], 0.8),
                  {"emit_all": True, "stalls": 0.25}))
    # Saturation both ways through the 2-bit codebook, with no ReLU.
    cb = np.array([0, -w_hi - 1, w_hi, w_hi])
    sat = {"indices": rng.integers(1, 4, (4 * n + 1, 64)).astype(np.uint8), "codebook": cb,
           "relu": False}
    cases.append(("saturation", [sat], acts(64, 1.0, a_hi), {"stalls": 0.5}))
    return cases


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_bit_index_rtl_equals_golden(name):
    """4 PEs, every output word and counter against the golden model, random stalls."""
    config = CONFIGS[name]
    # make_small_cases' last case writes index 4, which needs 3 index bits.
    small = [c for c in make_small_cases(config, seed=5) if c[0] != "saturation_padding"]
    cases = _ternary_cases(config, seed=11) + small
    failures = run_and_check(config, cases, run_rtl_cases)
    assert not failures, "\n".join(failures)
