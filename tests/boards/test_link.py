"""The frame link and the reference engine in Amaranth's simulator: framing, CRC, errors."""

import binascii
import random
import struct

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from boards.link import MAGIC, FrameLink
from boards.mac_engine import MacEngine, mac_golden
from boards.protocol import (
    COUNTERS_SPACE,
    CRC,
    Command,
    Status,
    decode_reply,
    encode_request,
    read_payload,
    write_payload,
)
from hw.multiplier import Multiplier

TIMEOUT = 64
MAX_PAYLOAD = 64


def crc16_definition(data: bytes, crc: int = 0xFFFF) -> int:
    """The link's CRC as ``boards/crc.py`` defined it before ``amaranth.lib.crc`` took over:
    polynomial 0x1021 shifted in MSB first from 0xFFFF, no reflection, no final XOR."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def test_crc_parameters_are_the_wire_crc():
    a = CRC.algorithm
    assert (a.crc_width, a.polynomial, a.initial_crc) == (16, 0x1021, 0xFFFF)
    assert (a.reflect_input, a.reflect_output, a.xor_output) == (False, False, 0)
    assert CRC.data_width == 8
    assert CRC.compute(b"123456789") == crc16_definition(b"123456789") == 0x29B1


def test_crc_host_side_matches_definition():
    rng = random.Random(1)
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(70)))
        assert CRC.compute(data) == crc16_definition(data) == binascii.crc_hqx(data, 0xFFFF)


def test_crc_gateware_matches_definition():
    """The gateware CRC (the ``Processor`` the deframer and framer use), byte by byte over
    random messages, restarted between them: its value after each byte is the definition's
    CRC of the message so far."""
    m = Module()
    m.submodules.crc = crc = CRC.create()
    rng = random.Random(2)
    messages = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
                for _ in range(60)]

    async def bench(ctx):
        for message in messages:
            ctx.set(crc.start, 1)
            await ctx.tick()
            ctx.set(crc.start, 0)
            for n, byte in enumerate(message, 1):
                ctx.set(crc.data, byte)
                ctx.set(crc.valid, 1)
                await ctx.tick()
                ctx.set(crc.valid, 0)
                if rng.random() < 0.3:          # idle cycles hold the CRC
                    await ctx.tick()
                assert ctx.get(crc.crc) == crc16_definition(message[:n])

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


class LinkBench:
    """A FrameLink + MacEngine; ``exchange`` sends bytes and collects one reply frame."""

    def __init__(self, rows=3, cols=5):
        self.engine = MacEngine(rows, cols)
        self.link = FrameLink(spaces=self.engine.spaces, info=self.engine.info,
                              timeout_cycles=TIMEOUT, max_payload=MAX_PAYLOAD)
        m = Module()
        m.submodules.link = self.link
        m.submodules.engine = self.engine
        m.d.comb += [
            self.engine.bus.space.eq(self.link.engine.bus.space),
            self.engine.bus.addr.eq(self.link.engine.bus.addr),
            self.engine.bus.w_en.eq(self.link.engine.bus.w_en),
            self.engine.bus.w_data.eq(self.link.engine.bus.w_data),
            self.engine.bus.r_en.eq(self.link.engine.bus.r_en),
            self.link.engine.bus.r_data.eq(self.engine.bus.r_data),
            self.engine.start.eq(self.link.engine.start),
            self.link.engine.done.eq(self.engine.done),
        ]
        self.m = m
        self.rng = random.Random(3)

    async def exchange(self, ctx, data: bytes, *, gap=2, max_cycles=20000):
        rx, tx = self.link.rx, self.link.tx
        reply = bytearray()
        pending = list(data)
        wait = 0
        for _ in range(max_cycles):
            ready = self.rng.random() < 0.7
            ctx.set(tx.ready, ready)
            if ready and ctx.get(tx.valid):
                reply.append(ctx.get(tx.payload))
            ctx.set(rx.valid, 0)
            if pending and wait == 0:
                ctx.set(rx.payload, pending.pop(0))
                ctx.set(rx.valid, 1)
                wait = gap
            elif wait:
                wait -= 1
            await ctx.tick()
            if len(reply) >= 4 and len(reply) == 6 + struct.unpack_from("<H", reply, 2)[0]:
                return decode_reply(bytes(reply))
        raise AssertionError(f"no complete reply after {max_cycles} cycles: {reply.hex()}")

    def run(self, bench):
        sim = Simulator(self.m)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()


def test_matrix_vector_through_frames():
    rows, cols = 3, 5
    lb = LinkBench(rows, cols)
    rng = np.random.default_rng(4)
    w = rng.integers(-128, 128, size=(rows, cols))
    x = rng.integers(-128, 128, size=cols)

    def pack(values):
        b = np.asarray(values, dtype=np.int8).tobytes()
        b += bytes(-len(b) % 4)
        return list(struct.unpack(f"<{len(b) // 4}I", b))

    async def bench(ctx):
        status, payload = await lb.exchange(ctx, encode_request(Command.INFO))
        assert status == Status.OK
        assert struct.unpack("<5I", payload) == (MAGIC, MAX_PAYLOAD, 1, rows, cols)
        for space, words in ((1, pack(w.ravel())), (2, pack(x))):
            status, _ = await lb.exchange(ctx, encode_request(Command.WRITE,
                                                              write_payload(space, 0, words)))
            assert status == Status.OK
        status, payload = await lb.exchange(ctx, encode_request(Command.RUN))
        assert status == Status.OK
        # start to done: every MAC, the operand read and bytes, the multiplier, the sum, the write
        cycles = struct.unpack("<I", payload)[0]
        assert cycles == lb.engine.run_cycles() == rows * cols + 3 + Multiplier.LATENCY
        status, payload = await lb.exchange(ctx, encode_request(Command.READ,
                                                                read_payload(3, 0, rows)))
        assert status == Status.OK
        assert list(struct.unpack(f"<{rows}i", payload)) == mac_golden(w, x).tolist()
        status, payload = await lb.exchange(ctx, encode_request(Command.COUNTERS))
        assert status == Status.OK
        runs, busy, macs = struct.unpack("<3I", payload)
        assert (runs, macs) == (1, rows * cols) and busy >= macs
        status, payload = await lb.exchange(
            ctx, encode_request(Command.READ, read_payload(COUNTERS_SPACE, 2, 1)))
        assert struct.unpack("<I", payload)[0] == rows * cols

    lb.run(bench)


def _corrupt(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x10]) + frame[index + 1:]


ERROR_CASES = {
    "crc": (_corrupt(encode_request(Command.WRITE, write_payload(1, 0, [7, 8])), 9),
            Status.BAD_CRC),
    "crc_in_header": (_corrupt(encode_request(Command.INFO), 1), Status.BAD_CRC),
    "truncated": (encode_request(Command.WRITE, write_payload(1, 0, [7, 8]))[:-3],
                  Status.TRUNCATED),
    "header_only": (bytes([0xA5, 0x02]), Status.TRUNCATED),
    "too_long": (encode_request(Command.WRITE, write_payload(1, 0, list(range(20)))),
                 Status.BAD_LENGTH),
    "bad_command": (encode_request(0x7E), Status.BAD_COMMAND),
    "info_with_payload": (encode_request(Command.INFO, b"\0"), Status.BAD_LENGTH),
    "write_unaligned": (encode_request(Command.WRITE, write_payload(1, 0, [1]) + b"\0"),
                        Status.BAD_LENGTH),
    "write_read_only": (encode_request(Command.WRITE, write_payload(3, 0, [1])),
                        Status.BAD_ADDRESS),
    "write_past_end": (encode_request(Command.WRITE, write_payload(2, 1, [1, 2])),
                       Status.BAD_ADDRESS),
    "unknown_space": (encode_request(Command.READ, read_payload(9, 0, 1)),
                      Status.BAD_ADDRESS),
    "read_past_end": (encode_request(Command.READ, read_payload(3, 2, 2)),
                      Status.BAD_ADDRESS),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_reply_then_recovers(case):
    frame, expected = ERROR_CASES[case]
    lb = LinkBench(3, 5)

    async def bench(ctx):
        status, payload = await lb.exchange(ctx, b"\x00\x13" + frame)  # noise before sync
        assert (status, payload) == (expected, b"")
        status, payload = await lb.exchange(ctx, encode_request(Command.INFO))
        assert status == Status.OK and struct.unpack_from("<I", payload)[0] == MAGIC

    lb.run(bench)


def test_silence_outside_a_frame_gets_no_reply():
    lb = LinkBench(2, 2)

    async def bench(ctx):
        for _ in range(4 * TIMEOUT):
            ctx.set(lb.link.tx.ready, 1)
            assert not ctx.get(lb.link.tx.valid)
            await ctx.tick()

    lb.run(bench)


@pytest.mark.parametrize("frame, latency", [
    (encode_request(Command.INFO), 10),
    (encode_request(Command.READ, read_payload(3, 0, 2)), 10),
    (_corrupt(encode_request(Command.INFO), 4), 5),              # BAD_CRC
])
def test_reply_latency(frame, latency):
    """Cycles from a request's last byte on ``rx`` to its reply's sync byte on ``tx``."""
    lb = LinkBench(2, 2)

    async def bench(ctx):
        ctx.set(lb.link.tx.ready, 1)
        for byte in frame:
            ctx.set(lb.link.rx.payload, byte)
            ctx.set(lb.link.rx.valid, 1)
            await ctx.tick()
            ctx.set(lb.link.rx.valid, 0)
            await ctx.tick()
        cycles = 2                      # the cycles since the one the last byte came in
        while not ctx.get(lb.link.tx.valid):
            await ctx.tick()
            cycles += 1
        assert (ctx.get(lb.link.tx.payload), cycles) == (0x5A, latency)

    lb.run(bench)
