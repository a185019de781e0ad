"""Activation scanner of an EIE PE: its non-zero inputs, offered to the non-zero tree."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..synthesis import keep_copy
from .config import EieConfig
from .layouts import bcast_layout

__all__ = ["ActivationScanner"]


class ActivationScanner(wiring.Component):
    """Scans PE ``index``'s input activations (local row ``r`` holds input
    ``j = r*pes + index``) and offers each non-zero as ``(p = ptr_base + j, a)``.

    Every read has a slot in a :attr:`SLOTS`-entry buffer (reads in flight plus non-zeros
    waiting), so the consumer's ``ready`` never reaches the memory: a read is issued only
    while a slot is free.

    Members
    -------
    start : In(1)
        Start a scan; ``in_features`` and ``ptr_base`` are copied then (the copy sits next
        to this PE).
    in_features, ptr_base : In
        The layer's input count and where its pointers start.
    rd_addr, rd_en : Out
        Activation-memory read (a synchronous read port: data the cycle after).
    rd_data : In(signed(act_width))
        The data of the read issued the cycle before.
    active : Out(1)
        Scanning: ``rd_addr`` is this scanner's (the memory's port is shared).
    o : Out(stream.Signature(bcast_layout(config)))
        The non-zeros, in input order.
    done : Out(1)
        No scan running and nothing in flight or waiting.
    """

    #: Activation reads in flight plus non-zeros waiting for the consumer.
    SLOTS = 4

    def __init__(self, config: EieConfig, index: int):
        if not 0 <= index < config.pes:
            raise ValueError(f"ActivationScanner index={index}: use 0 to {config.pes - 1}")
        self._cfg = c = config
        self._index = index
        super().__init__({
            "start": In(1),
            "in_features": In(c.feature_bits),
            "ptr_base": In(_bits(c.ptr_depth - 1)),
            "rd_addr": Out(range(c.act_depth + 1)),
            "rd_en": Out(1),
            "rd_data": In(signed(c.act_width)),
            "active": Out(1),
            "o": Out(stream.Signature(bcast_layout(c))),
            "done": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a read (``rd_en``) to its non-zero on ``o``."""
        return 3

    def elaborate(self, platform):
        c, n, idx = self._cfg, self._cfg.pes, self._index
        m = Module()
        keep = keep_copy(platform)
        in_features = Signal.like(self.in_features, name="layer_copy_in_features", attrs=keep)
        ptr_base = Signal.like(self.ptr_base, name="layer_copy_ptr_base", attrs=keep)
        with m.If(self.start):
            m.d.sync += [in_features.eq(self.in_features), ptr_base.eq(self.ptr_base)]

        scan_active = self.active
        scan_addr = self.rd_addr
        scan_j = Signal(c.feature_bits + _bits(n))
        m.submodules.nonzeros = nonzeros = SyncFIFO(width=len(self.o.payload.as_value()),
                                                    depth=self.SLOTS)
        s_slots = Signal(range(self.SLOTS + 1))
        s_can = Signal(init=1)
        s_issue = Signal()
        s1_valid, s1_j = Signal(), Signal(c.feature_bits)
        s2_valid, s2_a = Signal(), Signal(signed(c.act_width))
        s2_p = Signal(_bits(c.ptr_depth))
        s2_keep = Signal()
        s_more = Signal()
        m.d.comb += [
            s_issue.eq(scan_active & s_more & s_can),
            self.rd_en.eq(s_issue),
            s2_keep.eq(s2_valid & (s2_a != 0)),
            nonzeros.w_en.eq(s2_keep),
            nonzeros.w_data.eq(Cat(s2_p, s2_a)),
            self.o.valid.eq(nonzeros.r_rdy),
            self.o.payload.eq(nonzeros.r_data),
            nonzeros.r_en.eq(self.o.ready),
            self.done.eq(~scan_active & ~s1_valid & ~s2_valid & ~nonzeros.r_rdy),
        ]
        s_next = Signal(range(self.SLOTS + 2))
        m.d.comb += s_next.eq(s_slots + s_issue - (s2_valid & ~s2_keep) -
                              (nonzeros.r_rdy & self.o.ready))
        m.d.sync += [s_slots.eq(s_next), s_can.eq(s_next < self.SLOTS),
                     s1_valid.eq(s_issue), s1_j.eq(scan_j),
                     s2_valid.eq(s1_valid), s2_p.eq(ptr_base + s1_j),
                     s2_a.eq(self.rd_data)]
        # More inputs to scan: registered, both outcomes compared ahead.
        more_now, more_next = Signal(), Signal()
        m.d.comb += [more_now.eq(scan_j < in_features),
                     more_next.eq(scan_j + n < in_features)]
        m.d.sync += s_more.eq(Mux(s_issue, more_next, more_now))
        # (At the start the copy is being taken: the input itself is compared.)
        with m.If(self.start):
            m.d.sync += [scan_active.eq(1), scan_addr.eq(0), scan_j.eq(idx),
                         s_more.eq(idx < self.in_features)]
        with m.Elif(scan_active & ~s_more):
            m.d.sync += scan_active.eq(0)
        with m.Elif(s_issue):
            m.d.sync += [scan_addr.eq(scan_addr + 1), scan_j.eq(scan_j + n)]
        return m
