"""The host link's framed command protocol: constants and the host-side codec.

A request is ``A5 cmd len_lo len_hi payload[len] crc_lo crc_hi``; a reply is
``5A status len_lo len_hi payload[len] crc_lo crc_hi``. The CRC (:mod:`boards.crc`) covers
everything after the sync byte. Multi-byte fields are little-endian; data moves as 32-bit
words. The gateware side is :class:`boards.link.FrameLink`; the README's ``boards`` section
documents the commands.
"""

import enum
import struct
from dataclasses import dataclass

from .crc import crc16

__all__ = ["REQUEST_SYNC", "REPLY_SYNC", "Command", "Status", "Space", "LinkError",
           "encode_request", "encode_reply", "decode_reply", "write_payload", "read_payload"]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
#: Space id of the performance counters every engine adapter provides.
COUNTERS_SPACE = 0x0F


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
    return bytes([sync]) + body + struct.pack("<H", crc16(body))


def encode_request(command: int, payload: bytes = b"") -> bytes:
    return _frame(REQUEST_SYNC, command, payload)


def encode_reply(status: int, payload: bytes = b"") -> bytes:
    return _frame(REPLY_SYNC, status, payload)


def write_payload(space: int, addr: int, words) -> bytes:
    words = [int(w) & 0xFFFFFFFF for w in words]
    return struct.pack("<I", space | addr << 8) + struct.pack(f"<{len(words)}I", *words)


def read_payload(space: int, addr: int, count: int) -> bytes:
    return struct.pack("<IH", space | addr << 8, count)


def decode_reply(frame: bytes) -> tuple[int, bytes]:
    """``(status, payload)`` of a complete reply frame; ``LinkError`` if malformed."""
    if len(frame) < 6 or frame[0] != REPLY_SYNC:
        raise LinkError(f"malformed reply {frame[:8].hex()}")
    status, length = struct.unpack_from("<BH", frame, 1)
    if len(frame) != 6 + length:
        raise LinkError(f"reply length {len(frame)} does not match its header ({length})")
    (crc,) = struct.unpack_from("<H", frame, 4 + length)
    if crc != crc16(frame[1:4 + length]):
        raise LinkError("reply CRC mismatch (line noise?)")
    return status, frame[4:4 + length]
