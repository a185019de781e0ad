"""Codebook store of the EIE engine: every layer's codebook, one selected for the PEs."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..synthesis import keep_copy
from .config import EieConfig

__all__ = ["CodebookStore"]


class CodebookStore(wiring.Component):
    """``max_layers`` codebooks of ``codebook_size`` values, loaded one value per beat,
    kept across a reset (like the memories, so an image survives it).

    A write is registered, its address decoded into a registered one-hot word select, then
    written: :attr:`write_latency` cycles, during which ``busy`` is high (a layer must not
    start before its codebook is in).

    Members
    -------
    w_en, w_addr, w_data : In
        Write value ``w_data`` (the low ``weight_width`` bits) at
        ``w_addr = slot * codebook_size + index``.
    busy : Out(1)
        A write is on its way.
    select_en : In(1), slot : In
        While ``select_en``, ``active`` copies codebook ``slot`` (registered).
    active : Out(data.ArrayLayout(signed(weight_width), codebook_size))
    """

    def __init__(self, config: EieConfig):
        self._cfg = c = config
        super().__init__({
            "w_en": In(1),
            "w_addr": In(c.load_addr_bits),
            "w_data": In(c.lane_bits),
            "busy": Out(1),
            "select_en": In(1),
            "slot": In(_bits(c.max_layers - 1)),
            "active": Out(data.ArrayLayout(signed(c.weight_width), c.codebook_size)),
        })

    @property
    def write_latency(self) -> int:
        """Cycles from ``w_en`` to the value in the store (``active`` a cycle later)."""
        return 3

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        keep = keep_copy(platform)
        words = c.max_layers * c.codebook_size
        codebooks = Signal(data.ArrayLayout(signed(c.weight_width), words), reset_less=True)
        cb_we, cb_we2 = Signal(), Signal()
        cb_addr = Signal(_bits(words - 1))
        # (Copies: Yosys would merge cb_data with PE 0's load register.)
        cb_data = Signal(signed(c.weight_width), name="cb_copy_data", attrs=keep)
        cb_data2 = Signal(signed(c.weight_width), name="cb_copy_data2", attrs=keep)
        cb_sel = Signal(words)
        m.d.sync += [cb_we.eq(self.w_en),
                     cb_addr.eq(self.w_addr[:len(cb_addr)]),
                     cb_data.eq(self.w_data[:c.weight_width]),
                     cb_we2.eq(cb_we), cb_data2.eq(cb_data),
                     cb_sel.eq(Mux(cb_we, Const(1, words) << cb_addr, 0))]
        for word in range(words):
            with m.If(cb_sel[word]):
                m.d.sync += codebooks[word].eq(cb_data2)
        m.d.comb += self.busy.eq(cb_we | cb_we2)
        with m.If(self.select_en):
            m.d.sync += self.active.eq(codebooks.as_value().word_select(
                self.slot, len(self.active.as_value())))
        return m
