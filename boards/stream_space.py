"""Bus writes → stream beats: how a wide engine stream is loaded over the 32-bit bus."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamSpace", "stride_log2"]


def stride_log2(width: int) -> int:
    """log2 of the bus words one ``width``-bit beat occupies (rounded up to a power of 2)."""
    return max(0, (-(-width // 32) - 1).bit_length())


class StreamSpace(wiring.Component):
    """Collects a beat from ``2**stride_log2(width)`` consecutive bus words, then sends it.

    The words of a beat are written in order, word ``j`` at a bus address whose low bits
    are ``j`` (the other address bits are ignored: an addressed payload carries its own
    address); the beat goes out when its last word is written. The words shift into a
    staging register (the bus data then reaches 32 flip-flops, not every word of a wide
    beat) and the whole beat into the payload register, each word with its own registered
    copy of the enables (``*_copy_*``, kept apart in synthesis): a beat leaves
    :attr:`LATENCY` cycles after its last word. ``o.valid`` stays up until ``o.ready``;
    the payload holds until the next beat.

    Members
    -------
    w_en, w_addr, w_data : In
        The bus write, already decoded for this space.
    o : Out(stream.Signature(width))
    """

    #: Cycles from the last word's write to ``o.valid``.
    LATENCY = 3

    def __init__(self, width: int):
        self._width = width
        self._stride = stride_log2(width)
        super().__init__({
            "w_en": In(1), "w_addr": In(max(1, self._stride)), "w_data": In(32),
            "o": Out(stream.Signature(width)),
        })

    @property
    def stride_log2(self) -> int:
        return self._stride

    def elaborate(self, platform):
        m = Module()
        words = 1 << self._stride
        data_q = Signal(32, reset_less=True)
        last_q = Signal()
        shift = [Signal(name=f"shift_copy_{k}", reset_less=True) for k in range(words)]
        load = [Signal(name=f"load_copy_{k}", reset_less=True) for k in range(words)]
        staged = [Signal(32, name=f"staged_{k}", reset_less=True) for k in range(words)]
        payload = [Signal(32, name=f"payload_{k}", reset_less=True) for k in range(words)]
        last = self.w_en & (self.w_addr[:self._stride] == words - 1 if self._stride else 1)
        # The write, registered once, then copied per word (a cycle later) next to its word.
        en_q, data_q2, last_q2 = Signal(), Signal(32, reset_less=True), Signal()
        m.d.sync += [data_q.eq(self.w_data), last_q.eq(last), en_q.eq(self.w_en),
                     data_q2.eq(data_q), last_q2.eq(last_q)]
        m.d.sync += [en.eq(en_q) for en in shift]
        m.d.sync += [en.eq(last_q) for en in load]
        for k in range(words):      # the new word enters at the top, the others move down
            moved = staged[k + 1] if k + 1 < words else data_q2
            with m.If(shift[k]):
                m.d.sync += staged[k].eq(moved)
            with m.If(load[k]):
                m.d.sync += payload[k].eq(moved)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(last_q2):
            m.d.sync += self.o.valid.eq(1)
        m.d.comb += self.o.payload.eq(Cat(*payload))
        return m
