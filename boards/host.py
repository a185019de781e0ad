"""The host driver: the framed protocol over any byte transport.

:class:`BoardClient` speaks to a board through a *transport* with ``write(data)``,
``read(n) -> bytes`` (fewer bytes on timeout) and ``reset_input()`` (discard whatever has
arrived): :class:`SerialTransport` for a real board (pyserial), and the cocotb transport in
``sim/tb/board.py`` for the simulated one, so the same driver code is tested end to end.

Nothing a board sends is trusted: a reply's frame, status and length (against its command,
:func:`boards.protocol.check_reply_length`) are checked before a word of it is unpacked, and
``INFO``'s words against what every nnaccel board reports. A reply spoiled on the line is
retried after draining the input; ``docs/host-link.md`` ("Errors and retries") says which
faults are retried, how often, and why ``RUN`` mostly is not.
"""

import struct
import time
from typing import Protocol

from .bus import ENGINE_IDS
from .link import MAGIC
from .protocol import (
    COUNTERS_SPACE,
    MAX_PAYLOAD,
    MIN_PAYLOAD,
    REPLY_SYNC,
    Command,
    LinkError,
    Status,
    check_reply_length,
    decode_reply,
    encode_request,
    read_payload,
    write_payload,
)

__all__ = ["Transport", "SerialTransport", "BoardClient", "check_info"]

#: Statuses with which the board says it dropped the request unexecuted (it arrived
#: corrupted or cut short), so even ``RUN`` is safe to send again.
_NOT_ACCEPTED = {Status.BAD_CRC: "the board got the request corrupted (BAD_CRC)",
                 Status.TRUNCATED: "the board got the request cut short (TRUNCATED)"}
_TIMEOUT = "no reply (timeout)"


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, n: int) -> bytes: ...
    def reset_input(self) -> None: ...


class SerialTransport:
    """A serial port (pyserial); ``timeout`` in seconds bounds every read.

    ``port`` is a device (``/dev/ttyUSB0``, ``COM3``) or a pyserial URL
    (``socket://host:port`` for a board behind a network serial server).
    """

    def __init__(self, port: str, baud: int = 115200, timeout: float = 2.0):
        import serial
        try:
            self._serial = serial.serial_for_url(port, baud, timeout=timeout)
        except (serial.SerialException, ValueError) as e:
            raise OSError(f"cannot open serial port {port}: {e}") from None
        self._timeout = timeout
        # 20 character times of silence: the board sends a reply's bytes back to back.
        self._quiet = max(0.005, 200 / baud)

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, n: int) -> bytes:
        return self._serial.read(n)

    def reset_input(self) -> None:
        """Discard input once the line has gone quiet (the rest of a reply still on its way
        would otherwise arrive after the reset and be taken for the next reply); gives up
        waiting for quiet after one read timeout."""
        deadline = time.monotonic() + self._timeout
        self._serial.reset_input_buffer()
        while time.monotonic() < deadline:
            time.sleep(self._quiet)
            if not self._serial.in_waiting:
                break
            self._serial.reset_input_buffer()

    def close(self) -> None:
        self._serial.close()


def check_info(words: list[int]) -> None:
    """Raise ``LinkError`` unless ``words`` (an ``INFO`` reply) are what an nnaccel board
    reports: ``MAGIC``, a ``max_payload`` :class:`boards.link.FrameLink` can have, and a
    known engine id if there is one."""
    if words[0] != MAGIC:
        raise LinkError(f"the device on this port is not an nnaccel board (INFO magic "
                        f"{words[0]:#010x}, not {MAGIC:#010x}): program it with a bitstream "
                        f"from nnaccel synth")
    max_payload = words[1]
    if not MIN_PAYLOAD <= max_payload <= MAX_PAYLOAD or max_payload % 4:
        raise LinkError(f"the board reports max_payload {max_payload}, not a multiple of 4 in "
                        f"{MIN_PAYLOAD}..{MAX_PAYLOAD}: its image is wrong (rebuild it with "
                        f"nnaccel synth)")
    if len(words) > 2 and words[2] not in ENGINE_IDS.values():
        known = ", ".join(f"{v} ({k})" for k, v in ENGINE_IDS.items())
        raise LinkError(f"the board reports engine id {words[2]}, not one of {known}: its "
                        f"image is wrong or from another nnaccel version (rebuild it with "
                        f"nnaccel synth)")


def _words(reply: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(reply) // 4}I", reply))


class BoardClient:
    """Commands to a board; every method raises :class:`LinkError` on a failed exchange.

    Parameters
    ----------
    transport : Transport
    attempts : int
        Tries per request when replies are spoiled on the line (lost, truncated,
        corrupted, or the board reports the request itself arrived corrupted); the input
        is drained before each new try. ``RUN`` is tried again only when the board
        reported that it dropped the request unexecuted.
    """

    #: Reply words per READ request (keeps one reply well inside any timeout).
    READ_CHUNK = 256

    def __init__(self, transport: Transport, attempts: int = 3):
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be a whole number of at least 1, not {attempts!r}")
        self._t = transport
        self._attempts = attempts
        self._max_payload = None
        self._stale = False          # input may hold the rest of a spoiled reply

    def request(self, command: int, payload: bytes = b"") -> bytes:
        """Send one frame, return the payload of its ``OK`` reply (length checked)."""
        known = command in Command._value2member_map_
        name = Command(command).name if known else f"command {command:#04x}"
        faults = []
        for attempt in range(self._attempts):
            # Before RUN too: a stale error reply taken for RUN's would make RUN run twice.
            if self._stale or attempt or command == Command.RUN:
                self._t.reset_input()
            self._stale = True
            self._t.write(encode_request(command, payload))
            try:
                status, reply = self._receive()
            except LinkError as e:
                if command == Command.RUN:
                    longer = (" (a job longer than the reply timeout needs a longer one)"
                              if str(e) == _TIMEOUT else "")
                    raise LinkError(f"RUN: {e}; not retried, since the board may have run "
                                    f"the engine{longer}") from None
                faults.append(str(e))
                continue
            if status in _NOT_ACCEPTED:
                faults.append(_NOT_ACCEPTED[status])
                continue
            self._stale = False
            if status != Status.OK:
                said = (Status(status).name if status in Status._value2member_map_
                        else f"status {status:#04x}")
                raise LinkError(f"board answered {said} to {name}")
            check_reply_length(command, payload, reply)
            return reply
        counts = {f: faults.count(f) for f in faults}
        why = "; ".join(f"{f} x{n}" if n > 1 else f for f, n in counts.items())
        hint = (": is the board programmed, and the port and baud rate right?"
                if set(counts) == {_TIMEOUT} else "")
        raise LinkError(f"{name}: {self._attempts} attempts failed ({why}){hint}")

    def _receive(self) -> tuple[int, bytes]:
        """``(status, payload)`` of the next reply frame; ``LinkError`` if it is spoiled."""
        for _ in range(64):                        # skip line noise before the sync byte
            first = self._t.read(1)
            if not first:
                raise LinkError(_TIMEOUT)
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
        """[MAGIC, max_payload, engine id, engine config words...], checked by
        :func:`check_info`."""
        words = _words(self.request(Command.INFO))
        check_info(words)
        self._max_payload = words[1]
        return words

    @property
    def max_payload(self) -> int:
        """The board's request buffer in bytes (asks ``INFO`` the first time)."""
        if self._max_payload is None:
            self.info()
        return self._max_payload

    def write(self, space: int, addr: int, words) -> None:
        words = [int(w) for w in words]
        chunk = (self.max_payload - 4) // 4
        for start in range(0, len(words), chunk):
            self.request(Command.WRITE,
                         write_payload(space, addr + start, words[start:start + chunk]))

    def read(self, space: int, addr: int, count: int) -> list[int]:
        out = []
        for start in range(0, count, self.READ_CHUNK):
            n = min(self.READ_CHUNK, count - start)
            out += _words(self.request(Command.READ, read_payload(space, addr + start, n)))
        return out

    def run(self) -> int:
        """Start the engine and wait for it; returns the cycles it took."""
        (cycles,) = _words(self.request(Command.RUN))
        return cycles

    def counters(self) -> list[int]:
        return _words(self.request(Command.COUNTERS))

    def read_counters(self, count: int) -> list[int]:
        """The first ``count`` words of the counters space (an engine's own counters)."""
        return self.read(COUNTERS_SPACE, 0, count)
