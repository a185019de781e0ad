"""Executor in Amaranth's simulator: each command's reply and bus writes against a reference
model of the protocol's commands, over a model engine (word spaces, two-cycle reads, a run
of a random length), with random stalls on every stream."""

import random
import struct

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from boards.executor import Executor
from boards.protocol import (
    COUNTERS_SPACE,
    Command,
    Space,
    Status,
    read_payload,
    write_payload,
)

MAX_PAYLOAD = 32
SPACES = (Space(1, "data", 8, writable=True, readable=True), Space(2, "in", 4, writable=True),
          Space(3, "out", 5, readable=True), Space(COUNTERS_SPACE, "counters", 3, readable=True))
INFO = (0x4E4E4131, MAX_PAYLOAD, 1, 2, 3)


def ref_execute(command, payload, memory, run_cycles):
    """``(status, words)`` of a request the deframer passed, by ``docs/link-protocol.md``;
    ``memory`` (``{space id: [words]}``) takes the writes."""
    spaces = {s.id: s for s in SPACES}
    length = len(payload)
    if command in (Command.INFO, Command.RUN, Command.COUNTERS) and length:
        return Status.BAD_LENGTH, []
    if command == Command.INFO:
        return Status.OK, list(INFO)
    if command == Command.RUN:
        return Status.OK, [run_cycles]
    if command == Command.COUNTERS:
        return Status.OK, list(memory[COUNTERS_SPACE])
    if command not in (Command.WRITE, Command.READ):
        return Status.BAD_COMMAND, []
    if command == Command.WRITE and (length < 8 or length % 4):
        return Status.BAD_LENGTH, []
    if command == Command.READ and (length != 6 or struct.unpack_from("<H", payload, 4)[0]
                                    > 0x3FFF):
        return Status.BAD_LENGTH, []
    head = struct.unpack_from("<I", payload)[0]
    space, addr = spaces.get(head & 0xFF), head >> 8
    if command == Command.WRITE:
        words = struct.unpack_from(f"<{(length - 4) // 4}I", payload, 4)
        if space is None or not space.writable or addr + len(words) > space.depth:
            return Status.BAD_ADDRESS, []
        memory[space.id][addr:addr + len(words)] = words
        return Status.OK, []
    count = struct.unpack_from("<H", payload, 4)[0]
    if space is None or not space.readable or addr + count > space.depth:
        return Status.BAD_ADDRESS, []
    return Status.OK, memory[space.id][addr:addr + count]


def _requests(rng):
    cases = [(Status.BAD_CRC, Command.INFO, b""), (Status.TRUNCATED, 0, b""),
             (Status.BAD_LENGTH, Command.WRITE, b"")]
    for _ in range(40):
        kind = rng.randrange(8)
        space = rng.choice([1, 1, 2, 3, COUNTERS_SPACE, 9])
        addr = rng.randrange(6)
        if kind == 0:
            words = [rng.randrange(1 << 32) for _ in range(rng.randrange(1, 5))]
            cases.append((Status.OK, Command.WRITE, write_payload(space, addr, words)))
        elif kind == 1:
            cases.append((Status.OK, Command.READ, read_payload(space, addr, rng.randrange(5))))
        elif kind == 2:
            cases.append((Status.OK, rng.choice([Command.INFO, Command.RUN, Command.COUNTERS]),
                          b""))
        elif kind == 3:      # a length wrong for the command
            cases.append((Status.OK, rng.choice(list(Command)),
                          bytes(rng.randrange(256) for _ in range(rng.choice([1, 5, 7, 9])))))
        elif kind == 4:
            cases.append((Status.OK, rng.choice([0, 6, 0x7E, 0xFF]), b""))
        elif kind == 5:      # more words than a reply can carry
            cases.append((Status.OK, Command.READ, read_payload(1, 0, 0x4000)))
        elif kind == 6:      # the whole buffer
            words = [rng.randrange(1 << 32) for _ in range(7)]
            cases.append((Status.OK, Command.WRITE, write_payload(1, addr % 2, words)))
        else:
            cases.append((Status.OK, Command.READ, read_payload(space, 0, rng.randrange(9))))
    return cases


@pytest.mark.parametrize("seed, p_ready", [(1, 1.0), (2, 0.6), (3, 0.25)])
def test_commands_match_reference(seed, p_ready):
    rng = random.Random(seed)
    dut = Executor(spaces=SPACES, info=INFO, max_payload=MAX_PAYLOAD)
    m = Module()
    m.submodules.dut = dut
    m.submodules.buffer = buffer = Memory(shape=8, depth=MAX_PAYLOAD, init=[])
    fill = buffer.write_port()
    wiring.connect(m, dut.buffer, buffer.read_port())
    cases = _requests(rng)
    model = {s.id: [rng.randrange(1 << 32) for _ in range(s.depth)] for s in SPACES}
    engine = {k: list(v) for k, v in model.items()}
    runs, replies = [], []
    bus = dut.engine.bus

    async def deframer(ctx):
        for status, command, payload in cases:
            for i, byte in enumerate(payload):
                ctx.set(fill.addr, i)
                ctx.set(fill.data, byte)
                ctx.set(fill.en, 1)
                await ctx.tick()
            ctx.set(fill.en, 0)
            for _ in range(rng.randrange(4)):
                await ctx.tick()
            header = (payload + bytes(6))[:6]
            head, count = struct.unpack("<IH", header)
            ctx.set(dut.frame.payload, {"status": status, "command": command,
                                        "length": len(payload), "space": head & 0xFF,
                                        "addr": head >> 8, "count": count})
            ctx.set(dut.frame.valid, 1)
            await ctx.tick().until(dut.frame.ready)
            ctx.set(dut.frame.valid, 0)

    async def framer(ctx):
        """Takes the reply and its words at random, then says it is sent."""
        for _ in cases:
            while True:
                ready = rng.random() < p_ready
                ctx.set(dut.reply.ready, ready)
                assert not ctx.get(dut.frame.ready)
                _, _, valid, reply = await ctx.tick().sample(dut.reply.valid, dut.reply.payload)
                if valid and ready:
                    break
            ctx.set(dut.reply.ready, 0)
            words = []
            for n in range(reply.words):
                while True:
                    ready = rng.random() < p_ready
                    ctx.set(dut.words.ready, ready)
                    _, _, valid, word = await ctx.tick().sample(dut.words.valid,
                                                                dut.words.payload)
                    if valid and ready:
                        assert word.last == (n == reply.words - 1)
                        words.append(word.data)
                        break
            ctx.set(dut.words.ready, 0)
            for _ in range(rng.randrange(6)):
                assert not ctx.get(dut.frame.ready) and not ctx.get(dut.words.valid)
                await ctx.tick()
            ctx.set(dut.sent, 1)
            assert ctx.get(dut.frame.ready)        # the frame is taken with the reply's end
            await ctx.tick()
            ctx.set(dut.sent, 0)
            replies.append((Status(reply.status), words))

    async def engine_model(ctx):
        """Word spaces read two cycles after ``r_en``; ``done`` a random time after start."""
        pipe, done_at, cycle = [None], None, 0
        async for _, _, space, addr, w_en, w_data, r_en, start in ctx.tick().sample(
                bus.space, bus.addr, bus.w_en, bus.w_data, bus.r_en, dut.engine.start):
            if w_en:
                engine[space][addr] = w_data
            pipe.append((space, addr) if r_en else None)
            issued = pipe.pop(0)
            if issued is not None:
                ctx.set(bus.r_data, engine[issued[0]][issued[1]])
            cycle += 1
            if start:
                runs.append(rng.randrange(1, 30))
                done_at = cycle - 1 + runs[-1]
            ctx.set(dut.engine.done, cycle == done_at)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(deframer)
    sim.add_testbench(framer)
    sim.add_process(engine_model)
    sim.run()
    assert len(replies) == len(cases)
    run = iter(runs)
    for (status, command, payload), got in zip(cases, replies, strict=True):
        if status != Status.OK:
            expected = (status, [])
        else:
            ran = next(run) if command == Command.RUN and not payload else None
            expected = ref_execute(command, payload, model, ran)
        assert got == expected, (command, payload.hex())
    assert engine == model
    assert next(run, None) is None
