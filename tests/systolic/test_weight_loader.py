"""WeightLoader in the Amaranth simulator: tiles in buffer order, last row first, into
alternating banks, held back while latching is not allowed."""

import random
from itertools import pairwise

import pytest
from amaranth.sim import Simulator

from hw.systolic.weight_loader import WeightLoader

ROWS, COLS, DEPTH = 3, 2, 64
MAX_K, MAX_N = 12, 8


def _reference(k, n):
    """Per tile (N tiles outer, K tiles inner): buffer words shifted in, last row first."""
    kt, nt = -(-k // ROWS), -(-n // COLS)
    return [[t * ROWS + r for r in reversed(range(ROWS))] for t in range(kt * nt)]


def _simulate(k, n, seed, hold_p):
    rng = random.Random(seed)
    memory = [[rng.randrange(-128, 128) for _ in range(COLS)] for _ in range(DEPTH)]
    dut = WeightLoader(rows=ROWS, cols=COLS, weight_depth=DEPTH, max_k=MAX_K, max_n=MAX_N)
    tiles, chain, latches, latched_at = [], [], [], []

    async def bench(ctx):
        ctx.set(dut.k, k)
        ctx.set(dut.n, n)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.run, 1)
        read_addr = 0
        for cycle in range(600):
            # the buffer's synchronous read: data for the address of the previous cycle
            ctx.set(dut.w_data, memory[read_addr % DEPTH])
            held = rng.random() < hold_p
            ctx.set(dut.tiles_full, held and rng.random() < 0.5)
            ctx.set(dut.bank_idle, 0b00 if held else 0b11)
            if ctx.get(dut.shift):
                chain.append(ctx.get(dut.w_out))
            if ctx.get(dut.latch):
                latches.append(ctx.get(dut.latch_bank))
                tiles.append(chain[-ROWS:])
            if ctx.get(dut.latched):
                assert not held
                latched_at.append(cycle)
            read_addr = ctx.get(dut.w_addr)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expected = [[memory[a] for a in words] for words in _reference(k, n)]
    return tiles, expected, latches, latched_at, dut.latency


@pytest.mark.parametrize("k,n", [(1, 1), (3, 2), (7, 5), (12, 8)])
@pytest.mark.parametrize("seed,hold_p", [(0, 0.0), (1, 0.5)])
def test_tiles_and_banks(k, n, seed, hold_p):
    tiles, expected, latches, latched_at, latency = _simulate(k, n, seed, hold_p)
    assert [[list(map(int, w)) for w in t] for t in tiles] == expected
    assert latches == [i % 2 for i in range(len(expected))]
    if hold_p == 0.0:
        # never held back: the first latch after the start, then one per load time
        load = WeightLoader.load_cycles_of(ROWS)
        assert load == ROWS + 3
        assert latched_at[0] == latency
        assert all(b - a == load for a, b in pairwise(latched_at))

