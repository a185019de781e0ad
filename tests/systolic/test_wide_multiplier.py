"""WideMultiplier in the Amaranth simulator: the exact int64 product, one a cycle."""

import random

from amaranth.sim import Simulator

from hw.systolic.wide_multiplier import WideMultiplier


def test_products_every_cycle():
    rng = random.Random(0)
    edges_a = [-(1 << 31), (1 << 31) - 1, -1, 0, 1, 1 << 17, -(1 << 17), (1 << 17) - 1]
    edges_b = [0, 1, (1 << 31) - 1, 1 << 17, (1 << 17) - 1, 1 << 30]
    pairs = [(a, b) for a in edges_a for b in edges_b]
    pairs += [(rng.randrange(-(1 << 31), 1 << 31), rng.randrange(1 << 31)) for _ in range(200)]
    dut = WideMultiplier()
    got = []

    async def bench(ctx):
        for i in range(len(pairs) + dut.latency):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            if i >= dut.latency:
                got.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [a * b for a, b in pairs]
