"""The board netlist carries the systolic engine's synthesis intent: every memory marked
"no collision" and selected by the board flow, the register copies kept on the ECP5 only."""

import re

import pytest

from boards.engines import engine_config, make_adapter
from boards.platforms import board
from boards.synth import intent_commands
from boards.top import BoardTop

SIZES = {"rows": 2, "cols": 3, "act_depth": 64, "weight_depth": 64, "acc_depth": 16,
         "param_depth": 8}


def _netlist(board_name):
    b = board(board_name)
    top = BoardTop(b, make_adapter("systolic", engine_config("systolic", SIZES)))
    return b.make_platform().prepare(top, "top").files["top.il"]


@pytest.fixture(scope="module")
def ulx3s_netlist():
    return _netlist("ulx3s")


def test_every_engine_memory_is_selected(ulx3s_netlist):
    commands = intent_commands(ulx3s_netlist)
    expected = [("buffers", "act_mem"), ("buffers", "w_mem"), ("accumulator", "acc_mem"),
                ("out_fifo", "storage")]
    expected += [("buffers", f"p_mem_{c}") for c in range(SIZES["cols"])]
    for module, memory in expected:
        pattern = (rf"^setparam -set COLLISION_X_MASK 1 \S*engine\.{module}/"
                   rf"r:MEMID=\\{memory} t:\$memrd_v2 %i$")
        assert sum(bool(re.match(pattern, c)) for c in commands) == 1, (module, memory)


def test_copies_kept_on_the_ecp5_only(ulx3s_netlist):
    copies = ["p_addr_copy_0", "acc_near_copy_2", "out_params_copy_1", "pending_copy_i",
              "credit_copy_i", "shift_copy_0_0", "skew_bank_1_0", "bank_out", "a_mul_copy_0",
              "a_copy_ll", "right_copy_neg", "low_copy_zp"]
    for netlist, kept in ((ulx3s_netlist, True), (_netlist("icebreaker"), False)):
        for name in copies:
            found = re.search(rf"attribute \\keep 1\n\s*wire [^\n]*\\{name}\n", netlist)
            assert bool(found) == kept, (name, kept)
        assert any(c.startswith("setattr -set keep 1") for c in intent_commands(netlist)) \
            == kept
