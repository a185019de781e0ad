"""CodebookStore in the Amaranth simulator: values land in their slot, ``busy`` covers the
write, the selected slot is what the PEs see, and a reset keeps the store."""

import random

from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.codebook_store import CodebookStore

CONFIG = EieConfig(pes=2, spmat_depth=64, ptr_depth=256, act_depth=16, bias_depth=8,
                   max_layers=3)
K = CONFIG.codebook_size


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def test_write_select_and_reset():
    rng = random.Random(0)
    dut = CodebookStore(CONFIG)
    rst = Signal()
    want = [[0] * K for _ in range(CONFIG.max_layers)]
    seen = []

    async def testbench(ctx):
        writes = [(rng.randrange(CONFIG.max_layers * K), rng.getrandbits(CONFIG.lane_bits))
                  for _ in range(120)]
        for addr, value in writes:
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, value)
            want[addr // K][addr % K] = _signed(value, CONFIG.weight_width)
            await ctx.tick()
            ctx.set(dut.w_en, 0)
            # Busy for the 2 cycles after a write (the command waits for the store).
            for gap in range(rng.choice([0, 0, 0, 1, 3])):
                assert ctx.get(dut.busy) == (gap < 2)
                await ctx.tick()
        for gap in range(3):
            assert ctx.get(dut.busy) == (gap < 2)
            await ctx.tick()
        ctx.set(dut.select_en, 1)
        for slot in range(CONFIG.max_layers):
            ctx.set(dut.slot, slot)
            await ctx.tick()
            seen.append(list(ctx.get(dut.active)))
        # A reset clears the selection but keeps the store.
        ctx.set(dut.select_en, 0)
        await ctx.tick()
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        seen.append(list(ctx.get(dut.active)))
        ctx.set(dut.select_en, 1)
        ctx.set(dut.slot, 1)
        await ctx.tick()
        seen.append(list(ctx.get(dut.active)))

    sim = Simulator(ResetInserter(rst)(dut))
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == want + [[0] * K, want[1]]
    assert any(any(v < 0 for v in cb) for cb in want)       # the sign is kept
