"""Mesh and PE in Amaranth's simulator: weights shift in and latch, rows come out as a@w."""

import numpy as np
from amaranth.sim import Simulator

from hw.systolic.mesh import Mesh


def test_mesh_computes_tile_products_with_double_buffered_weights():
    rows, cols = 3, 4
    rng = np.random.default_rng(0)
    tiles = [rng.integers(-128, 128, (rows, cols)) for _ in range(2)]
    acts = [rng.integers(-255, 256, (5, rows)) for _ in range(2)]
    dut = Mesh(rows, cols, 32)
    got = []

    async def bench(ctx):
        for bank, tile in enumerate(tiles):
            for r in reversed(range(rows)):  # the last row goes in first
                for c in range(cols):
                    ctx.set(dut.w_in[c], int(tile[r, c]))
                ctx.set(dut.shift, 1)
                await ctx.tick()
            ctx.set(dut.shift, 0)
            # the chain holds still while shift is low
            await ctx.tick().repeat(2)
            ctx.set(dut.latch, 1)
            ctx.set(dut.latch_bank, bank)
            await ctx.tick()
            ctx.set(dut.latch, 0)
        # alternate banks row by row: both weight sets live at once
        schedule = [(b, i) for i in range(5) for b in (0, 1)]
        outputs = {}
        for t in range(len(schedule) + dut.latency + 1):
            if t < len(schedule):
                b, i = schedule[t]
                for r in range(rows):
                    ctx.set(dut.a[r], int(acts[b][i, r]))
                ctx.set(dut.bank, b)
            else:
                for r in range(rows):
                    ctx.set(dut.a[r], 0)
            if t >= dut.latency and t - dut.latency < len(schedule):
                outputs[schedule[t - dut.latency]] = [ctx.get(dut.psum[c]) for c in range(cols)]
            await ctx.tick()
        got.append(outputs)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    outputs = got[0]
    for (b, i), value in outputs.items():
        assert value == (acts[b][i] @ tiles[b]).tolist(), (b, i)
