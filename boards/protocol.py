"""The host link's framed command protocol: constants and the host-side codec.

A request is ``A5 cmd len_lo len_hi payload[len] crc_lo crc_hi``; a reply is
``5A status len_lo len_hi payload[len] crc_lo crc_hi``. The CRC (:data:`CRC`) covers everything
after the sync byte. Multi-byte fields are little-endian; data moves as 32-bit
words. The gateware side is :class:`boards.link.FrameLink`; ``docs/link-protocol.md``
documents the commands. :func:`check_reply_length` is the contract of an ``OK`` reply's
length, which the host checks before it unpacks a single word.
"""

import enum
import struct
from dataclasses import dataclass

from amaranth.lib.crc import catalog

__all__ = ["CRC", "REQUEST_SYNC", "REPLY_SYNC", "COUNTERS_SPACE", "MIN_PAYLOAD", "MAX_PAYLOAD",
           "Command", "Status", "Space", "LinkError", "encode_request", "encode_reply",
           "decode_request", "decode_reply", "write_payload", "read_payload",
           "check_reply_length"]

#: The checksum of every frame, on both sides of the wire: CRC-16/CCITT-FALSE (polynomial
#: 0x1021, initial value 0xFFFF, neither input nor output reflected, no final XOR), a byte a
#: step. ``CRC.compute(data)`` on the host, ``CRC.create()`` (a ``Processor``) in gateware.
CRC = catalog.CRC16_CCITT_FALSE(data_width=8)

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
#: Space id of the performance counters every engine adapter provides.
COUNTERS_SPACE = 0x0F
#: Bounds of a board's request buffer (``max_payload``, a multiple of 4), as
#: :class:`boards.link.FrameLink` enforces them: a WRITE needs room for its header and a word.
MIN_PAYLOAD = 8
MAX_PAYLOAD = 0xFFFC


class Command(enum.IntEnum):
    INFO = 0x01      # reply: the design's info words (magic, engine, config)
    WRITE = 0x02     # payload: space u8, addr u24, words
    READ = 0x03      # payload: space u8, addr u24, count u16; reply: words
    RUN = 0x04       # start the engine, reply when done: cycles u32
    COUNTERS = 0x05  # reply: every word of the counters space


class Status(enum.IntEnum):
    OK = 0x00
    BAD_CRC = 0x01
    TRUNCATED = 0x02     # the line went quiet inside a frame
    BAD_COMMAND = 0x03
    BAD_LENGTH = 0x04    # too long for the buffer, or wrong for the command
    BAD_ADDRESS = 0x05   # unknown space, wrong direction or out of range


@dataclass(frozen=True)
class Space:
    """An address space an engine adapter exposes to the link (32-bit words)."""
    id: int
    name: str
    depth: int
    writable: bool = False
    readable: bool = False

    def __post_init__(self):
        if not 0 <= self.id < 256:
            raise ValueError(f"space id must be 0..255, not {self.id}")
        if not 0 < self.depth <= 1 << 24:
            raise ValueError(f"space {self.name} depth must be 1..2**24 words, not {self.depth}")


class LinkError(OSError):
    """The board replied with an error status, or the reply was unusable."""


def _frame(sync: int, code: int, payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame (max 65535)")
    body = struct.pack("<BH", code, len(payload)) + payload
    return bytes([sync]) + body + struct.pack("<H", CRC.compute(body))


def encode_request(command: int, payload: bytes = b"") -> bytes:
    return _frame(REQUEST_SYNC, command, payload)


def encode_reply(status: int, payload: bytes = b"") -> bytes:
    return _frame(REPLY_SYNC, status, payload)


def write_payload(space: int, addr: int, words) -> bytes:
    words = [int(w) & 0xFFFFFFFF for w in words]
    return struct.pack("<I", space | addr << 8) + struct.pack(f"<{len(words)}I", *words)


def read_payload(space: int, addr: int, count: int) -> bytes:
    return struct.pack("<IH", space | addr << 8, count)


def _unframe(sync: int, frame: bytes, what: str) -> tuple[int, bytes]:
    if len(frame) < 6 or frame[0] != sync:
        raise LinkError(f"malformed {what} {frame[:8].hex()}")
    code, length = struct.unpack_from("<BH", frame, 1)
    if len(frame) != 6 + length:
        raise LinkError(f"{what} length {len(frame)} does not match its header ({length})")
    (crc,) = struct.unpack_from("<H", frame, 4 + length)
    if crc != CRC.compute(frame[1:4 + length]):
        raise LinkError(f"{what} CRC mismatch (line noise?)")
    return code, frame[4:4 + length]


def decode_request(frame: bytes) -> tuple[int, bytes]:
    """``(command, payload)`` of a complete request frame; ``LinkError`` if malformed."""
    return _unframe(REQUEST_SYNC, frame, "request")


def decode_reply(frame: bytes) -> tuple[int, bytes]:
    """``(status, payload)`` of a complete reply frame; ``LinkError`` if malformed."""
    return _unframe(REPLY_SYNC, frame, "reply")


def check_reply_length(command: int, request: bytes, reply: bytes) -> None:
    """Raise ``LinkError`` unless ``reply``, the payload of an ``OK`` reply to ``command``
    sent with payload ``request``, has a length that command can produce.

    ``INFO``: at least 2 words (magic, max_payload); ``READ``: exactly the words asked
    for; ``RUN``: one word (cycles); ``WRITE``: nothing; ``COUNTERS``: whole words.
    """
    n = len(reply)
    if command == Command.INFO:
        ok, expected = n >= 8 and n % 4 == 0, "a multiple of 4, at least 8"
    elif command == Command.READ:
        count = struct.unpack_from("<H", request, 4)[0] if len(request) >= 6 else 0
        ok, expected = n == 4 * count, str(4 * count)
    elif command == Command.RUN:
        ok, expected = n == 4, "4"
    elif command == Command.WRITE:
        ok, expected = n == 0, "0"
    elif command == Command.COUNTERS:
        ok, expected = n % 4 == 0, "a multiple of 4"
    else:
        return
    if not ok:
        raise LinkError(f"the board's {Command(command).name} reply has {n} payload bytes, "
                        f"expected {expected}: its image does not speak this host's protocol "
                        f"(rebuild it with nnaccel synth)")
