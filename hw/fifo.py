"""A synchronous FIFO on a block RAM whose memory carries synthesis intent."""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .synthesis import no_collision

__all__ = ["BufferedFifo"]


def _next(pointer: Signal, depth: int):
    return pointer + 1 if depth == 1 << len(pointer) else Mux(pointer == depth - 1, 0,
                                                              pointer + 1)


class BufferedFifo(wiring.Component):
    """First in, first out, cycle for cycle as :class:`amaranth.lib.fifo.SyncFIFOBuffered`.

    ``depth - 1`` words sit in a memory read synchronously, the word at the head in the
    output register. The memory is marked :func:`~hw.synthesis.no_collision`: it is never
    read at the address written in the same cycle (reads need a stored word, writes a free
    one, and the two pointers meet only when the memory is empty or full).
    ``amaranth.lib.fifo``'s own memory cannot take attributes, hence this copy of it.

    Parameters
    ----------
    width : int
        Word width.
    depth : int
        Words held, at least 2.

    Members
    -------
    w_data, w_en : In
        Write ``w_data`` when ``w_en`` and ``w_rdy``.
    w_rdy : Out(1)
        Room for a word: ``level`` (of the memory, not counting the output register)
        below ``depth - 1``.
    w_level, level : Out(range(depth + 1))
        Words held, the output register included (the same signal).
    r_data, r_rdy : Out
        The head word and whether there is one.
    r_en : In(1)
        Take the head word (when ``r_rdy``).

    A word written into an empty FIFO appears on ``r_data`` :attr:`latency` cycles later.
    """

    def __init__(self, width: int, depth: int):
        self._check(width, depth)
        self._width, self._depth = width, depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "w_level": Out(range(depth + 1)), "level": Out(range(depth + 1)),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
        })

    @staticmethod
    def _check(width, depth):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width={width!r}: must be a positive int")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth={depth!r}: must be an int of at least 2")

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    #: Cycles from writing a word into an empty FIFO to ``r_rdy``: the memory's write, its
    #: synchronous read.
    LATENCY = 2

    @property
    def latency(self) -> int:
        return self.LATENCY

    @property
    def w_stream(self):
        """The write side as a stream (members of this component)."""
        w = stream.Signature(self._width).flip().create()
        w.payload, w.valid, w.ready = self.w_data, self.w_en, self.w_rdy
        return w

    @property
    def r_stream(self):
        """The read side as a stream (members of this component)."""
        r = stream.Signature(self._width).create()
        r.payload, r.valid, r.ready = self.r_data, self.r_rdy, self.r_en
        return r

    def elaborate(self, platform):
        m = Module()
        inner_depth = self._depth - 1
        # Signal names as in SyncFIFOBuffered (the formal checks read them).
        inner_level = Signal(range(inner_depth + 1), name="inner_level")
        inner_r_rdy = Signal()
        m.d.comb += [self.w_rdy.eq(inner_level != inner_depth),
                     inner_r_rdy.eq(inner_level != 0)]
        do_write = self.w_rdy & self.w_en
        do_inner_read = inner_r_rdy & (~self.r_rdy | self.r_en)

        m.submodules.storage = storage = Memory(shape=self._width, depth=inner_depth, init=[],
                                                attrs=no_collision())
        w_port, r_port = storage.write_port(), storage.read_port(domain="sync")
        produce = Signal(range(inner_depth), name="produce")
        consume = Signal(range(inner_depth), name="consume")
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(do_write),
                     r_port.addr.eq(consume), r_port.en.eq(do_inner_read),
                     self.r_data.eq(r_port.data)]
        with m.If(do_write):
            m.d.sync += produce.eq(_next(produce, inner_depth))
        with m.If(do_inner_read):
            m.d.sync += consume.eq(_next(consume, inner_depth))
        with m.If(do_write & ~do_inner_read):
            m.d.sync += inner_level.eq(inner_level + 1)
        with m.If(do_inner_read & ~do_write):
            m.d.sync += inner_level.eq(inner_level - 1)

        with m.If(do_inner_read):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        m.d.comb += [self.level.eq(inner_level + self.r_rdy), self.w_level.eq(self.level)]
        return m
