"""ActivationLut (Amaranth simulator): table lookups and the bypass, two cycles late."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.systolic.activation_lut import LUT_SIZE, ActivationLut


def _run(cols, entries, table, stream, enables, tables=True):
    """Write ``table`` chunk by chunk, then feed ``stream`` (rows of ``cols`` int8) with
    ``enables`` (one per row, held while that row's result comes out); the outputs seen
    ``LATENCY`` cycles after each row."""
    dut = ActivationLut(cols=cols, entries=entries, tables=tables)
    got = []

    async def bench(ctx):
        for chunk in range(LUT_SIZE // entries):
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_chunk, chunk)
            ctx.set(dut.w_data, table[chunk * entries:(chunk + 1) * entries].tolist())
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        # A row at cycle t is read at t + LATENCY; enable is sampled in the second cycle.
        rows = list(stream) + [[0] * cols] * dut.latency
        for t, row in enumerate(rows):
            ctx.set(dut.i_y, [int(v) for v in row])
            if t >= 1 and t - 1 < len(enables):
                ctx.set(dut.enable, int(enables[t - 1]))
            if t >= dut.latency:
                got.append(list(ctx.get(dut.o_y)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, np.int64)


@pytest.mark.parametrize("cols, entries", [(3, 16), (1, 4), (2, 1), (1, 256)])
def test_lookup_and_bypass_match_the_table(cols, entries):
    rng = np.random.default_rng(cols * 1000 + entries)
    table = rng.integers(-128, 128, LUT_SIZE)
    n = 300
    stream = rng.integers(-128, 128, (n, cols))
    stream[:2] = [[-128] * cols, [127] * cols]      # both ends of the table
    enables = rng.integers(0, 2, n)
    enables[:2] = 1
    got = _run(cols, entries, table, stream, enables)
    want = np.where(enables[:, None] == 1, table[stream + 128], stream)
    np.testing.assert_array_equal(got, want)
    # The bypass is not a table that happens to be the identity.
    assert (table[stream + 128] != stream)[enables == 1].any()


def test_without_tables_the_stage_is_two_registers():
    """Built without tables, a written table and ``enable`` change nothing: every row
    comes out as it went in, the same two cycles later."""
    rng = np.random.default_rng(5)
    stream = rng.integers(-128, 128, (50, 3))
    got = _run(3, 16, rng.integers(-128, 128, LUT_SIZE), stream, np.ones(50, int),
               tables=False)
    np.testing.assert_array_equal(got, stream)
