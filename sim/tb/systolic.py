"""cocotb testbench of the systolic engine's generated top level.

One simulation runs a list of GEMM jobs (``.npz`` files written by
:func:`sim.systolic.run_jobs`) back to back and returns the raw result words, the cycles
from the first input beat to the last result word, and the engine's counters. Comparison
with the golden model happens in the caller: the testbench knows no expected values.
"""

import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.systolic.config import SystolicConfig
from hw.systolic.driver import GemmJob, PackedGemm, pack, parse_counters
from sim.rtl import job_params, write_result

__all__ = ["SystolicTB"]


class SystolicTB:
    """Clock, reset, three addressed load streams, the command stream and the result sink.

    ``stall`` is the per-cycle probability that a source inserts an idle cycle before its
    next beat and that the result sink deasserts ready.
    """

    def __init__(self, dut, cfg: SystolicConfig, stall: float = 0.0, seed: int = 0):
        self.dut, self.cfg, self.stall = dut, cfg, stall
        self.rng = random.Random(seed)
        self.sources = {
            "act": (dut.i_act__valid, dut.i_act__ready, dut.i_act__payload),
            "weight": (dut.i_weight__valid, dut.i_weight__ready, dut.i_weight__payload),
            "param": (dut.i_param__valid, dut.i_param__ready, dut.i_param__payload),
        }

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        await self.reset()

    async def reset(self, cycles: int = 3):
        dut = self.dut
        for valid, _, _ in self.sources.values():
            valid.value = 0
        dut.i_cmd__valid.value = 0
        dut.o_result__ready.value = 0
        dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    def _go(self) -> bool:
        return self.stall == 0 or self.rng.random() >= self.stall

    async def gemm(self, packed: PackedGemm, abort_after: int | None = None):
        """Load, run and collect one GEMM; ``None`` if aborted after ``abort_after`` cycles."""
        dut = self.dut
        queues = {"act": deque(packed.act), "weight": deque(packed.weight),
                  "param": deque(packed.param)}
        held = dict.fromkeys(queues)
        cmd_state = 0  # 0 loading, 1 command presented, 2 command accepted
        words = []
        cycles = 0
        limit = 40 * (len(packed.act) + len(packed.weight) + len(packed.param)) + 20000 \
            + 40 * packed.result_words * max(1, len(packed.weight) // self.cfg.rows)
        out_ready = 0
        while len(words) < packed.result_words:
            for name, (valid, _, payload) in self.sources.items():
                if held[name] is None and queues[name] and self._go():
                    held[name] = queues[name].popleft()
                    payload.value = held[name]
                    valid.value = 1
                elif held[name] is None:
                    valid.value = 0
            if cmd_state == 0 and not any(queues.values()) and \
                    all(h is None for h in held.values()):
                dut.i_cmd__payload.value = packed.command
                dut.i_cmd__valid.value = 1
                cmd_state = 1
            ready = 1 if self._go() else 0
            if ready != out_ready:
                dut.o_result__ready.value = out_ready = ready
            await ReadOnly()
            for name, (_, rdy, _) in self.sources.items():
                if held[name] is not None and rdy.value:
                    held[name] = None
            if cmd_state == 1 and dut.i_cmd__ready.value:
                cmd_state = 2
            if out_ready and dut.o_result__valid.value:
                words.append(int(dut.o_result__payload.value))
            await RisingEdge(dut.clk)
            cycles += 1
            if cmd_state == 2:
                dut.i_cmd__valid.value = 0
            if abort_after is not None and cycles >= abort_after:
                return None
            if cycles > limit:
                raise AssertionError(f"GEMM hung: {len(words)} of {packed.result_words} "
                                     f"result words after {cycles} cycles")
        dut.o_result__ready.value = 0
        for valid, _, _ in self.sources.values():
            valid.value = 0
        await RisingEdge(dut.clk)
        assert not int(dut.error.value), "engine flagged the command as invalid"
        return words, cycles, self.counters()

    def counters(self) -> dict:
        return parse_counters(int(self.dut.counters.value))


@cocotb.test()
async def run_jobs(dut):
    params = job_params()
    cfg = SystolicConfig.from_dict(params["config"])
    tb = SystolicTB(dut, cfg, params.get("stall", 0.0), params.get("seed", 0))
    await tb.start()
    runs = []
    resets = params.get("reset_after", {})
    for i in range(params["jobs"]):
        with np.load(f"{params['dir']}/job{i}.npz") as f:
            job = GemmJob(**{k: f[k] for k in f.files})
        packed = pack(cfg, job)
        if str(i) in resets:
            assert await tb.gemm(packed, abort_after=resets[str(i)]) is None, \
                "GEMM finished before the reset point"
            await tb.reset()
        words, cycles, counters = await tb.gemm(packed)
        runs.append({"words": [format(w, "x") for w in words], "cycles": cycles,
                     "counters": counters})
    write_result({"runs": runs})
