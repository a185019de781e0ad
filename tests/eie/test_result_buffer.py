"""ResultBuffer in the Amaranth simulator: every beat once, in order, under random idle and
backpressure; it holds at most 2 and takes a beat every cycle while the consumer does."""

import random

import pytest
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.result_buffer import ResultBuffer

CONFIG = EieConfig(pes=3, spmat_depth=64, ptr_depth=256, act_depth=16, bias_depth=8)


@pytest.mark.parametrize("seed,valid_p,ready_p", [(0, 1.0, 1.0), (1, 0.6, 0.4),
                                                  (2, 1.0, 0.2), (3, 0.3, 0.9)])
def test_beats_in_order(seed, valid_p, ready_p):
    rng = random.Random(seed)
    lim = 1 << (CONFIG.act_width - 1)
    beats = [[rng.randrange(-lim, lim) for _ in range(CONFIG.pes)] for _ in range(200)]
    dut = ResultBuffer(CONFIG)
    got, stalls = [], []

    async def producer(ctx):
        for beat in beats:
            while rng.random() >= valid_p:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    break
                stalls.append(1)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        held = 0
        while len(got) < len(beats):
            ready = rng.random() < ready_p
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, i_valid, i_ready = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.i.valid, dut.i.ready)
            held += int(i_valid and i_ready) - int(valid and ready)
            assert 0 <= held <= 2
            if valid and ready:
                got.append(list(payload))
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == beats
    if ready_p == 1.0:
        assert not stalls
