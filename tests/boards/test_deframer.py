"""Deframer in Amaranth's simulator: each request (whole, corrupted, cut short, too long,
behind noise) against a reference model of the protocol's framing, with random gaps between
bytes and a consumer that takes each frame after a random delay."""

import random
import struct

import pytest
from amaranth.sim import Simulator

from boards.deframer import Deframer
from boards.protocol import CRC, REQUEST_SYNC, Command, Status, encode_request, write_payload

TIMEOUT = 24
MAX_PAYLOAD = 32


def ref_deframe(data: bytes, max_payload: int):
    """What a frame's bytes (all that arrive before the line goes quiet) amount to, by the
    protocol: ``(status, command, length, payload)``, ``payload`` being the bytes that go
    to the buffer (``None`` for a frame too long for it). Bytes before the sync are skipped."""
    data = data[data.index(REQUEST_SYNC) + 1:]
    if len(data) < 3:
        return Status.TRUNCATED, None, None, None
    command, length = data[0], struct.unpack_from("<H", data, 1)[0]
    if length > max_payload:
        return Status.BAD_LENGTH, command, length, None
    body, crc = data[:3 + length], data[3 + length:3 + length + 2]
    if len(crc) < 2:
        return Status.TRUNCATED, command, length, data[3:3 + length]
    ok = struct.unpack("<H", crc)[0] == CRC.compute(body)
    return (Status.OK if ok else Status.BAD_CRC), command, length, data[3:3 + length]


def _requests(rng):
    good = [encode_request(Command.INFO), encode_request(Command.RUN),
            encode_request(Command.READ, struct.pack("<IH", 0x010203_04, 0x0506)),
            encode_request(Command.WRITE, write_payload(2, 0x123456, [0xDEADBEEF, 7])),
            encode_request(0x42, bytes([1, 2, 3])),
            encode_request(Command.WRITE, write_payload(1, 0, list(range(7))))]   # 32 bytes
    cases = []
    for frame in good:
        cases.append(frame)
        cases.append(bytes([0x00, 0x5A, 0x13]) + frame)                 # noise first
        bad = bytearray(frame)
        bad[rng.randrange(1, len(bad))] ^= 1 << rng.randrange(8)
        cases.append(bytes(bad))                                       # a bit flipped
        cases.append(frame[:rng.randrange(1, len(frame))])              # cut short
    cases.append(encode_request(Command.WRITE, write_payload(1, 0, list(range(8)))))  # 36
    cases.append(encode_request(Command.WRITE, bytes(300))[:12])     # too long, cut
    rng.shuffle(cases)
    return cases


@pytest.mark.parametrize("seed, max_gap, max_hold", [(1, 2, 0), (2, 6, 5), (3, 12, 40)])
def test_frames_match_reference(seed, max_gap, max_hold):
    rng = random.Random(seed)
    dut = Deframer(timeout_cycles=TIMEOUT, max_payload=MAX_PAYLOAD)
    cases = _requests(rng)
    beats, writes = [], []
    sent = [0]                        # frames the host has sent in full

    async def host(ctx):
        for k, frame in enumerate(cases):
            for byte in frame:
                ctx.set(dut.rx.payload, byte)
                ctx.set(dut.rx.valid, 1)
                await ctx.tick()
                ctx.set(dut.rx.valid, 0)
                for _ in range(rng.randrange(1, max_gap)):   # a byte every other cycle at best
                    await ctx.tick()
            sent[0] += 1
            while len(beats) <= k:                           # the host waits for the reply
                await ctx.tick()

    async def consumer(ctx):
        for k in range(len(cases)):
            await ctx.tick().until(dut.frame.valid)
            beat = ctx.get(dut.frame.payload)
            hold = rng.randrange(max_hold + 1)
            while sent[0] <= k or hold > -2:
                # while the reply goes out, bytes that come (a sync among them) are dropped
                noise = hold > 0 and rng.random() < 0.3
                ctx.set(dut.rx.payload, rng.choice([REQUEST_SYNC, 0x01, 0x00]))
                ctx.set(dut.rx.valid, noise)
                await ctx.tick()
                ctx.set(dut.rx.valid, 0)
                hold -= sent[0] > k
                assert ctx.get(dut.frame.valid) and ctx.get(dut.frame.payload) == beat
            ctx.set(dut.frame.ready, 1)
            await ctx.tick()
            ctx.set(dut.frame.ready, 0)
            beats.append(beat)

    async def buffer(ctx):
        async for _, _, en, addr, data in ctx.tick().sample(dut.buffer.en, dut.buffer.addr,
                                                      dut.buffer.data):
            if en:
                writes.append((len(beats), addr, data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(consumer)
    sim.add_process(buffer)
    sim.run()
    for k, (frame, beat) in enumerate(zip(cases, beats, strict=True)):
        status, command, length, payload = ref_deframe(frame, MAX_PAYLOAD)
        assert beat.status == status, (frame.hex(), beat)
        if command is not None:
            assert (beat.command, beat.length) == (command, length)
        stored = bytes(d for n, _, d in writes if n == k)
        assert [a for n, a, _ in writes if n == k] == list(range(len(stored)))
        assert stored == (payload or b"")
        if status == Status.OK and length >= 6:
            space, addr_count = payload[0], struct.unpack_from("<IH", payload)
            assert (beat.space, beat.addr, beat.count) == (
                space, addr_count[0] >> 8, addr_count[1])


@pytest.mark.parametrize("case, status, latency", [("whole", Status.OK, 3),
                                                   ("cut", Status.TRUNCATED, TIMEOUT + 4),
                                                   ("long", Status.BAD_LENGTH, TIMEOUT + 3)])
def test_latency(case, status, latency):
    """Cycles from the frame's last byte on ``rx`` to its beat on ``frame``."""
    dut = Deframer(timeout_cycles=TIMEOUT, max_payload=MAX_PAYLOAD)
    frame = encode_request(Command.READ, struct.pack("<IH", 1, 2))
    if case == "cut":
        frame = frame[:-1]
    elif case == "long":
        frame = encode_request(Command.WRITE, bytes(MAX_PAYLOAD + 4))

    async def bench(ctx):
        for byte in frame:
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick()
            ctx.set(dut.rx.valid, 0)
            await ctx.tick()
        cycles = 2                      # the cycles since the one the last byte came in
        while not ctx.get(dut.frame.valid):
            await ctx.tick()
            cycles += 1
        assert (ctx.get(dut.frame.payload.status), cycles) == (status, latency)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
