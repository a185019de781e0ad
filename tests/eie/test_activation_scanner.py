"""ActivationScanner in the Amaranth simulator: every non-zero input, in order, at one read
a cycle while the consumer keeps up."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.activation_scanner import ActivationScanner

CONFIG = EieConfig(pes=3, spmat_depth=64, ptr_depth=256, act_depth=40, bias_depth=8)


class _Harness(Elaboratable):
    """The scanner reading an activation memory as the PE's does (synchronous port)."""

    def __init__(self, index, acts):
        self.dut = ActivationScanner(CONFIG, index)
        self.acts = acts

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.act = act = Memory(shape=dut.rd_data.shape(), depth=CONFIG.act_depth,
                                        init=self.acts)
        port = act.read_port()
        m.d.comb += [port.addr.eq(dut.rd_addr), port.en.eq(dut.rd_en),
                     dut.rd_data.eq(port.data)]
        return m


def _reference(acts, index, in_features, ptr_base):
    """The PE's inputs ``j = r*pes + index`` below ``in_features`` that are not 0."""
    return [(ptr_base + r * CONFIG.pes + index, a) for r, a in enumerate(acts)
            if r * CONFIG.pes + index < in_features and a != 0]


@pytest.mark.parametrize("seed,index,ready_p", [(0, 0, 1.0), (1, 2, 1.0), (2, 1, 0.5),
                                                (3, 0, 0.2)])
def test_nonzeros_in_order(seed, index, ready_p):
    rng = random.Random(seed)
    acts = [rng.choice([0, 0, rng.randint(-(1 << 15), (1 << 15) - 1)])
            for _ in range(CONFIG.act_depth)]
    # Two layers back to back: a partial one, then all of the memory.
    layers = [(rng.randrange(1, CONFIG.act_depth * CONFIG.pes), rng.randrange(100)),
              (CONFIG.act_depth * CONFIG.pes, rng.randrange(100))]
    h = _Harness(index, acts)
    dut = h.dut
    got = [[] for _ in layers]
    cycles = []

    async def control(ctx):
        for in_features, ptr_base in layers:
            ctx.set(dut.in_features, in_features)
            ctx.set(dut.ptr_base, ptr_base)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            # The inputs change at once: the scan must use its copy.
            ctx.set(dut.in_features, 0)
            ctx.set(dut.ptr_base, 0)
            count = 0
            while True:
                _, _, done = await ctx.tick().sample(dut.done)
                count += 1
                if done:
                    break
                assert count < 2000, "scan never finished"
            cycles.append(count)

    async def consumer(ctx):
        layer = 0
        while True:
            ready = rng.random() < ready_p
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, start = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                                  dut.start)
            if start:
                layer = len(cycles)
            if valid and ready:
                got[layer].append((payload.p, payload.a))

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(control)
    sim.add_testbench(consumer, background=True)
    sim.run()
    for k, (in_features, ptr_base) in enumerate(layers):
        want = _reference(acts, index, in_features, ptr_base)
        assert got[k] == want
        if ready_p == 1.0:
            # One read a cycle: the rows, the scanner's latency and the done flag's cycle.
            rows = len(range(index, in_features, CONFIG.pes))
            assert cycles[k] <= rows + dut.latency + 2
