"""Result buffer of the EIE engine: a 2-entry skid buffer in front of ``o_result``."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import EieConfig
from .layouts import result_layout

__all__ = ["ResultBuffer"]


class ResultBuffer(wiring.Component):
    """Holds up to 2 result beats, so the PEs' activation reads (whose data is a beat for
    one cycle only while ``i.ready``) never wait on the consumer's ``ready``.

    ``i.ready`` is a register's output (the skid entry is free); ``o`` is registered.

    Members
    -------
    i : In(stream.Signature(result_layout(config)))
    o : Out(stream.Signature(result_layout(config)))
    empty : Out(1)
        No beat held, none on ``o`` that is not taken this cycle.
    """

    def __init__(self, config: EieConfig):
        self._cfg = config
        super().__init__({
            "i": In(stream.Signature(result_layout(config))),
            "o": Out(stream.Signature(result_layout(config))),
            "empty": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a beat on ``i`` to it on ``o`` (``o`` ready)."""
        return 1

    def elaborate(self, platform):
        m = Module()
        out = self.o
        skid_valid = Signal()
        skid_data = Signal.like(self.i.payload)
        take = Signal()
        m.d.comb += [self.i.ready.eq(~skid_valid), take.eq(self.i.valid & ~skid_valid),
                     self.empty.eq(~skid_valid & (~out.valid | out.ready))]
        with m.If(~out.valid | out.ready):
            with m.If(skid_valid):
                m.d.sync += [out.payload.eq(skid_data), out.valid.eq(1), skid_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [out.payload.eq(self.i.payload), out.valid.eq(1)]
            with m.Else():
                m.d.sync += out.valid.eq(0)
        with m.Elif(take):
            m.d.sync += [skid_data.eq(self.i.payload), skid_valid.eq(1)]
        return m
