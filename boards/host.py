"""The host driver: the framed protocol over any byte transport.

:class:`BoardClient` speaks to a board through a *transport* with ``write(data)``,
``read(n) -> bytes`` (fewer bytes on timeout) and ``reset_input()``:
:class:`SerialTransport` for a real board (pyserial), and the cocotb transport in
``sim/tb/board.py`` for the simulated one, so the same driver code is tested end to end.
"""

import struct
from typing import Protocol

from .link import MAGIC
from .protocol import (
    COUNTERS_SPACE,
    REPLY_SYNC,
    Command,
    LinkError,
    Status,
    decode_reply,
    encode_request,
    read_payload,
    write_payload,
)

__all__ = ["Transport", "SerialTransport", "BoardClient"]


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, n: int) -> bytes: ...
    def reset_input(self) -> None: ...


class SerialTransport:
    """A serial port (pyserial); ``timeout`` in seconds bounds every read."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 2.0):
        import serial
        try:
            self._serial = serial.Serial(port, baud, timeout=timeout)
        except serial.SerialException as e:
            raise OSError(f"cannot open serial port {port}: {e}") from None

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, n: int) -> bytes:
        return self._serial.read(n)

    def reset_input(self) -> None:
        self._serial.reset_input_buffer()

    def close(self) -> None:
        self._serial.close()


class BoardClient:
    """Commands to a board; every method raises :class:`LinkError` on an error reply."""

    #: Reply words per READ request (keeps one reply well inside any timeout).
    READ_CHUNK = 256

    def __init__(self, transport: Transport):
        self._t = transport
        self._max_payload = None

    def request(self, command: int, payload: bytes = b"") -> bytes:
        """Send one frame, return the reply payload of an ``OK`` reply."""
        self._t.write(encode_request(command, payload))
        status, reply = self._receive()
        if status != Status.OK:
            name = Status(status).name if status in Status._value2member_map_ else hex(status)
            raise LinkError(f"board answered {name} to {Command(command).name}")
        return reply

    def _receive(self) -> tuple[int, bytes]:
        for _ in range(64):                        # skip line noise before the sync byte
            first = self._t.read(1)
            if not first:
                raise LinkError("no reply from the board (timeout): is it programmed and "
                                "is the port/baud rate right?")
            if first[0] == REPLY_SYNC:
                break
        else:
            raise LinkError("no reply sync byte in 64 bytes of input")
        header = self._t.read(3)
        if len(header) < 3:
            raise LinkError("reply truncated in its header")
        (length,) = struct.unpack_from("<H", header, 1)
        rest = self._t.read(length + 2)
        if len(rest) < length + 2:
            raise LinkError(f"reply truncated: {len(rest)} of {length + 2} bytes")
        return decode_reply(first + header + rest)

    def info(self) -> list[int]:
        """[MAGIC, max_payload, engine id, engine config words...]."""
        reply = self.request(Command.INFO)
        words = list(struct.unpack(f"<{len(reply) // 4}I", reply))
        if not words or words[0] != MAGIC:
            raise LinkError("the device on this port is not an nnaccel board")
        self._max_payload = words[1]
        return words

    def write(self, space: int, addr: int, words) -> None:
        words = [int(w) for w in words]
        if self._max_payload is None:
            self.info()
        chunk = (self._max_payload - 4) // 4
        for start in range(0, len(words), chunk):
            self.request(Command.WRITE,
                         write_payload(space, addr + start, words[start:start + chunk]))

    def read(self, space: int, addr: int, count: int) -> list[int]:
        out = []
        for start in range(0, count, self.READ_CHUNK):
            n = min(self.READ_CHUNK, count - start)
            reply = self.request(Command.READ, read_payload(space, addr + start, n))
            out += struct.unpack(f"<{n}I", reply)
        return out

    def run(self) -> int:
        """Start the engine and wait for it; returns the cycles it took."""
        (cycles,) = struct.unpack("<I", self.request(Command.RUN))
        return cycles

    def counters(self) -> list[int]:
        reply = self.request(Command.COUNTERS)
        return list(struct.unpack(f"<{len(reply) // 4}I", reply))

    def read_counters(self, count: int) -> list[int]:
        return self.read(COUNTERS_SPACE, 0, count)
