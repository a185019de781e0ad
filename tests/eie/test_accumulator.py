"""Accumulator in the Amaranth simulator: row sums of ``codebook[index] * a >>
weight_frac``, entries of one row back to back, then read out and cleared."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.accumulator import Accumulator

CONFIG = EieConfig(pes=2, spmat_depth=64, ptr_depth=256, act_depth=16, bias_depth=8)


class _Harness(Elaboratable):
    """The accumulator with an accumulator memory as the PE's."""

    def __init__(self):
        self.dut = Accumulator(CONFIG)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.acc = acc = Memory(shape=dut.rd_data.shape(), depth=CONFIG.act_depth,
                                        init=[])
        r, w = acc.read_port(), acc.write_port()
        m.d.comb += [r.addr.eq(dut.rd_addr), dut.rd_data.eq(r.data),
                     w.addr.eq(dut.wr_addr), w.data.eq(dut.wr_data), w.en.eq(dut.wr_en)]
        return m


def _reference(codebook, entries):
    """Per row: the sum of ``(codebook[index] * a) >> weight_frac`` (floor)."""
    sums = [0] * CONFIG.act_depth
    for row, index, a in entries:
        sums[row] += (codebook[index] * a) >> CONFIG.weight_frac
    return sums


def _entries(rng, count, rows):
    out = []
    while len(out) < count:
        row = rng.choice(rows)
        for _ in range(rng.choice([1, 1, 2, 3, 5])):       # runs of one row
            out.append((row, rng.randrange(CONFIG.codebook_size),
                        rng.randint(-(1 << 15), (1 << 15) - 1)))
    return out


@pytest.mark.parametrize("seed,gaps,rows", [(0, 0.0, list(range(16))), (1, 0.0, [3, 4]),
                                            (2, 0.5, [0, 1, 2]), (3, 0.2, list(range(16)))])
def test_sums_read_and_cleared(seed, gaps, rows):
    rng = random.Random(seed)
    lim = 1 << (CONFIG.weight_width - 1)
    codebooks = [[rng.randrange(-lim, lim) for _ in range(CONFIG.codebook_size)]
                 for _ in range(2)]
    layers = [_entries(rng, 200, rows) for _ in codebooks]
    dut = _Harness()
    acc = dut.dut
    read = []

    async def testbench(ctx):
        for codebook, entries in zip(codebooks, layers, strict=True):
            ctx.set(acc.codebook, codebook)
            ctx.set(acc.start, 1)
            await ctx.tick()
            ctx.set(acc.start, 0)
            ctx.set(acc.codebook, [0] * CONFIG.codebook_size)     # its copy holds
            for row, index, a in entries:
                while rng.random() < gaps:
                    ctx.set(acc.e_valid, 0)
                    await ctx.tick()
                ctx.set(acc.e_valid, 1)
                ctx.set(acc.e_row, row)
                ctx.set(acc.e_index, index)
                ctx.set(acc.e_a, a)
                await ctx.tick()
            ctx.set(acc.e_valid, 0)
            for _ in range(acc.latency):
                assert not ctx.get(acc.idle)
                await ctx.tick()
            assert ctx.get(acc.idle)
            # Read every row as the write-back does, clearing it 2 cycles after its read.
            sums = []
            pending = []                    # (cycle of its value, cycle of its clear, row)
            for cycle in range(CONFIG.act_depth + acc.read_latency + 1):
                row = cycle if cycle < CONFIG.act_depth else None
                ctx.set(acc.wb_en, row is not None)
                ctx.set(acc.wb_addr, row or 0)
                if row is not None:
                    pending.append((cycle + acc.read_latency, cycle + 2, row))
                clear = [p for p in pending if p[1] == cycle]
                ctx.set(acc.zero_en, bool(clear))
                ctx.set(acc.zero_addr, clear[0][2] if clear else 0)
                if pending and pending[0][0] == cycle:
                    sums.append(ctx.get(acc.acc_data))
                    pending.pop(0)
                await ctx.tick()
            ctx.set(acc.wb_en, 0)
            ctx.set(acc.zero_en, 0)
            read.append(sums)
            await ctx.tick()
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # The second layer starts from cleared accumulators.
    for sums, codebook, entries in zip(read, codebooks, layers, strict=True):
        assert sums == _reference(codebook, entries)


def test_clear_after_reset():
    """``clear_en`` zeroes a row whatever was summed into it."""
    dut = _Harness()
    acc = dut.dut
    got = []

    async def testbench(ctx):
        ctx.set(acc.codebook, [0, 1 << CONFIG.weight_frac] + [0] * (CONFIG.codebook_size - 2))
        ctx.set(acc.start, 1)
        await ctx.tick()
        ctx.set(acc.start, 0)
        for row in (5, 6):
            ctx.set(acc.e_valid, 1)
            ctx.set(acc.e_row, row)
            ctx.set(acc.e_index, 1)
            ctx.set(acc.e_a, 100 + row)
            await ctx.tick()
        ctx.set(acc.e_valid, 0)
        for _ in range(acc.latency + 1):
            await ctx.tick()
        ctx.set(acc.clear_en, 1)
        ctx.set(acc.clear_addr, 5)
        await ctx.tick()
        ctx.set(acc.clear_en, 0)
        await ctx.tick()
        for row in (5, 6):
            ctx.set(acc.wb_en, 1)
            ctx.set(acc.wb_addr, row)
            await ctx.tick()
            ctx.set(acc.wb_en, 0)
            for _ in range(acc.read_latency - 1):
                await ctx.tick()
            got.append(ctx.get(acc.acc_data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [0, 106]
