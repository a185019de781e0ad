"""cocotb + Verilator tests of EieTop: every output word, counters, corner cases."""

import pytest

from boards.engines import BOARD_CONFIGS, engine_config
from hw.eie import PRESETS, EieConfig
from sim.eie import run_rtl_cases

from .cases import make_cases, make_small_cases, run_and_check


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
    _check(PRESETS["eie64-q64"], queue_limit=8)


@pytest.mark.rtl
@pytest.mark.slow
def test_queue_depth_one():
    _check(EieConfig(pes=4, queue_depth=1, spmat_depth=512, ptr_depth=1024, act_depth=128,
                     bias_depth=256), seed=1)


@pytest.mark.rtl
@pytest.mark.parametrize("case", ["ice40-eie-1pe-small", "ice40-eie-1pe-8bit-q4"])
def test_ice40_board_config(case):
    """The iCE40 board rows' EIE configs that fit (8-bit, 4-deep queue; and 8-bit, 4
    entries a word, one codebook slot, 16-bit accumulator, 2-deep queue) are bit-exact
    too."""
    config = engine_config("eie", BOARD_CONFIGS[case][1])
    failures = run_and_check(config, make_small_cases(config), run_rtl_cases)
    assert not failures, "\n".join(failures)
