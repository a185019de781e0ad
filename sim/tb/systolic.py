"""cocotb testbench of the systolic engine: whole GEMM jobs handed to the simulation.

One simulation runs a list of GEMM jobs back to back (written by
:func:`sim.systolic.run_jobs`: per job a hex file of beats for each of the act, weight,
param and command streams, and the number of result words) and returns the raw result
words, the cycles from the first input beat to the last result word, and the engine's
counter word. Comparison with the golden model happens in the caller: the testbench knows
no expected values.

The model is :class:`sim.systolic_harness.SystolicHarness`: beat sources in the
simulation play the four streams, so a job costs the testbench one call to start them
and one Python step per result word (:class:`sim.tb.streams.StreamSink`), nothing per
clock cycle in between. ``stall`` (a probability per cycle) makes every source idle and
the result sink refuse at random; ``act_stall`` (if given) is the activation source's own,
and ``act_delay`` starts it that many cycles after the others, so that the command is
taken before the activations (a starved activation stream).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from sim.rtl import job_params, write_result
from sim.tb.streams import BeatSource, Stalls, StreamSink

__all__ = ["SystolicTB", "CLOCK_NS"]

CLOCK_NS = 10


class SystolicTB:
    """Clock, reset, the harness's four beat sources and the result sink.

    ``streams`` maps each beat source's prefix to the file name it reads
    (:data:`sim.systolic_harness.STREAMS`). A job is a dict: ``files`` and ``counts`` (the
    hex file and number of beats of each stream), ``result_words`` and ``limit_cycles``
    (after which the GEMM counts as hung). ``act_stalls`` (default ``stalls``) pause the
    activation source, which starts ``act_delay`` cycles after the others.
    """

    def __init__(self, dut, streams: dict, stalls: Stalls, act_stalls: Stalls | None = None,
                 act_delay: int = 0):
        self.dut = dut
        self.stalls = stalls
        self.act_delay = act_delay
        self.sources = {prefix: BeatSource(dut, prefix, file,
                                           act_stalls if prefix == "act" and act_stalls
                                           else stalls)
                        for prefix, file in streams.items()}
        self.sink = StreamSink(dut, "o_result", stalls)
        self._finished = None   # the last run; its counters are read one edge after it

    async def start(self):
        Clock(self.dut.clk, CLOCK_NS, unit="ns").start()
        await self.reset()

    async def reset(self, cycles: int = 3):
        """Hold reset for ``cycles`` edges; the next :meth:`gemm`'s first edge ends it."""
        for source in self.sources.values():
            source.idle()
        self.sink.idle()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0

    async def gemm(self, job: dict, abort_after: int | None = None) -> dict | None:
        """Load, run and collect one GEMM: ``{"words", "cycles"}``; ``"counters"`` (the
        counter word in hex) is added one clock edge later, by the next :meth:`gemm` or
        :meth:`finish`. ``None`` if reset is due after ``abort_after`` cycles."""
        late = {"act"} if self.act_delay else set()
        for prefix, source in self.sources.items():
            if prefix not in late:
                source.arm(job["files"][prefix], job["counts"][prefix])
        await RisingEdge(self.dut.clk)      # the sources start; the cycle count's origin
        self._read_counters()
        start = get_sim_time("ns")
        for source in self.sources.values():
            source.idle()
        receiver = cocotb.start_soon(self.sink.receive(job["result_words"]))
        for prefix in late:
            await ClockCycles(self.dut.clk, self.act_delay)
            self.sources[prefix].arm(job["files"][prefix], job["counts"][prefix])
            await RisingEdge(self.dut.clk)
            self.sources[prefix].idle()
        if abort_after is not None:
            await ClockCycles(self.dut.clk, abort_after)
            assert not receiver.done(), "GEMM finished before the reset point"
            receiver.cancel()
            return None
        try:
            words = await with_timeout(receiver, job["limit_cycles"] * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"GEMM hung: not {job['result_words']} result words after "
                                 f"{job['limit_cycles']} cycles") from None
        self._finished = {"words": words,
                          "cycles": int(self.sink.last_time - start) // CLOCK_NS}
        return self._finished

    async def finish(self):
        """One more edge, so that the last run's counters are read."""
        await RisingEdge(self.dut.clk)
        self._read_counters()

    def _read_counters(self):
        # Read one edge after the last result word, as the engine counts a cycle late.
        if self._finished is not None:
            assert not int(self.dut.error.value), "engine flagged the command as invalid"
            self._finished["counters"] = format(int(self.dut.counters.value), "x")
            self._finished = None


@cocotb.test()
async def run_jobs(dut):
    params = job_params()
    rng = random.Random(params.get("seed", 0))
    stalls = Stalls(params.get("stall", 0.0), rng)
    act_stall = params.get("act_stall")
    tb = SystolicTB(dut, params["streams"], stalls,
                    None if act_stall is None else Stalls(act_stall, rng),
                    params.get("act_delay", 0))
    await tb.start()
    runs = []
    resets = params.get("reset_after", {})
    for i, job in enumerate(params["jobs"]):
        if str(i) in resets:
            assert await tb.gemm(job, abort_after=resets[str(i)]) is None
            await tb.reset()
        runs.append(await tb.gemm(job))
    await tb.finish()
    write_result({"runs": [{**run, "words": [format(w, "x") for w in run["words"]]}
                           for run in runs]})
