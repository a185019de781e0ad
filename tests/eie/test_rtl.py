"""cocotb + Verilator tests of EieTop: every output word, counters, corner cases."""

import pytest

from hw.eie import PRESETS, EieConfig
from sim.bench.eie import BENCH_CONFIG
from sim.eie import run_rtl_cases

from .cases import make_cases, run_and_check


def _check(config, seed=0, queue_limit=None):
    failures = run_and_check(config, make_cases(config, seed, queue_limit), run_rtl_cases)
    assert not failures, "\n".join(failures)


CONFIGS = {
    "pes4": PRESETS["test4"],
    "pes16": EieConfig(pes=16, spmat_depth=512, ptr_depth=1024, act_depth=64, bias_depth=128),
}


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(CONFIGS))
def test_corner_cases(name):
    _check(CONFIGS[name])


@pytest.mark.rtl
@pytest.mark.slow
def test_corner_cases_64_pes():
    # The benchmark's build (64-deep queues), capped to EIE's depth of 8.
    _check(BENCH_CONFIG, queue_limit=8)


@pytest.mark.rtl
@pytest.mark.slow
def test_queue_depth_one():
    _check(EieConfig(pes=4, queue_depth=1, spmat_depth=512, ptr_depth=1024, act_depth=128,
                     bias_depth=256), seed=1)


def _small_cases(config, seed=2):
    """Single layers within a small config's memories, values within its widths."""
    import numpy as np
    rng = np.random.default_rng(seed)
    w_hi, a_hi = (1 << (config.weight_width - 1)) - 1, (1 << (config.act_width - 1)) - 1
    k = 1 << config.index_bits
    cases = []
    for name, rows, cols, density, act_density, options in (
            ("dense", 20, 24, 1.0, 1.0, {}),
            ("sparse_stalls", config.act_depth, config.act_depth, 0.1, 0.5, {"stalls": 0.3}),
            ("all_zero_acts", 12, 20, 0.4, 0.0, {}),
            ("one_row_one_col", 1, 1, 1.0, 1.0, {}),
            ("queue_limit_1", 17, 30, 0.3, 0.8, {"queue_limit": 1})):
        mask = rng.random((rows, cols)) < density
        indices = (mask * rng.integers(1, k, (rows, cols))).astype(np.uint8)
        codebook = np.concatenate([[0], rng.integers(-w_hi - 1, w_hi + 1, k - 1)])
        acts = rng.integers(-a_hi - 1, a_hi + 1, cols) * (rng.random(cols) < act_density)
        cases.append((name, [{"indices": indices, "codebook": codebook, "relu": False,
                              "bias": rng.integers(-a_hi - 1, a_hi + 1, rows)}],
                      acts, options))
    # Saturation both ways, and zero runs longer than the run field (padding entries).
    cb = np.array([0] + [w_hi, -w_hi - 1] * (k // 2 - 1) + [w_hi])
    idx = np.zeros((config.act_depth, 16), dtype=np.uint8)
    idx[-1, :], idx[0, :8] = 3, 4
    cases.append(("saturation_padding", [{"indices": idx, "codebook": cb, "relu": True}],
                  np.full(16, a_hi), {}))
    return cases


@pytest.mark.rtl
def test_ice40_board_config():
    """The iCE40 board row's EIE config (8-bit, 4 entries a word, one codebook slot,
    16-bit accumulator, 2-deep queue) is bit-exact too."""
    from boards.engines import engine_config
    from sim.bench.boards import CASES
    config = engine_config("eie", CASES["ice40-eie-1pe-small"][2])
    failures = run_and_check(config, _small_cases(config), run_rtl_cases)
    assert not failures, "\n".join(failures)
