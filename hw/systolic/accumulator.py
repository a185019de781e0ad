"""Sums a row's partial sums across K tiles in a memory, with forwarding of recent sums."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..runtime_memory import runtime_memory
from ..synthesis import keep_copy, no_collision

__all__ = ["Accumulator", "tap_layout"]


def tap_layout(acc_depth: int) -> data.StructLayout:
    """A row's metadata as the accumulator reads it: whether there is a row, whether its K
    tile is the first / last of its N tile, its row ``m`` (the accumulator word)."""
    return data.StructLayout({"valid": 1, "first": 1, "last": 1,
                              "m": unsigned(max(1, (acc_depth - 1).bit_length()))})


class Accumulator(wiring.Component):
    """``sums = psum + (first ? 0 : acc[m])``, and ``acc[m] = sums`` unless the K tile is
    the last, one row a cycle.

    The accumulator word is read four cycles before the row's partial sums arrive and
    registered twice (on the ECP5 the first register is the block RAM's own); the new sum
    is written a cycle after they arrive. Rows of the same ``m`` one to four cycles ahead
    hold newer sums than that read: the row one ahead's sum is forwarded straight into the
    add, the sum to use otherwise (two to four rows ahead, the memory, or 0 in the first K
    tile) is chosen a cycle earlier. Each select has a registered copy per column.

    Parameters
    ----------
    cols, acc_width, acc_depth : int
        Columns, sum width, accumulator words.

    Members
    -------
    taps : In(ArrayLayout(tap_layout(acc_depth), TAPS))
        The metadata of the caller's row delay line: ``taps[j]`` is the row whose partial
        sums arrive ``PSUM_TAP - j`` cycles later (``taps[PSUM_TAP]`` the one on ``psum``,
        ``taps[PSUM_TAP + 1]`` the one on ``sums``).
    psum : In(ArrayLayout(signed(acc_width), cols))
        The mesh's partial sums of row ``taps[PSUM_TAP]`` (nothing when it is not valid).
    sums : Out(ArrayLayout(signed(acc_width), cols))
        That row's sums, :attr:`latency` cycle later (wrapping at ``acc_width``).
    """

    #: Delay-line taps read, and the one whose partial sums are on ``psum``.
    TAPS, PSUM_TAP = 6, 4

    #: Cycles from ``psum`` to ``sums``.
    LATENCY = 1

    def __init__(self, *, cols: int, acc_width: int, acc_depth: int):
        for name, value in (("cols", cols), ("acc_width", acc_width), ("acc_depth", acc_depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Accumulator {name}={value!r}: must be a positive int")
        self._cols, self._width, self._depth = cols, acc_width, acc_depth
        sums = data.ArrayLayout(signed(acc_width), cols)
        super().__init__({
            "taps": In(data.ArrayLayout(tap_layout(acc_depth), self.TAPS)),
            "psum": In(sums), "sums": Out(sums),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        cols, width = self._cols, self._width
        m.submodules.acc_mem = acc_mem = runtime_memory(data.ArrayLayout(signed(width), cols),
                                                        self._depth, attrs=no_collision())
        acc_wr, acc_rd = acc_mem.write_port(), acc_mem.read_port()
        taps = self.taps
        m.d.comb += acc_rd.addr.eq(taps[1].m)
        acc_q = Signal.like(acc_rd.data, name="acc_q", reset_less=True)
        m.d.sync += acc_q.eq(acc_rd.data)

        def writes(row: data.View, ahead: data.View):
            return ahead.valid & ~ahead.last & (ahead.m == row.m)

        keep = keep_copy(platform)
        near = [Signal(name=f"acc_near_copy_{c}", attrs=keep) for c in range(cols)]
        far = [[Signal(name=f"acc_far{j}_copy_{c}", attrs=keep) for c in range(cols)]
               for j in range(4)]
        # The selects are decided once a cycle before their copies are made: near two
        # cycles before the sums (the row one ahead), far three before (the rows two to
        # four ahead); the address compares a cycle before that, on the same rows one tap
        # earlier: compares and select together are too deep for one cycle.
        # (without reset: with one, Yosys 0.70's ABC9 stops on its rtlil.cc:3091 assertion
        # in a 2x3 ECP5 build; the taps' valid bits are reset, so these follow a cycle on)
        w1, w2, w3, w4 = (Signal(name=f"acc_writes_{j}", reset_less=True) for j in range(1, 5))
        m.d.sync += [w1.eq(writes(taps[1], taps[2]))]
        m.d.sync += [w.eq(writes(taps[0], taps[j])) for w, j in ((w2, 2), (w3, 3), (w4, 4))]
        first_1, first_2 = taps[2].first, taps[1].first
        near_q, far_q = Signal(name="near_q"), Signal(4, name="far_q")
        m.d.sync += [near_q.eq(~first_1 & w1),
                     far_q.eq(Cat(~first_2 & w2, ~first_2 & ~w2 & w3,
                                  ~first_2 & ~w2 & ~w3 & w4, ~first_2 & ~(w2 | w3 | w4)))]
        for c in range(cols):
            m.d.sync += [near[c].eq(near_q)] + [far[j][c].eq(far_q[j]) for j in range(4)]
        sums = Signal(data.ArrayLayout(signed(width), cols), name="sums")
        sums_r = [Signal.like(sums, name=f"sums_{j + 1}", reset_less=True) for j in range(3)]
        m.d.sync += [sums_r[0].eq(sums), sums_r[1].eq(sums_r[0]), sums_r[2].eq(sums_r[1])]
        for c in range(cols):
            far_sum = Signal(signed(width), name=f"far_sum_{c}", reset_less=True)
            m.d.sync += far_sum.eq(Mux(far[0][c], sums_r[0][c], 0) |
                                   Mux(far[1][c], sums_r[1][c], 0) |
                                   Mux(far[2][c], sums_r[2][c], 0) | Mux(far[3][c], acc_q[c], 0))
            previous = Signal(signed(width), name=f"previous_{c}")
            m.d.comb += [previous.eq(Mux(near[c], sums_r[0][c], far_sum)),
                         sums[c].eq(previous + self.psum[c])]
        wrote = taps[self.PSUM_TAP + 1]
        m.d.comb += [acc_wr.addr.eq(wrote.m), acc_wr.data.eq(sums_r[0]),
                     acc_wr.en.eq(wrote.valid & ~wrote.last), self.sums.eq(sums_r[0])]
        return m
