"""cocotb module of the shared stream drivers' own test (``tests/tb/test_streams.py``).

The model is a loop of two FIFOs: ``i_py`` → ``o_py`` (driven by a
:class:`sim.tb.streams.StreamSource`) and a beat source ``bs`` → ``o_file`` (a
:class:`sim.tb.streams.BeatSource`); both outputs go to
:class:`sim.tb.streams.StreamSink`\\ s. Parameters: ``beats`` (hex strings), ``file``
(the same beats as a hex file), ``source_stall``, ``sink_stall``, ``seed``. Returns each
path's beats and the cycles from the start to the last beat's handshake.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from sim.rtl import job_params, write_result
from sim.tb.streams import BeatSource, Stalls, StreamSink, StreamSource

__all__ = ["loop"]

CLOCK_NS = 10


@cocotb.test()
async def loop(dut):
    params = job_params()
    rng = random.Random(params["seed"])
    source_stalls = Stalls(params["source_stall"], rng)
    sink_stalls = Stalls(params["sink_stall"], rng)
    beats = [int(b, 16) for b in params["beats"]]
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.i_py__valid.value = 0
    dut.o_py__ready.value = 0
    dut.o_file__ready.value = 0
    dut.bs_start.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    result = {}
    for path in ("py", "file"):
        sink = StreamSink(dut, f"o_{path}", sink_stalls)
        start = get_sim_time("ns")
        if path == "py":
            sender = cocotb.start_soon(StreamSource(dut, "i_py", source_stalls).send(beats))
        else:
            sender = cocotb.start_soon(
                BeatSource(dut, "bs", "loop_beats.hex", source_stalls).play(params["file"],
                                                                            len(beats)))
        got = await sink.receive(len(beats))
        await sender
        result[path] = {"beats": [format(b, "x") for b in got],
                        "cycles": int(sink.last_time - start) // CLOCK_NS}
    write_result(result)
