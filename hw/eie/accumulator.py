"""Accumulator of an EIE PE: codebook lookup, multiply, and the row accumulators."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..multiplier import Multiplier
from ..synthesis import keep_copy
from .config import EieConfig
from .entry_decoder import row_bits

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    """``acc[row] += (codebook[index] * a) >> weight_frac`` for every entry, one per cycle,
    into an accumulator memory this component addresses (the PE holds it).

    Pipeline: codebook lookup (registered), multiply in a
    :class:`~hw.multiplier.Multiplier` (:attr:`Multiplier.LATENCY` stages), the
    accumulator read (its address registered a cycle ahead, its data registered), the sum
    written a cycle later (registered). The read misses the writes of the three entries
    ahead; their sums are forwarded (row matches found a cycle early, registered), so one
    row may be updated every cycle.

    The write-back shares the memory: ``wb_en`` reads row ``wb_addr`` (its value on
    ``acc_data`` :attr:`read_latency` cycles later), ``zero_en`` clears ``zero_addr``, and
    ``clear_en`` clears ``clear_addr`` (after reset). Clears win over the sums; neither
    meets an entry in a well-formed run (the write-back follows the last entry).

    Members
    -------
    start : In(1)
        The layer starts: ``codebook`` is copied then (the copy sits next to this PE).
    codebook : In(data.ArrayLayout(signed(weight_width), codebook_size))
    e_valid, e_row, e_index, e_a : In
        An entry: its row, codebook index and activation (the entry decoder's ``o_*``).
    rd_addr : Out, rd_data : In(signed(acc_width))
        The accumulator memory's read (synchronous: data the cycle after).
    wr_addr, wr_data, wr_en : Out
        Its write (registered here).
    wb_en, wb_addr, zero_en, zero_addr, clear_en, clear_addr : In
    acc_data : Out(signed(acc_width))
        The accumulator read, registered.
    idle : Out(1)
        No entry in the pipeline and no write pending.
    """

    def __init__(self, config: EieConfig):
        self._cfg = c = config
        act_addr = _bits(c.act_depth - 1)
        if Multiplier.LATENCY < 3:
            raise ValueError(f"Accumulator needs a multiplier of 3 or more stages, not "
                             f"{Multiplier.LATENCY}: the accumulator read starts 3 ahead")
        super().__init__({
            "start": In(1),
            "codebook": In(data.ArrayLayout(signed(c.weight_width), c.codebook_size)),
            "e_valid": In(1),
            "e_row": In(row_bits(c)),
            "e_index": In(c.index_bits),
            "e_a": In(signed(c.act_width)),
            "rd_addr": Out(act_addr),
            "rd_data": In(signed(c.acc_width)),
            "wr_addr": Out(act_addr),
            "wr_data": Out(signed(c.acc_width)),
            "wr_en": Out(1),
            "wb_en": In(1),
            "wb_addr": In(act_addr),
            "zero_en": In(1),
            "zero_addr": In(act_addr),
            "clear_en": In(1),
            "clear_addr": In(act_addr),
            "acc_data": Out(signed(c.acc_width)),
            "idle": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from an entry on ``e_*`` to its sum's write (``wr_en``)."""
        return Multiplier.LATENCY + 2

    @property
    def read_latency(self) -> int:
        """Cycles from ``wb_en`` to the row's value on ``acc_data``."""
        return 3

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        rb = row_bits(c)
        codebook = Signal.like(self.codebook, name="layer_copy_codebook",
                               attrs=keep_copy(platform))
        with m.If(self.start):
            m.d.sync += codebook.eq(self.codebook)

        # Codebook lookup (registered), then multiply (a DSP with its registers).
        m.submodules.multiplier = mul = Multiplier(signed(c.weight_width),
                                                   signed(c.act_width))
        k_valid, k_row = Signal(), Signal(rb)
        k_weight, k_a = Signal(signed(c.weight_width)), Signal(signed(c.act_width))
        m.d.sync += [k_valid.eq(self.e_valid), k_row.eq(self.e_row),
                     k_weight.eq(codebook[self.e_index]), k_a.eq(self.e_a)]
        m.d.comb += [mul.a.eq(k_weight), mul.b.eq(k_a)]
        stages = Multiplier.LATENCY
        valid = [Signal(name=f"mac_valid_{k}") for k in range(stages + 1)]
        rows = [Signal(rb, name=f"mac_row_{k}") for k in range(stages + 1)]
        m.d.comb += [valid[0].eq(k_valid), rows[0].eq(k_row)]
        for k in range(stages):
            m.d.sync += [valid[k + 1].eq(valid[k]), rows[k + 1].eq(rows[k])]
        # The read address, registered a cycle ahead: the write-back's row, else the entry's.
        acc_raddr = Signal.like(self.rd_addr)
        m.d.sync += acc_raddr.eq(Mux(self.wb_en, self.wb_addr, rows[stages - 3]))
        m.d.comb += self.rd_addr.eq(acc_raddr)
        acc_q = self.acc_data
        m.d.sync += acc_q.eq(self.rd_data)

        # Accumulate, with the sums of the three entries ahead forwarded.
        a_valid, a_row = valid[stages], rows[stages]
        b_row = rows[stages - 1]
        last_valid, last2_valid = Signal(), Signal()
        last_row, last2_row = Signal(rb), Signal(rb)
        last_sum = Signal(signed(c.acc_width))
        last2_sum = Signal(signed(c.acc_width))
        last3_sum = Signal(signed(c.acc_width))
        hit1, hit2, hit3 = Signal(), Signal(), Signal()
        m.d.sync += [hit1.eq(a_valid & (a_row == b_row)),
                     hit2.eq(last_valid & (last_row == b_row)),
                     hit3.eq(last2_valid & (last2_row == b_row))]
        product = Signal(signed(c.act_width + c.weight_width - c.weight_frac))
        m.d.comb += product.eq(mul.p >> c.weight_frac)
        old = Signal(signed(c.acc_width))
        new = Signal(signed(c.acc_width))
        m.d.comb += [old.eq(Mux(hit1, last_sum, Mux(hit2, last2_sum,
                                                    Mux(hit3, last3_sum, acc_q)))),
                     new.eq(old + product)]
        m.d.sync += [last_valid.eq(a_valid), last_row.eq(a_row), last_sum.eq(new),
                     last2_valid.eq(last_valid), last2_row.eq(last_row),
                     last2_sum.eq(last_sum), last3_sum.eq(last2_sum)]

        # The write, registered: a clear, the write-back's zeroing, else the sum.
        acc_wen, acc_waddr = self.wr_en, self.wr_addr
        acc_wdata = self.wr_data
        with m.If(self.clear_en):
            m.d.sync += [acc_waddr.eq(self.clear_addr), acc_wdata.eq(0), acc_wen.eq(1)]
        with m.Elif(self.zero_en):
            m.d.sync += [acc_waddr.eq(self.zero_addr), acc_wdata.eq(0), acc_wen.eq(1)]
        with m.Else():
            m.d.sync += [acc_waddr.eq(a_row), acc_wdata.eq(new), acc_wen.eq(a_valid)]
        m.d.comb += self.idle.eq(~k_valid & ~Cat(*valid).any() & ~acc_wen)
        return m
