"""Buffers in the Amaranth simulator: words written by the load streams read back at the
engine's addresses, a cycle later; every memory marked "no collision"."""

import random

from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw.synthesis import NO_COLLISION
from hw.systolic import SystolicConfig
from hw.systolic.buffers import Buffers

CFG = SystolicConfig(rows=2, cols=3, act_depth=16, weight_depth=16, acc_depth=16,
                     param_depth=4)


def test_write_then_read():
    rng = random.Random(0)
    dut = Buffers(CFG)
    act, weight, param = {}, {}, {}

    def lanes(n):
        return [rng.randrange(-128, 128) for _ in range(n)]

    def channel():
        return {"bias": rng.randrange(-(1 << 31), 1 << 31),
                "multiplier": rng.randrange(1 << 31), "shift": rng.randrange(-31, 31)}

    async def bench(ctx):
        for port in (dut.i_act, dut.i_weight, dut.i_param):
            assert ctx.get(port.ready)
        for _ in range(150):
            writes = {}
            for port, model, depth, word in (
                    (dut.i_act, act, CFG.act_depth, lambda: lanes(CFG.rows)),
                    (dut.i_weight, weight, CFG.weight_depth, lambda: lanes(CFG.cols)),
                    (dut.i_param, param, CFG.param_depth,
                     lambda: [channel() for _ in range(CFG.cols)])):
                valid = rng.random() < 0.5
                ctx.set(port.valid, valid)
                if valid:
                    addr, value = rng.randrange(depth), word()
                    ctx.set(port.payload.addr, addr)
                    ctx.set(port.payload.data, value)
                    writes[id(model)] = (model, addr, value)
            # read addresses the stream is not writing this cycle (the engine never does)
            busy = {id(model): addr for model, addr, _ in writes.values()}

            def pick(model, busy=busy):
                choices = [a for a in model if a != busy.get(id(model))]
                return rng.choice(choices) if choices else None

            reads = {"act": pick(act), "w": pick(weight),
                     "p": [pick(param) for _ in range(CFG.cols)]}
            if reads["act"] is not None:
                ctx.set(dut.act_addr, reads["act"])
            if reads["w"] is not None:
                ctx.set(dut.w_addr, reads["w"])
            for c, a in enumerate(reads["p"]):
                if a is not None:
                    ctx.set(dut.p_addr[c], a)
            await ctx.tick()
            if reads["act"] is not None:
                assert ctx.get(dut.act_data) == act[reads["act"]]
            if reads["w"] is not None:
                assert ctx.get(dut.w_data) == weight[reads["w"]]
            for c, a in enumerate(reads["p"]):
                if a is not None:
                    got = ctx.get(dut.p_data[c])
                    assert {f: getattr(got, f) for f in ("bias", "multiplier", "shift")} \
                        == param[a][c]
            for model, addr, value in writes.values():
                model[addr] = value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(act) > 5 and len(weight) > 5 and len(param) == CFG.param_depth


def test_memories_marked_no_collision():
    fragment = Fragment.get(Buffers(CFG), None)
    names = ["act_mem", "w_mem"] + [f"p_mem_{c}" for c in range(CFG.cols)]
    for name in names:
        assert fragment.find_subfragment(name).origins[0].attrs[NO_COLLISION] == 1
