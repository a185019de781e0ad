"""ActivationQueue in the Amaranth simulator: the columns with entries, their word ranges,
oldest first; the ready credit fills the queue and the column buffer exactly."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw.eie import EieConfig
from hw.eie.activation_queue import ActivationQueue

CONFIG = EieConfig(pes=2, spmat_depth=64, ptr_depth=256, act_depth=64, bias_depth=8,
                   queue_depth=4)


def _pointers(rng):
    """Column pointers p[0..255]: many empty columns, some long ones (the sparse-matrix
    memory holds ``spmat_depth * 8`` entries)."""
    p, out = 0, []
    for _ in range(CONFIG.ptr_depth):
        out.append(p)
        p = min(p + rng.choice([0, 0, 1, 2, 5, 9, 20]), CONFIG.spmat_depth * 8 - 1)
    return out


class _Harness(Elaboratable):
    """The queue reading the even and odd pointer banks as the PE's does."""

    def __init__(self, pointers):
        self.dut = ActivationQueue(CONFIG)
        self.pointers = pointers

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        banks = {"even": self.pointers[0::2], "odd": self.pointers[1::2]}
        for name, init in banks.items():
            mem = Memory(shape=CONFIG.ptr_bits, depth=len(init), init=init)
            m.submodules[name] = mem
            port = mem.read_port()
            m.d.comb += [port.addr.eq(getattr(dut, f"{name}_addr")), port.en.eq(dut.ptr_en),
                         getattr(dut, f"{name}_data").eq(port.data)]
        return m


def _reference(pointers, pushed):
    """Columns ``j`` with ``p[j+1] > p[j]``: entries ``p[j] .. p[j+1]-1`` as words of
    ``entries_per_word`` and the lanes used in the first and the last."""
    epw = CONFIG.entries_per_word
    out = []
    for p, a in pushed:
        first, end = pointers[p], pointers[p + 1]
        if end > first:
            last = end - 1
            out.append((first // epw, last // epw, first % epw, last % epw + 1,
                        int(first // epw == last // epw), a))
    return out


def _run(pointers, pushes, limit, push_p, ready_p, seed, cycles=3000):
    rng = random.Random(seed)
    h = _Harness(pointers)
    dut = h.dut
    pushed, got = [], []

    async def producer(ctx):
        ctx.set(dut.queue_limit, limit)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.queue_limit, 0)          # the copy taken at start holds
        todo = list(pushes)
        while todo:
            push = bool(ctx.get(dut.ready)) and rng.random() < push_p
            ctx.set(dut.i.valid, push)
            if push:
                ctx.set(dut.i.payload, {"p": todo[0][0], "a": todo[0][1]})
                pushed.append(todo.pop(0))
            await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in range(cycles):
            ready = rng.random() < ready_p
            ctx.set(dut.o.ready, ready)
            _, _, valid, col = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append((col.first_word, col.last_word, col.lo, col.hi, col.single,
                            col.a))

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return pushed, got


@pytest.mark.parametrize("seed,limit,push_p,ready_p", [
    (0, 0, 1.0, 1.0), (1, 0, 0.7, 0.3), (2, 1, 1.0, 0.5), (3, 3, 0.5, 0.1), (4, 2, 1.0, 0.9)])
def test_columns_in_order(seed, limit, push_p, ready_p):
    rng = random.Random(100 + seed)
    pointers = _pointers(rng)
    pushes = [(rng.randrange(CONFIG.ptr_depth - 1), rng.randint(-(1 << 15), (1 << 15) - 1))
              for _ in range(150)]
    pushed, got = _run(pointers, pushes, limit, push_p, ready_p, seed)
    assert len(pushed) == len(pushes)
    assert got == _reference(pointers, pushed)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_credit_fills_queue_and_buffer(limit):
    """With the consumer stalled, the credit lets exactly ``limit`` columns into the queue
    and 2 into the column buffer (no more: the FIFOs would overflow; no fewer)."""
    rng = random.Random(limit)
    pointers = _pointers(rng)
    with_entries = [j for j in range(CONFIG.ptr_depth - 1) if pointers[j + 1] > pointers[j]]
    pushes = [(j, 1) for j in with_entries[:20]]
    pushed, got = _run(pointers, pushes, limit, 1.0, 0.0, limit, cycles=200)
    assert got == []
    assert len(pushed) == (limit or CONFIG.queue_depth) + 2
