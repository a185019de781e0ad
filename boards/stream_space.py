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

    Word ``j`` of a beat is written at a bus address whose low bits are ``j`` (the other
    address bits are ignored: an addressed payload carries its own address). The beat goes
    out when its last word arrives; ``o.valid`` stays up until ``o.ready``.

    Members
    -------
    w_en, w_addr, w_data : In
        The bus write, already decoded for this space.
    o : Out(stream.Signature(width))
    """

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
        staged = Signal(32 * words)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.w_en):
            if self._stride == 0:
                m.d.sync += [self.o.payload.eq(self.w_data), self.o.valid.eq(1)]
            else:
                index = self.w_addr[:self._stride]
                m.d.sync += staged.word_select(index, 32).eq(self.w_data)
                with m.If(index == words - 1):
                    m.d.sync += [self.o.payload.eq(Cat(staged[:32 * (words - 1)], self.w_data)),
                                 self.o.valid.eq(1)]
        return m
