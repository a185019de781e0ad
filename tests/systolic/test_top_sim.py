"""SystolicTop in Amaranth's simulator: one small GEMM end to end, and a rejected command."""

import numpy as np
from amaranth.sim import Simulator

from hw.systolic import SystolicConfig
from hw.systolic.driver import pack, unpack
from hw.systolic.layouts import gemm_command
from hw.systolic.top import SystolicTop
from sim.systolic import random_job

CFG = SystolicConfig(rows=2, cols=3, act_depth=64, weight_depth=64, acc_depth=16,
                     param_depth=8)


def _simulate(packed, bad_command=None):
    dut = SystolicTop(CFG)
    words, errors = [], []

    async def loader(ctx):
        for port, beats in ((dut.i_act, packed.act), (dut.i_weight, packed.weight),
                            (dut.i_param, packed.param)):
            for beat in beats:
                ctx.set(port.payload.as_value(), beat)
                ctx.set(port.valid, 1)
                await ctx.tick()
            ctx.set(port.valid, 0)
        if bad_command is not None:
            ctx.set(dut.i_cmd.payload.as_value(), bad_command)
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)
            await ctx.tick().repeat(dut.COMMAND_LATENCY)
            errors.append(ctx.get(dut.error))
        ctx.set(dut.i_cmd.payload.as_value(), packed.command)
        ctx.set(dut.i_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_cmd.valid, 0)
        await ctx.tick().repeat(dut.COMMAND_LATENCY)
        errors.append(ctx.get(dut.error))

    async def sink(ctx):
        ctx.set(dut.o_result.ready, 1)
        while len(words) < packed.result_words:
            await ctx.tick()
            if ctx.get(dut.o_result.valid):
                words.append(ctx.get(dut.o_result.payload.as_value()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(loader)
    sim.add_testbench(sink, background=True)
    sim.run_until(5e-6)
    return words, errors


def test_small_gemm_matches_golden():
    job = random_job(np.random.default_rng(11), 4, 5, 4)
    packed = pack(CFG, job)
    words, errors = _simulate(packed)
    assert errors == [0]
    assert (unpack(CFG, words, 4, 4) == job.golden(CFG.rounding)).all()


def test_oversized_command_sets_error_and_is_dropped():
    job = random_job(np.random.default_rng(12), 3, 2, 2)
    packed = pack(CFG, job)
    layout = gemm_command(CFG)
    bad = packed.command & ~(((1 << layout["m"].width) - 1) << layout["m"].offset)
    bad |= (CFG.acc_depth + 1) << layout["m"].offset
    words, errors = _simulate(packed, bad_command=bad)
    assert errors == [1, 0]  # flagged, then cleared by the good command
    assert (unpack(CFG, words, 3, 2) == job.golden(CFG.rounding)).all()
