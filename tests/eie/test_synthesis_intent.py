"""The EIE engine's synthesis intent, as the board flow reads it from a 2-PE ULX3S build:
every PE's loaded memories without collision logic, its per-PE copies kept."""

import re

import pytest

from boards.engines import engine_config, make_adapter
from boards.platforms import board
from boards.synth import intent_commands
from boards.top import BoardTop

PES = 2
#: Registers every PE (or the top level) holds alike, by the part that declares them.
COPIES = {
    "": ["ld_copy_en", "ld_copy_mem", "ld_copy_addr", "start_copy_q"],
    ".scanner": ["layer_copy_in_features", "layer_copy_ptr_base"],
    ".activation_queue": ["layer_copy_limit", "layer_copy_limit_less", "l_copy_valid",
                          "l_copy_odd", "l_copy_a", "l2_copy_valid", "l2_copy_odd",
                          "l2_copy_a"],
    ".accumulator": ["layer_copy_codebook"],
    ".write_back": ["layer_copy_out_features", "layer_copy_bias_base", "layer_copy_use_bias",
                    "layer_copy_relu", "wb_copy_row"] +
                   [f"wb_copy_{what}_{k}" for what in ("valid", "addr") for k in range(4)] +
                   [f"wb_copy_keep_{k}" for k in range(1, 4)],
}


@pytest.fixture(scope="module")
def rtlil():
    b = board("ulx3s")
    adapter = make_adapter("eie", engine_config("eie", {"pes": PES}))
    return b.make_platform().prepare(BoardTop(b, adapter), "top").files["top.il"]


def _kept_wires(rtlil):
    """``{module: {wire names with the keep attribute}}``."""
    kept, module, attrs = {}, None, set()
    for line in rtlil.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "module":
            module = words[1].lstrip("\\")
            kept[module] = set()
        elif words[0] == "attribute":
            attrs.add(words[1].lstrip("\\"))
            continue
        elif words[0] == "wire" and "keep" in attrs:
            kept[module].add(words[-1].lstrip("\\"))
        attrs = set()
    return kept


def test_loaded_memories_have_no_collision_logic(rtlil):
    selected = {}
    for command in intent_commands(rtlil):
        found = re.search(r"(\S+)/r:MEMID=\\(\S+) ", command)
        if found and command.startswith("setparam -set COLLISION_X_MASK 1"):
            selected.setdefault(found[1], set()).add(found[2])
    pes = {module: mems for module, mems in selected.items()
           if re.search(r"\.engine\.pe_\d+$", module)}
    assert len(pes) == PES
    for module, mems in pes.items():
        # The activation and accumulator memories are written while they are read.
        assert mems == {"spmat", "ptr_even", "ptr_odd", "bias"}, module


def test_per_pe_copies_are_kept(rtlil):
    kept = _kept_wires(rtlil)
    engine = next(m for m in kept if m.endswith(".engine.pe_0"))[:-len(".pe_0")]
    for k in range(PES):
        for part, names in COPIES.items():
            module = f"{engine}.pe_{k}{part}"
            assert set(names) <= kept[module], (module, set(names) - kept[module])
    assert {"cb_copy_data", "cb_copy_data2"} <= kept[f"{engine}.codebooks"]
    assert "setattr -set keep 1 w:* a:keep %i %a %ci1 t:$dff %i" in intent_commands(rtlil)
