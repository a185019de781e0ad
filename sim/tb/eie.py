"""cocotb testbench of ``EieTop``: loads images, runs layers, collects outputs and counters.

Driven by :func:`sim.eie.run_rtl_cases` through ``job_params()``: a config and a list of
cases, each a ``.npz`` of layer commands and two hex files of ``i_load`` beats (the image
with the inputs, and the inputs alone), made by the driver (:mod:`hw.eie.driver`), which
also reads the result beats here. The model is :class:`sim.eie_harness.EieHarness`: its
beat source plays a file onto ``i_load``, so loading costs no Python per clock cycle
either. Every stream can be given random idle/backpressure cycles (``stalls``, a
probability per cycle); a case can pulse reset in the middle of its first layer
(``reset_after`` cycles), then reload its inputs and run. Without stalls the testbench
does no Python work per clock cycle while a layer runs. The stream drivers are the
testbenches' shared ones (:mod:`sim.tb.streams`).
"""

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from hw.eie.config import EieConfig
from hw.eie.driver import parse_results
from sim.eie_harness import LOAD_FILE
from sim.rtl import job_params, write_result
from sim.tb.streams import BeatSource, Stalls, StreamSink, StreamSource

__all__ = ["TB", "CLOCK_NS", "run_cases"]

CLOCK_NS = 10


class TB:
    """The EIE harness's streams: ``i_cmd`` and ``o_result`` from Python, ``i_load`` from
    the harness's beat source, all pausing at random as ``stalls`` (a probability per
    cycle, drawn from ``rng``) says (:mod:`sim.tb.streams`)."""

    def __init__(self, dut, rng: random.Random, stalls: float):
        self.dut = dut
        self.set_stalls(stalls, rng)

    def set_stalls(self, probability: float, rng: random.Random) -> None:
        """Pause every stream with ``probability`` a cycle from now on."""
        self.stalls = Stalls(probability, rng)
        self.loader = BeatSource(self.dut, "ld", LOAD_FILE, self.stalls)
        self.results = StreamSink(self.dut, "o_result", self.stalls)

    async def reset(self):
        dut = self.dut
        dut.rst.value = 1
        self.loader.idle()
        dut.i_cmd__valid.value = 0
        self.results.idle()
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0

    async def send(self, name: str, payloads):
        """Drive ``payloads`` on stream ``name``, with random idle cycles."""
        await StreamSource(self.dut, name, self.stalls).send(payloads)

    async def load(self, path: str, count: int):
        """Play ``count`` beats from the hex file ``path`` on ``i_load`` through the
        harness's beat source (random idle cycles as ``stalls``), in one call."""
        await self.loader.play(path, count)

    async def receive(self, beats: int) -> list[int]:
        """Take ``beats`` result beats, with random backpressure."""
        return await self.results.receive(beats)

    async def wait_idle(self):
        dut = self.dut
        await ReadOnly()
        if int(dut.o_busy.value):
            await FallingEdge(dut.o_busy)
        await RisingEdge(dut.clk)


@cocotb.test()
async def run_cases(dut):
    params = job_params()
    config = EieConfig.from_dict(params["config"])
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    tb = TB(dut, random.Random(0), 0.0)
    await tb.reset()
    results = []
    for case in params["cases"]:
        f = np.load(case["file"])
        cmds = [int(x, 16) for x in f["cmds"]]
        emits, rows = f["emits"].tolist(), f["rows"].tolist()
        out_features = f["out_features"].tolist()
        tb.set_stalls(case["stalls"], random.Random(case["seed"]))

        t0 = time.monotonic()
        load_start = get_sim_time("ns") // CLOCK_NS
        await tb.load(case["load_file"], int(f["beats"]))
        load_cycles = int(get_sim_time("ns") // CLOCK_NS - load_start)
        if case.get("reset_after") is not None:
            # Start the first layer, reset in the middle of it, reload the inputs.
            await tb.send("i_cmd", cmds[:1])
            await ClockCycles(dut.clk, int(case["reset_after"]))
            await tb.reset()
            await tb.load(case["acts_file"], int(f["acts"]))
        load_seconds = time.monotonic() - t0
        counters_before = hex(int(dut.o_counters.value))
        cycle0 = get_sim_time("ns") // CLOCK_NS

        t1 = time.monotonic()
        sender = cocotb.start_soon(tb.send("i_cmd", cmds))
        emitted = []
        for layer, emit in enumerate(emits):
            if emit:
                raw = await tb.receive(rows[layer])
                emitted.append(parse_results(config, raw, out_features[layer]))
        await sender
        await tb.wait_idle()
        run_seconds = time.monotonic() - t1
        results.append({
            "emitted": emitted,
            "counters_before": counters_before,
            "counters_after": hex(int(dut.o_counters.value)),
            "load_seconds": load_seconds,
            "load_cycles": load_cycles,
            "run_seconds": run_seconds,
            "sim_cycles": int(get_sim_time("ns") // CLOCK_NS - cycle0),
        })
    write_result({"cases": results})
