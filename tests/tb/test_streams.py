"""The testbenches' shared stream source and sink (:mod:`sim.tb.streams`) on two FIFOs."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim import rtl
from sim.beat_source import VERILOG, beat_source, beat_source_ports
from sim.tb.streams import Stalls

WIDTH = 16
BEATS = 200


class StreamLoop(wiring.Component):
    """``i_py`` → FIFO → ``o_py``; a beat source ``bs`` → FIFO → ``o_file``."""

    def __init__(self):
        super().__init__({"i_py": In(stream.Signature(WIDTH)),
                          "o_py": Out(stream.Signature(WIDTH)),
                          "o_file": Out(stream.Signature(WIDTH)),
                          **beat_source_ports("bs")})

    def elaborate(self, platform):
        m = Module()
        m.submodules.py_fifo = py_fifo = fifo.SyncFIFO(width=WIDTH, depth=4)
        m.submodules.file_fifo = file_fifo = fifo.SyncFIFO(width=WIDTH, depth=4)
        wiring.connect(m, wiring.flipped(self.i_py), py_fifo.w_stream)
        wiring.connect(m, py_fifo.r_stream, wiring.flipped(self.o_py))
        wiring.connect(m, file_fifo.r_stream, wiring.flipped(self.o_file))
        w = file_fifo.w_stream
        m.submodules.source = beat_source(self, "bs", valid=w.valid, payload=w.payload,
                                          ready=w.ready, depth=BEATS, file="loop_beats.hex")
        return m


def _run(tmp_path, source_stall, sink_stall, seed=1):
    build = rtl.build("stream_loop", (WIDTH, BEATS), StreamLoop,
                      sources=("tests/tb/test_streams.py", "sim/beat_source.py"),
                      verilog=(VERILOG,))
    tmp_path.mkdir()
    rng = random.Random(seed)
    beats = [rng.getrandbits(WIDTH) for _ in range(BEATS)]
    (tmp_path / "beats.hex").write_text("".join(f"{b:x}\n" for b in beats))
    result = rtl.run(build, "sim.tb.stream_check",
                     {"beats": [f"{b:x}" for b in beats], "file": str(tmp_path / "beats.hex"),
                      "source_stall": source_stall, "sink_stall": sink_stall, "seed": seed},
                     workdir=tmp_path / "sim")
    for path in ("py", "file"):
        assert [int(b, 16) for b in result[path]["beats"]] == beats, f"{path}: beats differ"
    return {path: result[path]["cycles"] for path in ("py", "file")}


@pytest.mark.rtl
def test_source_and_sink_pause_at_random(tmp_path):
    # Without pauses a beat a cycle, the FIFO's latency on top; with them, the source
    # idles (or the sink refuses) about half the cycles, on either path.
    fast = _run(tmp_path / "fast", 0.0, 0.0)
    for cycles in fast.values():
        assert BEATS <= cycles <= BEATS + 3
    for source_stall, sink_stall in ((0.5, 0.0), (0.0, 0.5)):
        slow = _run(tmp_path / f"slow{source_stall}", source_stall, sink_stall)
        for path, cycles in slow.items():
            assert cycles > 1.6 * BEATS, (path, source_stall, sink_stall, cycles)


def test_stalls_checks_its_probability():
    with pytest.raises(ValueError, match="stall probability"):
        Stalls(1.0)
    never = Stalls(0.0, random.Random(3))
    assert not any(never.pause() for _ in range(100))
    assert Stalls(0.5).threshold == 128 and Stalls(0.999).threshold == 255
