"""Request frames in: sync, length and CRC checked, payload into the frame buffer."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .protocol import CRC, REQUEST_SYNC, Status

__all__ = ["FrameLayout", "Deframer"]

#: What the deframer knows of a request: ``status`` is ``OK`` (the frame is whole and its CRC
#: right), ``BAD_CRC``, ``TRUNCATED`` or ``BAD_LENGTH`` (too long for the buffer); ``space``,
#: ``addr`` and ``count`` are the first 6 payload bytes (the header of ``WRITE`` and
#: ``READ``), meaningful only if the payload has them.
FrameLayout = data.StructLayout({
    "status": 8, "command": 8, "length": 16, "space": 8, "addr": 24, "count": 16,
})


class Deframer(wiring.Component):
    """Finds request frames in the byte stream, checks their length and CRC and writes their
    payload into the frame buffer.

    Every frame, whole or not, ends in one beat on ``frame``, which the consumer takes once
    it has replied: until then the deframer holds the beat and drops the bytes that come
    (the host waits for each reply). The beat of a whole frame comes 3 cycles after its
    last byte on ``rx``; a frame whose line went quiet is given up ``timeout_cycles`` + 4
    cycles after its last byte (+ 3 for one too long for the buffer).

    Parameters
    ----------
    timeout_cycles : int
        Silence inside a frame after which it is given up.
    max_payload : int
        Frame buffer size in bytes; a longer payload is not stored and answers
        ``BAD_LENGTH``.

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes, always ready, at most one every other cycle (as from a UART): the
        deframer's decisions are registered.
    buffer : In(WritePort.Signature(...))
        Write port of the frame buffer (``max_payload`` bytes); payload byte ``i`` goes to
        address ``i``.
    frame : Out(stream.Signature(FrameLayout))
        One beat per frame.
    """

    def __init__(self, *, timeout_cycles: int, max_payload: int):
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be at least 16, not {timeout_cycles}")
        if not 2 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be 2..65535, not {max_payload}")
        self._timeout = timeout_cycles
        self._max_payload = max_payload
        super().__init__({
            "rx": In(stream.Signature(8)),
            "buffer": In(WritePort.Signature(addr_width=ceil_log2(max_payload), shape=8)),
            "frame": Out(stream.Signature(FrameLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC.create()
        out = self.frame.payload
        header = Signal(48)            # the first 6 payload bytes: space, addr, count
        m.d.comb += Cat(out.space, out.addr, out.count).eq(header)
        length = out.length
        index = Signal(16)
        crc_lo, crc_hi = Signal(8), Signal(8)
        timer = Signal(range(self._timeout + 2))
        timed_out = Signal()           # timer >= timeout, registered
        hdr_pos = Signal(6)            # one-hot: the header byte the next payload byte is
        left = Signal(16)              # payload bytes still to come
        last_byte = Signal()           # the next payload byte is the last (left == 1)
        held = Signal(8)               # the status of the frame waiting to be taken
        crc_ok = Signal()
        m.d.sync += [crc_ok.eq(Cat(crc_lo, crc_hi) == crc.crc),
                     timed_out.eq(timer >= self._timeout)]
        m.d.comb += self.rx.ready.eq(1)

        # Request bytes pass a register, with the compares made on them (the length's low
        # byte, from the byte before, is steady by then).
        rx_valid, rx_byte = Signal(), Signal(8)
        rx_sync, len_over, len_zero, len_one = Signal(), Signal(), Signal(), Signal()
        incoming_length = Cat(length[:8], self.rx.payload)
        m.d.sync += [rx_valid.eq(self.rx.valid), rx_byte.eq(self.rx.payload),
                     rx_sync.eq(self.rx.payload == REQUEST_SYNC),
                     len_over.eq(incoming_length > self._max_payload),
                     len_zero.eq(incoming_length == 0), len_one.eq(incoming_length == 1)]
        m.d.comb += crc.data.eq(rx_byte)
        # The header is the first 6 payload bytes: hdr_pos, set by the second length byte,
        # walks over them whatever the state (off the state decode's paths) and is cleared
        # when the payload ends early, so the beat on ``frame`` stays steady.
        with m.If(rx_valid):
            m.d.sync += hdr_pos.eq(hdr_pos << 1)
            for k in range(6):
                with m.If(hdr_pos[k]):
                    m.d.sync += header[8 * k:8 * k + 8].eq(rx_byte)

        def receiving(next_state, on_byte=(), crc_step=False):
            """Common to states inside a frame: a byte moves on, silence times out."""
            with m.If(rx_valid):
                m.d.sync += [timer.eq(0), timed_out.eq(0), *on_byte]
                m.d.comb += crc.valid.eq(crc_step)
                if next_state is not None:
                    m.next = next_state
            with m.Elif(timed_out):
                m.next = "TIMED_OUT"
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        def deliver(status):
            m.d.comb += [self.frame.valid.eq(1), out.status.eq(status)]
            m.d.sync += [held.eq(status), hdr_pos.eq(0)]
            m.next = "HELD"

        with m.FSM():
            with m.State("HUNT"):
                with m.If(rx_valid & rx_sync):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [timer.eq(0), timed_out.eq(0)]
                    m.next = "CMD"
            with m.State("CMD"):
                receiving("LEN0", [out.command.eq(rx_byte)], crc_step=True)
            with m.State("LEN0"):
                receiving("LEN1", [length[:8].eq(rx_byte)], crc_step=True)
            with m.State("LEN1"):
                receiving(None, [length[8:].eq(rx_byte), index.eq(0),
                                 hdr_pos.eq(Cat(~len_zero & ~len_over)),
                                 left.eq(Cat(length[:8], rx_byte)), last_byte.eq(len_one)],
                          crc_step=True)
                with m.If(rx_valid):
                    with m.If(len_over):
                        m.next = "DISCARD"
                    with m.Elif(len_zero):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.buffer.addr.eq(index), self.buffer.data.eq(rx_byte),
                             self.buffer.en.eq(rx_valid)]
                receiving(None, [index.eq(index + 1), left.eq(left - 1),
                                 last_byte.eq(left == 2)], crc_step=True)
                with m.If(rx_valid & last_byte):
                    m.d.sync += hdr_pos.eq(0)
                    m.next = "CRC0"
            with m.State("CRC0"):
                receiving("CRC1", [crc_lo.eq(rx_byte)])
            with m.State("CRC1"):
                receiving("CRC_WAIT", [crc_hi.eq(rx_byte)])
            with m.State("CRC_WAIT"):               # crc_ok registers here
                m.next = "CRC_CHECK"
            with m.State("CRC_CHECK"):
                with m.If(crc_ok):
                    deliver(Status.OK)
                with m.Else():
                    deliver(Status.BAD_CRC)
            with m.State("TIMED_OUT"):
                deliver(Status.TRUNCATED)
            with m.State("DISCARD"):
                with m.If(rx_valid):
                    m.d.sync += [timer.eq(0), timed_out.eq(0)]
                with m.Elif(timed_out):
                    deliver(Status.BAD_LENGTH)
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)
            with m.State("HELD"):
                m.d.comb += [self.frame.valid.eq(1), out.status.eq(held)]
                with m.If(self.frame.ready):
                    m.next = "HUNT"
        return m
