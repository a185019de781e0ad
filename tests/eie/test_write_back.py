"""WriteBack in the Amaranth simulator: ``y = relu(sat(acc + bias))`` per row, rows past
the layer written as 0, the accumulator's clear behind the read."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.write_back import WriteBack

CONFIG = EieConfig(pes=3, spmat_depth=64, ptr_depth=256, act_depth=16, bias_depth=40)
ACC_READ_LATENCY = 3        # wb_en -> acc_data (the Accumulator's read_latency)


class _Harness(Elaboratable):
    """The write-back reading a bias memory as the PE's does."""

    def __init__(self, index, biases):
        self.dut = WriteBack(CONFIG, index)
        self.biases = biases

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.bias = bias = Memory(shape=dut.bias_data.shape(),
                                          depth=CONFIG.bias_depth, init=self.biases)
        port = bias.read_port()
        m.d.comb += [port.addr.eq(dut.bias_addr), dut.bias_data.eq(port.data)]
        return m


def _reference(acc, biases, index, layer):
    """Local row ``r`` is global row ``r*pes + index``: 0 past ``out_features``, else
    ``acc + bias`` (``use_bias``) saturated to ``act_width`` bits, then ReLU (``relu``)."""
    out_features, bias_base, use_bias, relu = layer
    hi, lo = (1 << (CONFIG.act_width - 1)) - 1, -(1 << (CONFIG.act_width - 1))
    out = []
    for r, value in enumerate(acc):
        total = value + (biases[bias_base + r] if use_bias else 0)
        y = min(hi, max(lo, total))
        if r * CONFIG.pes + index >= out_features or (relu and y < 0):
            y = 0
        out.append(y)
    return out


@pytest.mark.parametrize("seed,index,gaps", [(0, 0, 0.0), (1, 2, 0.0), (2, 1, 0.5)])
def test_rows_written(seed, index, gaps):
    rng = random.Random(seed)
    lim = 1 << (CONFIG.act_width - 1)
    biases = [rng.randrange(-lim, lim) for _ in range(CONFIG.bias_depth)]
    layers = [(rng.randrange(1, CONFIG.act_depth * CONFIG.pes), rng.randrange(24),
               rng.randrange(2), rng.randrange(2)) for _ in range(4)]
    accs = [[rng.choice([rng.randrange(-3 * lim, 3 * lim), rng.randrange(-100, 100)])
             for _ in range(CONFIG.act_depth)] for _ in layers]
    h = _Harness(index, biases)
    dut = h.dut
    written, zeroed = [], []

    async def sequencer(ctx):
        for layer, acc in zip(layers, accs, strict=True):
            out_features, bias_base, use_bias, relu = layer
            ctx.set(dut.out_features, out_features)
            ctx.set(dut.bias_base, bias_base)
            ctx.set(dut.use_bias, use_bias)
            ctx.set(dut.relu, relu)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for name in ("out_features", "bias_base", "use_bias", "relu"):
                ctx.set(getattr(dut, name), 0)          # the copies hold
            issued = []                                 # cycle of each row's wb_en
            cycle = 0
            rows = list(range(CONFIG.act_depth))
            while rows or (issued and cycle <= issued[-1][0] + ACC_READ_LATENCY):
                go = bool(rows) and rng.random() >= gaps
                ctx.set(dut.wb_en, go)
                if go:
                    row = rows.pop(0)
                    ctx.set(dut.wb_addr, row)
                    ctx.set(dut.wb_row, row * CONFIG.pes)
                    issued.append((cycle, row))
                # The accumulator's read of a row, ACC_READ_LATENCY after its wb_en.
                due = [row for when, row in issued if when + ACC_READ_LATENCY == cycle]
                ctx.set(dut.acc_data, acc[due[0]] if due else 0x5A5A)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.wb_en, 0)
            for _ in range(dut.latency + 1):
                await ctx.tick()

    async def memory(ctx):
        cycle = 0
        while True:
            _, _, act_en, act_addr, act_data, zero_en, zero_addr, wb_en = \
                await ctx.tick().sample(dut.act_en, dut.act_addr, dut.act_data,
                                        dut.zero_en, dut.zero_addr, dut.wb_en)
            if act_en:
                written.append((cycle, act_addr, act_data))
            if zero_en:
                zeroed.append((cycle, zero_addr))
            cycle += 1

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(sequencer)
    sim.add_testbench(memory, background=True)
    sim.run()
    depth = CONFIG.act_depth
    assert len(written) == len(zeroed) == depth * len(layers)
    for k, (layer, acc) in enumerate(zip(layers, accs, strict=True)):
        rows = written[k * depth:(k + 1) * depth]
        assert [addr for _, addr, _ in rows] == list(range(depth))
        assert [y for _, _, y in rows] == _reference(acc, biases, index, layer)
        # Each row's clear comes 3 cycles before its write (2 after its wb_en).
        clears = zeroed[k * depth:(k + 1) * depth]
        assert [(c + dut.latency - 2, a) for c, a in clears] == [(c, a) for c, a, _ in rows]
