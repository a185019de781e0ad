"""A 256-entry int8 -> int8 activation table on each output column, or a plain delay."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..runtime_memory import runtime_memory
from ..synthesis import no_collision

__all__ = ["ActivationLut", "LUT_SIZE"]

#: Entries of the table: one per int8 code.
LUT_SIZE = 256


class ActivationLut(wiring.Component):
    """``o_y[c] = table[i_y[c] + 128]`` when ``enable``, else ``i_y[c]``, :attr:`LATENCY`
    cycles later, for ``cols`` columns at once.

    Every column holds a copy of the same table (one read port each, placed near its
    column), written ``entries`` codes per beat: ``w_data`` holds ``table[w_chunk*entries
    .. w_chunk*entries + entries - 1]``. Both paths take the same two registers, the two
    the output stage had before the table (so the table adds no latency): the table's read
    data register, then the bypass multiplexer's. ``enable`` is sampled in the second
    cycle; it is held steady through a GEMM. The table is written before the command that
    reads it (:func:`~hw.synthesis.no_collision`).

    Parameters
    ----------
    cols : int
        Output columns.
    entries : int
        Table entries per write beat, a power of two from 1 to 256.
    tables : bool
        Without tables (``False``) the stage is the two registers alone: ``o_y = i_y``
        two cycles later whatever ``enable`` says, and writes are ignored.

    Members
    -------
    w_en : In(1)
    w_chunk : In(range(256 // entries))
    w_data : In(ArrayLayout(signed(8), entries))
    enable : In(1)
    i_y : In(ArrayLayout(signed(8), cols))
    o_y : Out(ArrayLayout(signed(8), cols))
    """

    #: Cycles from ``i_y`` to ``o_y``, on either path.
    LATENCY = 2

    def __init__(self, *, cols: int, entries: int, tables: bool = True):
        if not isinstance(cols, int) or cols < 1:
            raise ValueError(f"ActivationLut cols={cols!r}: use a positive integer")
        if (not isinstance(entries, int) or not 1 <= entries <= LUT_SIZE
                or entries & (entries - 1)):
            raise ValueError(f"ActivationLut entries={entries!r}: use a power of two from 1 "
                             f"to {LUT_SIZE}")
        self._cols, self._entries, self._tables = cols, entries, tables
        super().__init__({
            "w_en": In(1),
            "w_chunk": In(range(LUT_SIZE // entries)),
            "w_data": In(data.ArrayLayout(signed(8), entries)),
            "enable": In(1),
            "i_y": In(data.ArrayLayout(signed(8), cols)),
            "o_y": Out(data.ArrayLayout(signed(8), cols)),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        entries = self._entries
        lane_bits = (entries - 1).bit_length()
        for c in range(self._cols):
            if not self._tables:
                bypass = Signal(signed(8), name=f"bypass_{c}", reset_less=True)
                m.d.sync += [bypass.eq(self.i_y[c]), self.o_y[c].eq(bypass)]
                continue
            mem = runtime_memory(data.ArrayLayout(signed(8), entries), LUT_SIZE // entries,
                                 attrs=no_collision())
            m.submodules[f"table_{c}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            # The table index of an int8 code y is y + 128: y with its sign bit flipped.
            index = Signal(unsigned(8), name=f"index_{c}")
            lane = Signal(unsigned(max(1, lane_bits)), name=f"lane_{c}", reset_less=True)
            bypass = Signal(signed(8), name=f"bypass_{c}", reset_less=True)
            m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_chunk),
                         wp.data.eq(self.w_data),
                         index.eq(self.i_y[c].as_unsigned() ^ 0x80),
                         rp.addr.eq(index[lane_bits:])]
            m.d.sync += [lane.eq(index[:lane_bits] if lane_bits else 0),
                         bypass.eq(self.i_y[c]),
                         self.o_y[c].eq(Mux(self.enable, rp.data[lane], bypass))]
        return m
