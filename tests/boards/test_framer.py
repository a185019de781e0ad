"""Framer in Amaranth's simulator: reply frames against the protocol's own encoder, with
random stalls on the word stream and on ``tx``."""

import random
import struct

import pytest
from amaranth.sim import Simulator

from boards.framer import Framer
from boards.protocol import Status, encode_reply


def ref_frame(status: int, words: list[int]) -> bytes:
    """The bytes a reply frame carries, from the protocol's definition."""
    return encode_reply(status, struct.pack(f"<{len(words)}I", *words))


def _replies(rng):
    cases = [(Status.OK, []), (Status.BAD_CRC, []), (Status.OK, [0x4E4E4131]),
             (Status.OK, [0xFFFFFFFF, 0, 0x80000001]), (Status.OK, list(range(300)))]
    for _ in range(12):
        cases.append((rng.choice(list(Status)),
                      [rng.randrange(1 << 32) for _ in range(rng.randrange(6))]))
    return cases


@pytest.mark.parametrize("seed, p_word, p_ready", [(1, 1.0, 1.0), (2, 0.5, 0.7), (3, 0.2, 0.3)])
def test_frames_match_protocol(seed, p_word, p_ready):
    rng = random.Random(seed)
    dut = Framer()
    cases = _replies(rng)
    expected = b"".join(ref_frame(s, w) for s, w in cases)
    got, sent_at, shown_at = bytearray(), [], []

    async def producer(ctx):
        for status, words in cases:
            ctx.set(dut.reply.payload, {"status": status, "words": len(words)})
            ctx.set(dut.reply.valid, 1)
            await ctx.tick().until(dut.reply.ready)
            ctx.set(dut.reply.valid, 0)
            for n, word in enumerate(words):
                while rng.random() > p_word:            # the word is late
                    await ctx.tick()
                ctx.set(dut.words.payload, {"data": word, "last": n == len(words) - 1})
                ctx.set(dut.words.valid, 1)
                await ctx.tick().until(dut.words.ready)
                ctx.set(dut.words.valid, 0)
            await ctx.tick().until(dut.sent)

    async def consumer(ctx):
        held = None
        cycle = 0
        while len(got) < len(expected):
            ready = rng.random() < p_ready
            ctx.set(dut.tx.ready, ready)
            valid, byte, sent = ctx.get(dut.tx.valid), ctx.get(dut.tx.payload), ctx.get(dut.sent)
            if held is not None:     # the stream rule: a byte stays until it is taken
                assert (valid, byte) == (1, held)
            elif valid:
                shown_at.append(cycle)
            if sent:
                sent_at.append(cycle)
            if valid and ready:
                got.append(byte)
                held = None
            elif valid:
                held = byte
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert bytes(got) == expected
    # ``sent`` marks the cycle each frame's last byte is handed over: it is on tx next cycle
    ends = [len(ref_frame(s, w)) for s, w in cases]
    last_bytes = [sum(ends[:k + 1]) - 1 for k in range(len(ends))]
    assert sent_at == [shown_at[index] - 1 for index in last_bytes]


def test_first_byte_and_pace():
    """A reply's sync byte is on ``tx`` the cycle after ``reply`` turns valid, and a
    consumer that is always ready gets a byte every other cycle, the CRC's included."""
    dut = Framer()
    frame = ref_frame(Status.OK, [0x12345678])

    async def bench(ctx):
        ctx.set(dut.tx.ready, 1)
        await ctx.tick()
        ctx.set(dut.reply.payload, {"status": Status.OK, "words": 1})
        ctx.set(dut.reply.valid, 1)
        ctx.set(dut.words.payload, {"data": 0x12345678, "last": 1})
        seen = []
        for cycle in range(2 * len(frame) + 4):
            if ctx.get(dut.tx.valid):
                seen.append((cycle, ctx.get(dut.tx.payload)))
            taken = ctx.get(dut.reply.ready)
            await ctx.tick()
            if taken:
                ctx.set(dut.reply.valid, 0)
                ctx.set(dut.words.valid, 1)     # the word is there as soon as asked for
        assert seen == list(zip(range(1, 2 * len(frame), 2), frame, strict=True))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
