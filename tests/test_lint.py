"""Both engines' generated Verilog passes Verilator's lint (WIDTH and CASEINCOMPLETE off)."""

import pytest

from hw.eie import EieConfig, EieTop
from hw.systolic import PRESETS
from hw.systolic.top import SystolicTop
from sim.lint import lint_component


@pytest.mark.rtl
@pytest.mark.parametrize("name, make", [
    ("systolic_top", lambda: SystolicTop(PRESETS["4x4"])),
    ("eie_top", lambda: EieTop(EieConfig(pes=4))),
])
def test_generated_verilog_lints_clean(name, make):
    assert lint_component(make(), name) == []
