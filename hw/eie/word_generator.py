"""Word generator of an EIE PE: a column's sparse-matrix words, one read per cycle."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .activation_queue import column_layout
from .config import EieConfig

__all__ = ["WordGenerator"]


def _at_least(lane: int, value) -> Value:
    """``lane >= value``, folded where it always holds (keeps the Verilog lint-clean)."""
    return Const(1) if lane >= (1 << len(value)) - 1 else lane >= value


def _below(lane: int, value) -> Value:
    """``lane < value``, folded where it never holds."""
    return Const(0) if lane >= (1 << len(value)) - 1 else lane < value


class WordGenerator(wiring.Component):
    """Walks a column's words ``first_word .. last_word`` and reads each from the
    sparse-matrix memory while the entry decoder has a slot (``can_issue``), with no
    bubble between columns. Whether the word it reads is the column's last is a register,
    worked out a cycle ahead.

    Members
    -------
    i : In(stream.Signature(column_layout(config)))
        Columns; taken (``ready``) when the decoder has a slot and the column in hand
        has no word left after this cycle's.
    can_issue : In(1)
        The decoder has a slot for a read this cycle.
    issue : Out(1)
        A read is issued this cycle (to the decoder and the memory).
    rd_addr : Out
        Sparse-matrix memory read address, enabled by ``issue`` (a synchronous read port).
    rd_data : In(word_bits)
        The data of the read issued the cycle before.
    w_valid, w_word, w_mask, w_first, w_a : Out
        The word read, :attr:`latency` cycles after its ``issue``: the lanes that belong
        to the column, whether it is the column's first word, the column's activation.
    idle : Out(1)
        No column in hand and no word in flight.
    """

    def __init__(self, config: EieConfig):
        self._cfg = c = config
        epw = c.entries_per_word
        layout = column_layout(c)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "can_issue": In(1),
            "issue": Out(1),
            "rd_addr": Out(layout["first_word"].shape),
            "rd_data": In(c.word_bits),
            "w_valid": Out(1),
            "w_word": Out(c.word_bits),
            "w_mask": Out(epw),
            "w_first": Out(1),
            "w_a": Out(signed(c.act_width)),
            "idle": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``issue`` to the word on ``w_*`` (the read and its register)."""
        return 2

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        epw = c.entries_per_word
        col = self.i.payload
        g_active = Signal()
        g_addr = self.rd_addr
        g_last_addr = Signal.like(g_addr)
        g_lo = Signal(range(epw))
        g_hi = Signal(range(epw + 1))
        g_first = Signal()
        g_a = Signal(signed(c.act_width))
        g_at_last = Signal()
        g_mask = Signal(epw)
        issue = self.issue
        lo = Mux(g_first, g_lo, 0)
        hi = Mux(g_at_last, g_hi, epw)
        m.d.comb += [
            g_mask.eq(Cat(*[_at_least(lane, lo) & _below(lane, hi) for lane in range(epw)])),
            self.i.ready.eq(self.can_issue & (~g_active | g_at_last)),
            issue.eq(g_active & self.can_issue),
        ]
        with m.If(self.can_issue):
            with m.If(g_active & ~g_at_last):
                m.d.sync += [g_addr.eq(g_addr + 1), g_first.eq(0),
                             g_at_last.eq(g_addr + 1 == g_last_addr)]
            with m.Elif(self.i.valid):
                m.d.sync += [g_active.eq(1), g_first.eq(1), g_a.eq(col.a),
                             g_addr.eq(col.first_word), g_last_addr.eq(col.last_word),
                             g_lo.eq(col.lo), g_hi.eq(col.hi), g_at_last.eq(col.single)]
            with m.Else():
                m.d.sync += g_active.eq(0)
        # The word, registered after the memory.
        r_valid, r_mask, r_first, r_a = Signal(), Signal(epw), Signal(), Signal.like(g_a)
        m.d.sync += [r_valid.eq(issue), r_mask.eq(g_mask), r_first.eq(g_first), r_a.eq(g_a),
                     self.w_valid.eq(r_valid), self.w_word.eq(self.rd_data),
                     self.w_mask.eq(r_mask), self.w_first.eq(r_first), self.w_a.eq(r_a)]
        m.d.comb += self.idle.eq(~g_active & ~r_valid & ~self.w_valid)
        return m
