"""Shifts weight tiles from the weight buffer into the mesh, one after the other."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WeightLoader"]


class WeightLoader(wiring.Component):
    """Reads a GEMM's weight tiles in buffer order, shifts each into the mesh's weight chain
    and latches it into the idle bank.

    Tile ``t`` (``t = nt*KT + kt``, K tiles inner) is buffer words ``t*rows .. t*rows +
    rows - 1``; they are read last row first, one a cycle. The read data and the shift and
    latch commands are registered on their way to the mesh (they fan out to every PE), so
    each reaches the mesh's inputs a cycle after the loader decides it. A tile that has
    shifted in waits in the chain until it may be latched: at most two tiles latched and
    not yet issued (``tiles_full``), into a bank whose rows have all left it (``bank_idle``).
    Banks alternate, starting with bank 0.

    Parameters
    ----------
    rows, cols : int
        The mesh's size.
    weight_depth : int
        Words of the weight buffer.
    max_k, max_n : int
        Largest K and N of a command.

    Members
    -------
    start : In(1)
        A command starts (given only while the loader is idle): the next tile is its first.
    run : In(1)
        The engine runs a command; the loader starts on its tiles while this is high.
    k, n : In(unsigned)
        The command's K and N, steady while it runs.
    tiles_full : In(1)
        Two tiles are latched and not yet issued: hold the next in the chain.
    bank_idle : In(2)
        Per bank, no issued row still uses it.
    latched : Out(1)
        A tile is latched this cycle (combinational; ``latch`` follows a cycle later).
    w_addr : Out(unsigned)
        Weight buffer read address (the buffer's read data comes back on ``w_data`` a cycle
        later).
    w_data : In(ArrayLayout(signed(8), cols))
    w_out, shift : Out
        Weight chain input and shift enable, for the mesh.
    latch, latch_bank : Out(1)
        Copy the chain into bank ``latch_bank``, for the mesh.

    Timing: :attr:`latency` cycles from ``run`` (idle) to the first ``latched``, then
    :attr:`load_cycles` between one ``latched`` and the next when latching is not held
    back.
    """

    def __init__(self, *, rows: int, cols: int, weight_depth: int, max_k: int, max_n: int):
        for name, value in (("rows", rows), ("cols", cols), ("weight_depth", weight_depth),
                            ("max_k", max_k), ("max_n", max_n)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"WeightLoader {name}={value!r}: must be a positive int")
        self._rows, self._cols, self._depth = rows, cols, weight_depth
        self._max_k, self._max_n = max_k, max_n
        super().__init__({
            "start": In(1), "run": In(1),
            "k": In(unsigned(max_k.bit_length())), "n": In(unsigned(max_n.bit_length())),
            "tiles_full": In(1), "bank_idle": In(2), "latched": Out(1),
            "w_addr": Out(range(weight_depth + 2 * rows)),
            "w_data": In(data.ArrayLayout(signed(8), cols)),
            "w_out": Out(data.ArrayLayout(signed(8), cols)), "shift": Out(1),
            "latch": Out(1), "latch_bank": Out(1),
        })

    @staticmethod
    def load_cycles_of(rows: int) -> int:
        """Fewest cycles between two latches: ``rows`` reads, then the last read's data
        register and shift register; the next tile's reads start right after a latch."""
        return rows + 3

    @property
    def load_cycles(self) -> int:
        return self.load_cycles_of(self._rows)

    @property
    def latency(self) -> int:
        """Cycles from ``run`` while idle to the first ``latched``: the same as between two
        latches (the idle state stands in for the latching one)."""
        return self.load_cycles

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        cnt = Signal(range(rows + 1), name="l_cnt")
        base = Signal(range(self._depth + rows), name="l_base")
        k0 = Signal(self._max_k.bit_length() + 1, name="l_k0")
        n0 = Signal(self._max_n.bit_length() + 1, name="l_n0")
        done = Signal(name="l_done")
        # The tile is the last of its K (N) run: registered (k0 and n0 are steady for a
        # tile's `rows` shift cycles before they are used).
        last_k, last_n = Signal(name="l_last_k"), Signal(name="l_last_n")
        next_bank = Signal(name="next_bank")
        w_addr = Signal.like(self.w_addr, name="w_addr")      # base + rows - 1 - cnt
        shift_pending = Signal()
        w_q = Signal.like(self.w_data, name="w_q", reset_less=True)
        shift_q, latch_r, latch_bank_r = Signal(), Signal(), Signal()
        m.d.comb += [self.w_addr.eq(w_addr), self.w_out.eq(w_q), self.shift.eq(shift_q),
                     self.latch.eq(latch_r), self.latch_bank.eq(latch_bank_r)]
        m.d.sync += [shift_pending.eq(0), shift_q.eq(shift_pending), w_q.eq(self.w_data),
                     latch_r.eq(0),
                     last_k.eq(k0 + rows >= self.k), last_n.eq(n0 + cols >= self.n)]
        with m.If(self.start):
            m.d.sync += [base.eq(0), k0.eq(0), n0.eq(0), done.eq(0), next_bank.eq(0)]

        bank = next_bank
        may_latch = ~self.tiles_full & Mux(bank, self.bank_idle[1], self.bank_idle[0])
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(self.run & ~done):
                    m.d.sync += [cnt.eq(0), w_addr.eq(base + (rows - 1))]
                    m.next = "SHIFT"
            with m.State("SHIFT"):          # reading the tile's rows, last first
                m.d.sync += [shift_pending.eq(1), cnt.eq(cnt + 1), w_addr.eq(w_addr - 1)]
                with m.If(cnt == rows - 1):
                    m.next = "DATA"
            with m.State("DATA"):           # the last read's data register
                m.next = "LAST_SHIFT"
            with m.State("LAST_SHIFT"):     # the last shift command's register
                m.next = "FULL"
            with m.State("FULL"):           # the chain holds the tile
                with m.If(may_latch):
                    m.d.comb += self.latched.eq(1)
                    m.d.sync += [latch_r.eq(1), latch_bank_r.eq(bank),
                                 next_bank.eq(~next_bank), base.eq(base + rows),
                                 w_addr.eq(base + (2 * rows - 1)), cnt.eq(0)]
                    m.next = "SHIFT"        # straight on to the next tile
                    with m.If(last_k):
                        m.d.sync += k0.eq(0)
                        with m.If(last_n):
                            m.d.sync += done.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += n0.eq(n0 + cols)
                    with m.Else():
                        m.d.sync += k0.eq(k0 + rows)
        return m
