"""Proof wrappers for the board link: its reply stream, the reply frames' framing and CRC,
and a request answered by a complete reply."""

from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, Signal

from boards.link import FrameLink
from boards.protocol import COUNTERS_SPACE, CRC, REPLY_SYNC, Space, Status

from .contracts import after_reset, free, stream_rule

__all__ = ["tiny_link", "LinkTxStream", "LinkReplyFrames"]


def tiny_link() -> FrameLink:
    """A link with the smallest buffer and timeout it accepts and two spaces."""
    spaces = (Space(1, "data", 4, writable=True, readable=True),
              Space(COUNTERS_SPACE, "counters", 2, readable=True))
    return FrameLink(spaces=spaces, timeout_cycles=16, max_payload=8)


def _link(m: Module) -> FrameLink:
    """The link with a free host (a byte at most every other cycle, as from the UART) and
    a free engine (any read data, ``done`` at any time)."""
    m.submodules.link = link = tiny_link()
    free(m, link.rx.valid, link.rx.payload, link.tx.ready, link.engine.bus.r_data,
         link.engine.done)
    prev_rx = Signal(name="fv_prev_rx_valid", reset_less=True)
    m.d.sync += prev_rx.eq(link.rx.valid)
    m.d.comb += Assume(~(prev_rx & link.rx.valid))
    return link


class LinkTxStream(Elaboratable):
    """``tx`` keeps the stream rule: a reply byte is held until the UART takes it."""

    def elaborate(self, platform):
        m = Module()
        link = _link(m)
        stream_rule(m, link.tx, name="tx")
        return m


class LinkReplyFrames(Elaboratable):
    """Every reply byte stream parses as frames: sync byte, status, length, as many payload
    bytes as the length says, and the CRC of all but the sync byte.

    ``Cover``: a request is answered by a whole reply frame, up to its last CRC byte (with
    ``ok_with_data``: an ``OK`` reply carrying at least one word, which takes longer).
    """

    def __init__(self, ok_with_data: bool = False):
        self._ok_with_data = ok_with_data

    def elaborate(self, platform):
        m = Module()
        link = _link(m)
        tx = link.tx
        byte = tx.payload
        beat = Signal()
        m.d.comb += beat.eq(tx.valid & tx.ready)
        pos = Signal(range(7))          # sync, status, len0, len1, payload, crc0, crc1
        status = Signal(8)
        length = Signal(16)
        left = Signal(16)
        m.submodules.crc = crc_step = CRC.create()
        crc = crc_step.crc
        m.d.comb += crc_step.data.eq(byte)
        whole = Signal()               # the last byte of a frame went out last cycle
        m.d.sync += whole.eq(0)
        with m.If(beat):
            with m.Switch(pos):
                with m.Case(0):
                    m.d.comb += Assert(byte == REPLY_SYNC, "reply frame without sync byte")
                    m.d.sync += pos.eq(1)
                    m.d.comb += crc_step.start.eq(1)
                with m.Case(1):
                    m.d.sync += [status.eq(byte), pos.eq(2)]
                    m.d.comb += crc_step.valid.eq(1)
                with m.Case(2):
                    m.d.sync += [length[:8].eq(byte), pos.eq(3)]
                    m.d.comb += crc_step.valid.eq(1)
                with m.Case(3):
                    total = Cat(length[:8], byte)
                    m.d.sync += [length[8:].eq(byte), left.eq(total),
                                 pos.eq(Mux(total == 0, 5, 4))]
                    m.d.comb += crc_step.valid.eq(1)
                with m.Case(4):
                    m.d.sync += left.eq(left - 1)
                    m.d.comb += crc_step.valid.eq(1)
                    with m.If(left == 1):
                        m.d.sync += pos.eq(5)
                with m.Case(5):
                    m.d.comb += Assert(byte == crc[:8], "reply CRC low byte wrong")
                    m.d.sync += pos.eq(6)
                with m.Case(6):
                    m.d.comb += Assert(byte == crc[8:], "reply CRC high byte wrong")
                    wanted = (status == Status.OK) & (length != 0) if self._ok_with_data else 1
                    m.d.sync += [pos.eq(0), whole.eq(wanted)]
        m.d.comb += Cover(after_reset(m) & whole, "request answered by a whole reply frame")
        return m

