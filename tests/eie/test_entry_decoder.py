"""EntryDecoder in the Amaranth simulator: rows from zero runs, one entry per cycle."""

import random

import pytest
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.entry_decoder import EntryDecoder

CONFIG = EieConfig(pes=2, spmat_depth=64, ptr_depth=64, act_depth=64, bias_depth=8)
READ_LATENCY = 2          # issue -> word on w_* (the PE's memory read and its register)


def _words(rng, count):
    """Random columns as words: (word, mask, first, a); masks trim the first/last word."""
    epw, eb = CONFIG.entries_per_word, CONFIG.entry_bits
    out = []
    while len(out) < count:
        n_words = rng.randint(1, 3)
        lo, hi = rng.randrange(epw), rng.randint(1, epw)
        a = rng.randint(-(1 << 15), (1 << 15) - 1)
        for w in range(n_words):
            word = 0
            for lane in range(epw):
                index = rng.choice([0, 0, rng.randrange(1, 16)])
                word |= (index | rng.randrange(16) << CONFIG.index_bits) << (lane * eb)
            first_lane = lo if w == 0 else 0
            end_lane = hi if w == n_words - 1 else epw
            if w == 0 and n_words == 1:
                first_lane, end_lane = min(lo, hi - 1), hi
            mask = sum(1 << lane for lane in range(first_lane, end_lane))
            out.append((word, mask, int(w == 0), a))
    return out


def _reference(words):
    """Entries by the format's definition: every entry advances the row by its zero run
    + 1 from -1 at the column's start; index 0 is padding."""
    epw, eb, ib = CONFIG.entries_per_word, CONFIG.entry_bits, CONFIG.index_bits
    out, row = [], -1
    for word, mask, first, a in words:
        if first:
            row = -1
        for lane in range(epw):
            if mask >> lane & 1:
                entry = word >> (lane * eb) & ((1 << eb) - 1)
                row += (entry >> ib) + 1
                if entry & ((1 << ib) - 1):
                    out.append((row, entry & ((1 << ib) - 1), a))
    return out


@pytest.mark.parametrize("seed,gaps", [(0, 0.0), (1, 0.0), (2, 0.4)])
def test_rows_and_throughput(seed, gaps):
    rng = random.Random(seed)
    words = _words(rng, 120)
    expected = _reference(words)
    dut = EntryDecoder(CONFIG)
    got, busy = [], []

    async def generator(ctx):
        pending = []            # (cycle the word appears, word)
        queue = list(words)
        cycle = 0
        while queue or pending:
            can = ctx.get(dut.can_issue)
            issue = bool(queue) and can and rng.random() >= gaps
            ctx.set(dut.issue, issue)
            if issue:
                pending.append((cycle + READ_LATENCY, queue.pop(0)))
            if pending and pending[0][0] == cycle:
                word, mask, first, a = pending.pop(0)[1]
                ctx.set(dut.w_valid, 1)
                ctx.set(dut.w_word, word)
                ctx.set(dut.w_mask, mask)
                ctx.set(dut.w_first, first)
                ctx.set(dut.w_a, a)
            else:
                ctx.set(dut.w_valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.issue, 0)
        ctx.set(dut.w_valid, 0)

    async def sink(ctx):
        for _ in range(4000):
            _, _, valid, row, index, a, b = await ctx.tick().sample(
                dut.o_valid, dut.o_row, dut.o_index, dut.o_a, dut.busy)
            busy.append(b)
            if valid:
                got.append((row, index, a))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(generator)
    sim.add_testbench(sink)
    sim.run()
    assert got == expected
    # Busy cycles: one per real entry, one for a word without any.
    epw, eb, ib = CONFIG.entries_per_word, CONFIG.entry_bits, CONFIG.index_bits
    cost = sum(max(1, sum(1 for lane in range(epw) if mask >> lane & 1 and
                          word >> (lane * eb) & ((1 << ib) - 1)))
               for word, mask, _, _ in words)
    assert sum(busy) == cost
    if gaps == 0.0:
        # Reads issued whenever there is a slot: the iterator never waits for a word.
        first = busy.index(1)
        assert all(busy[first:first + cost])
