"""WordGenerator in the Amaranth simulator: every word of every column, its lane mask,
one read a cycle with no bubble between columns."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.word_generator import WordGenerator

CONFIG = EieConfig(pes=2, spmat_depth=64, ptr_depth=256, act_depth=64, bias_depth=8)
EPW = CONFIG.entries_per_word


class _Harness(Elaboratable):
    """The generator reading a sparse-matrix memory as the PE's does."""

    def __init__(self, words):
        self.dut = WordGenerator(CONFIG)
        self.words = words

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.spmat = mem = Memory(shape=CONFIG.word_bits, depth=CONFIG.spmat_depth,
                                          init=self.words)
        port = mem.read_port()
        m.d.comb += [port.addr.eq(dut.rd_addr), port.en.eq(dut.issue),
                     dut.rd_data.eq(port.data)]
        return m


def _columns(rng, count):
    """Columns as entry ranges ``first .. last`` of the sparse-matrix memory."""
    out = []
    for _ in range(count):
        first = rng.randrange(CONFIG.spmat_depth * EPW - 40)
        last = first + rng.choice([0, 1, 3, 7, 8, 12, 30])
        out.append((first, last, rng.randint(-(1 << 15), (1 << 15) - 1)))
    return out


def _payload(first, last, a):
    return {"first_word": first // EPW, "last_word": last // EPW, "lo": first % EPW,
            "hi": last % EPW + 1, "single": int(first // EPW == last // EPW), "a": a}


def _reference(words, columns):
    """Every word holding entries ``first .. last``, the mask of those entries in it."""
    out = []
    for first, last, a in columns:
        for w in range(first // EPW, last // EPW + 1):
            mask = sum(1 << lane for lane in range(EPW) if first <= w * EPW + lane <= last)
            out.append((words[w], mask, int(w == first // EPW), a))
    return out


@pytest.mark.parametrize("seed,valid_p,slot_p", [(0, 1.0, 1.0), (1, 0.5, 1.0),
                                                 (2, 1.0, 0.4), (3, 0.3, 0.6)])
def test_words_of_columns(seed, valid_p, slot_p):
    rng = random.Random(seed)
    words = [rng.getrandbits(CONFIG.word_bits) for _ in range(CONFIG.spmat_depth)]
    columns = _columns(rng, 60)
    h = _Harness(words)
    dut = h.dut
    got, issues, w_valids = [], [], []

    async def producer(ctx):
        todo = list(columns)
        while todo:
            offer = rng.random() < valid_p
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, _payload(*todo[0]))
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if offer and ready:
                todo.pop(0)
            # (a stream source keeps its beat until it is taken)
            while offer and not ready:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    todo.pop(0)
        ctx.set(dut.i.valid, 0)

    async def decoder(ctx):
        for _ in range(3000):
            can = rng.random() < slot_p
            ctx.set(dut.can_issue, can)
            _, _, issue, valid, word, mask, first, a = await ctx.tick().sample(
                dut.issue, dut.w_valid, dut.w_word, dut.w_mask, dut.w_first, dut.w_a)
            assert can or not issue, "issued without a slot"
            issues.append(issue)
            w_valids.append(valid)
            if valid:
                got.append((word, mask, first, a))

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(decoder)
    sim.run()
    assert got == _reference(words, columns)
    # Each word arrives ``latency`` cycles after its issue.
    lat = dut.latency
    assert w_valids[lat:] == issues[:len(issues) - lat] and not any(w_valids[:lat])
    if valid_p == 1.0 and slot_p == 1.0:
        # Columns always there, slots always free: one read a cycle, no bubble.
        start = issues.index(1)
        assert all(issues[start:start + len(got)])
