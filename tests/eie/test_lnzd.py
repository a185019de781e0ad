"""NonZeroTree in the Amaranth simulator: every item once, one per cycle, fair."""

import random

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.eie import NonZeroTree

LAYOUT = data.StructLayout({"j": unsigned(12), "a": unsigned(8)})


@pytest.mark.parametrize("count,idle", [(2, 0.0), (4, 0.0), (5, 0.3), (16, 0.5), (21, 0.0)])
def test_merges_every_item_once(count, idle):
    dut = NonZeroTree(LAYOUT, count)
    items = {k: [(k * 100 + n, (k + n) % 256) for n in range(6 + k % 3)] for k in range(count)}
    expected = sorted(v for vs in items.values() for v in vs)
    got, cycles = [], []
    rng = random.Random(count)

    def producer(k):
        async def run(ctx):
            await produce(ctx, k)
        return run

    async def produce(ctx, k):
        for j, a in items[k]:
            while rng.random() < idle:
                ctx.set(dut.i[k].valid, 0)
                await ctx.tick()
            ctx.set(dut.i[k].valid, 1)
            ctx.set(dut.i[k].payload, {"j": j, "a": a})
            await ctx.tick().until(dut.i[k].ready)
        ctx.set(dut.i[k].valid, 0)

    async def consumer(ctx):
        # Back-pressure at the root as often as the leaves idle.
        stall = random.Random(count + 1)
        cycle = 0
        while len(got) < len(expected):
            ready = stall.random() >= idle
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid and ready:
                got.append((payload.j, payload.a))
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for k in range(count):
        sim.add_testbench(producer(k))
    sim.add_testbench(consumer)
    sim.run_until(1e-6 * 2000)
    assert sorted(got) == expected
    if idle == 0.0 and count > 1:
        # Leaves always ready: after the tree's latency, one item per cycle.
        assert cycles[-1] - cycles[0] == len(expected) - 1
    assert dut.nodes == {2: 1, 4: 1, 5: 3, 16: 5, 21: 9}[count]


def test_eie_node_count():
    tree = NonZeroTree(LAYOUT, 64)
    assert tree.nodes == 21 and tree.latency == 3
    Simulator(tree)     # elaborated, so Amaranth does not warn about an unused component
