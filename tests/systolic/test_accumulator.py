"""Accumulator in the Amaranth simulator: partial sums summed across K tiles per row ``m``,
back to back and with gaps (every forwarding distance, and the memory)."""

import random

import pytest
from amaranth.sim import Simulator

from hw.systolic.accumulator import Accumulator

COLS, WIDTH, DEPTH = 3, 20, 8


def _wrap(x):
    x &= (1 << WIDTH) - 1
    return x - (1 << WIDTH) if x >> (WIDTH - 1) else x


def _schedule(rng, gap_p):
    """Rows in the engine's order (N tiles, K tiles, then m), each a dict, with idle cycles
    between them; and the sums the rows' definition gives."""
    rows, expected, stored = [], [], {}
    for _ in range(6):
        m_count, k_tiles = rng.choice([1, 1, 2, 3, DEPTH]), rng.randint(1, 4)
        for kt in range(k_tiles):
            for m in range(m_count):
                while rng.random() < gap_p:
                    rows.append(None)
                psum = [rng.randrange(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1)) for _ in range(COLS)]
                row = {"first": kt == 0, "last": kt == k_tiles - 1, "m": m, "psum": psum}
                rows.append(row)
                base = [0] * COLS if row["first"] else stored[m]
                sums = [_wrap(b + p) for b, p in zip(base, psum, strict=True)]
                if not row["last"]:
                    stored[m] = sums
                expected.append(sums)
    return rows, expected


@pytest.mark.parametrize("seed,gap_p", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.15)])
def test_sums_across_k_tiles(seed, gap_p):
    rng = random.Random(seed)
    rows, expected = _schedule(rng, gap_p)
    dut = Accumulator(cols=COLS, acc_width=WIDTH, acc_depth=DEPTH)
    lead = Accumulator.PSUM_TAP
    # at[t]: the row on psum at cycle t - lead (its first tap is read at cycle t - 2 lead)
    at = [None] * (2 * lead) + rows + [None] * 4
    got = []

    async def bench(ctx):
        for t in range(len(at) - lead):
            for j in range(Accumulator.TAPS):
                i = t + lead + lead - j
                row = at[i] if 0 <= i < len(at) else None
                tap = dut.taps[j]
                ctx.set(tap.valid, row is not None)
                # a stage without a row carries garbage, as the engine's delay line may
                ctx.set(tap.first, row["first"] if row else rng.randrange(2))
                ctx.set(tap.last, row["last"] if row else rng.randrange(2))
                ctx.set(tap.m, row["m"] if row else rng.randrange(DEPTH))
            row = at[t + lead]
            for c in range(COLS):
                ctx.set(dut.psum[c], row["psum"][c] if row else rng.randrange(-99, 99))
            if at[t + lead - dut.latency] is not None:
                got.append([ctx.get(dut.sums[c]) for c in range(COLS)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected
