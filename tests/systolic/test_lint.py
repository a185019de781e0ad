"""The systolic engine's generated Verilog passes Verilator's lint."""

import pytest

from hw.systolic import PRESETS
from hw.systolic.top import SystolicTop
from sim.lint import lint_component


@pytest.mark.rtl
def test_systolic_verilog_lints_clean():
    assert lint_component(SystolicTop(PRESETS["4x4"]), "systolic_top") == []
