"""BufferedFifo in the Amaranth simulator: a queue's order, SyncFIFOBuffered's timing."""

import random
from collections import deque

import pytest
from amaranth import Module
from amaranth.hdl import Fragment
from amaranth.lib import fifo
from amaranth.sim import Simulator

from hw.fifo import BufferedFifo
from hw.synthesis import NO_COLLISION


@pytest.mark.parametrize("depth", [2, 3, 5, 8])
@pytest.mark.parametrize("seed,write_p,read_p", [(0, 0.5, 0.5), (1, 0.9, 0.3), (2, 0.3, 0.9)])
def test_queue_and_timing(depth, seed, write_p, read_p):
    """Random writes and reads under stalls: words leave in order, none lost or made up, and
    every output (``w_rdy``, ``r_rdy``, ``r_data`` while ``r_rdy``, ``level``) equals that of
    Amaranth's own buffered FIFO on the same inputs, cycle by cycle."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.dut = dut = BufferedFifo(8, depth)
    m.submodules.ref = ref = fifo.SyncFIFOBuffered(width=8, depth=depth)
    queue, taken = deque(), []

    async def bench(ctx):
        for _ in range(400):
            w_en, r_en = rng.random() < write_p, rng.random() < read_p
            word = rng.randrange(256)
            for f in (dut, ref):
                ctx.set(f.w_en, w_en)
                ctx.set(f.w_data, word)
                ctx.set(f.r_en, r_en)
            outs = [(ctx.get(f.w_rdy), ctx.get(f.r_rdy), ctx.get(f.level), ctx.get(f.w_level))
                    for f in (dut, ref)]
            assert outs[0] == outs[1]
            w_rdy, r_rdy, level, _ = outs[0]
            assert level == len(queue)
            if r_rdy:
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data)
                if r_en:
                    taken.append(ctx.get(dut.r_data))
                    assert taken[-1] == queue.popleft()
            assert w_rdy == (level - r_rdy < depth - 1)
            if w_en and w_rdy:
                queue.append(word)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(taken) > 50


def test_first_word_latency():
    dut = BufferedFifo(4, 4)

    async def bench(ctx):
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_data, 9)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        for _ in range(dut.latency - 1):
            assert not ctx.get(dut.r_rdy)
            await ctx.tick()
        assert ctx.get(dut.r_rdy) and ctx.get(dut.r_data) == 9 and ctx.get(dut.level) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_memory_marked_no_collision():
    fragment = Fragment.get(BufferedFifo(8, 4), None)
    storage = fragment.find_subfragment("storage").origins[0]
    assert storage.attrs[NO_COLLISION] == 1


@pytest.mark.parametrize("width,depth", [(0, 4), (8, 1)])
def test_bad_parameters(width, depth):
    with pytest.raises(ValueError, match="must be"):
        BufferedFifo._check(width, depth)
