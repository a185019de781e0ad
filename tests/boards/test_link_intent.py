"""The host link states its synthesis intent on its declarations, and the board flow finds it
in the netlist: the frame buffer without collision logic and the bus address copy kept
(ECP5)."""

import re

import pytest

from boards.engines import engine_config, make_adapter
from boards.platforms import board
from boards.synth import intent_commands
from boards.top import BoardTop

LINK = "top.core.link"


@pytest.fixture(scope="module")
def ulx3s_rtlil():
    b = board("ulx3s")
    design = BoardTop(b, make_adapter("mac", engine_config("mac", {"rows": 2, "cols": 4})))
    return b.make_platform().prepare(design, "top").files["top.il"]


def _wire_attrs(rtlil: str) -> dict:
    """``{(module, wire): {attribute: value}}`` for every wire that carries attributes."""
    found, module, attrs = {}, None, {}
    for line in rtlil.splitlines():
        words = line.split(maxsplit=2)
        if not words:
            continue
        if words[0] == "module":
            module, attrs = words[1].lstrip("\\"), {}
        elif words[0] == "attribute":
            attrs[words[1].lstrip("\\")] = words[2] if len(words) > 2 else ""
            continue
        elif words[0] == "wire" and attrs:
            found[(module, line.split()[-1].lstrip("\\"))] = attrs
        attrs = {}
    return found


def test_frame_buffer_has_no_collision_logic(ulx3s_rtlil):
    commands = intent_commands(ulx3s_rtlil)
    assert f"setparam -set COLLISION_X_MASK 1 {LINK}/r:MEMID=\\buffer t:$memrd_v2 %i" \
        in commands
    # the executor's info ROM is read-only: nothing to say about it
    assert not [c for c in commands if "info_rom" in c]


def test_link_state_machines_are_left_binary(ulx3s_rtlil):
    """No state wire in the link's hierarchy asks for one-hot: with the three one-hot, the
    8-PE EIE board build stops in Yosys's ABC9 (an assertion at rtlil.cc:3091)."""
    states = re.findall(r"^module \\(\S+)$|^\s*wire .*\\(fsm_state\S*)$", ulx3s_rtlil, re.M)
    module, marked, seen = None, [], 0
    attrs = _wire_attrs(ulx3s_rtlil)
    for mod, wire in states:
        if mod:
            module = mod
        elif module.startswith(LINK):
            seen += 1
            if "fsm_encoding" in attrs.get((module, wire), {}):
                marked.append((module, wire))
    assert seen >= 3 and not marked


def test_bus_address_copy_is_kept_on_ecp5(ulx3s_rtlil):
    attrs = _wire_attrs(ulx3s_rtlil)
    assert attrs.get((f"{LINK}.executor", "bus_addr_copy_count"), {}).get("keep") == "1"
    assert "setattr -set keep 1 w:* a:keep %i %a %ci1 t:$dff %i" in intent_commands(ulx3s_rtlil)
