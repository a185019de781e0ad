"""Write-back of an EIE PE: ``y = relu(sat(acc + bias))`` into the activation memory."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..synthesis import keep_copy
from .config import EieConfig

__all__ = ["WriteBack"]


class WriteBack(wiring.Component):
    """Writes one of PE ``index``'s rows per ``wb_en``: ``y = relu(sat(acc + bias))``,
    saturated to ``act_width`` bits, ReLU when ``relu``, the bias added when
    ``use_bias``; a row at or past ``out_features`` (global row ``wb_row + index``) is
    written as 0. The row's accumulator is cleared behind it (``zero_*``).

    Members
    -------
    start : In(1)
        The layer starts: its parameters are copied then (the copy sits next to this PE).
    out_features, bias_base, use_bias, relu : In
    wb_en, wb_addr, wb_row : In
        Write back local row ``wb_addr`` (the top level's sequencer).
    acc_data : In(signed(acc_width))
        The accumulator of row ``wb_addr``, 3 cycles after ``wb_en`` (see
        :attr:`~hw.eie.accumulator.Accumulator.read_latency`).
    bias_addr : Out, bias_data : In(signed(act_width))
        The bias memory's read (synchronous: data the cycle after).
    zero_en, zero_addr : Out
        Clear the row's accumulator (2 cycles after ``wb_en``, after its read).
    act_en, act_addr, act_data : Out
        The activation write, :attr:`latency` cycles after ``wb_en``.
    """

    def __init__(self, config: EieConfig, index: int):
        if not 0 <= index < config.pes:
            raise ValueError(f"WriteBack index={index}: use 0 to {config.pes - 1}")
        self._cfg = c = config
        self._index = index
        act_addr = _bits(c.act_depth - 1)
        super().__init__({
            "start": In(1),
            "out_features": In(c.feature_bits),
            "bias_base": In(_bits(c.bias_depth - 1)),
            "use_bias": In(1),
            "relu": In(1),
            "wb_en": In(1),
            "wb_addr": In(act_addr),
            "wb_row": In(c.feature_bits + 1),
            "acc_data": In(signed(c.acc_width)),
            "bias_addr": Out(_bits(c.bias_depth - 1)),
            "bias_data": In(signed(c.act_width)),
            "zero_en": Out(1),
            "zero_addr": Out(act_addr),
            "act_en": Out(1),
            "act_addr": Out(act_addr),
            "act_data": Out(signed(c.act_width)),
        })

    #: Cycles from ``wb_en`` to the activation write of that row.
    LATENCY = 5

    @property
    def latency(self) -> int:
        """Cycles from ``wb_en`` to the activation write of that row."""
        return self.LATENCY

    def elaborate(self, platform):
        c, idx = self._cfg, self._index
        m = Module()
        keep = keep_copy(platform)
        layer = {name: Signal.like(getattr(self, name), name=f"layer_copy_{name}", attrs=keep)
                 for name in ("out_features", "bias_base", "use_bias", "relu")}
        with m.If(self.start):
            m.d.sync += [sig.eq(getattr(self, name)) for name, sig in layer.items()]

        # The controls, registered here: the sequencer drives every PE.
        x_valid = [Signal(name=f"wb_copy_valid_{k}", attrs=keep) for k in range(4)]
        x_addr = [Signal.like(self.wb_addr, name=f"wb_copy_addr_{k}", attrs=keep)
                  for k in range(4)]
        x_keep = [Signal(name="wb_keep_0")] + [Signal(name=f"wb_copy_keep_{k}", attrs=keep)
                                               for k in range(1, 4)]
        wb_row = Signal.like(self.wb_row, name="wb_copy_row", attrs=keep)
        m.d.sync += [x_valid[0].eq(self.wb_en), x_addr[0].eq(self.wb_addr),
                     wb_row.eq(self.wb_row)]
        m.d.comb += x_keep[0].eq(wb_row + idx < layer["out_features"])
        for k in range(3):
            m.d.sync += [x_valid[k + 1].eq(x_valid[k]), x_addr[k + 1].eq(x_addr[k]),
                         x_keep[k + 1].eq(x_keep[k])]
        with m.If(x_valid[0]):
            m.d.comb += self.bias_addr.eq(layer["bias_base"] + x_addr[0])
        m.d.comb += [self.zero_en.eq(x_valid[1]), self.zero_addr.eq(x_addr[1])]
        bias_q = Signal(signed(c.act_width))
        m.d.sync += bias_q.eq(self.bias_data)

        total = Signal(signed(c.acc_width + 1))
        m.d.sync += total.eq(self.acc_data + Mux(layer["use_bias"], bias_q, 0))
        hi, lo = (1 << (c.act_width - 1)) - 1, -(1 << (c.act_width - 1))
        y = Signal(signed(c.act_width))
        with m.If(~x_keep[3] | (layer["relu"] & (total < 0))):
            m.d.comb += y.eq(0)
        with m.Elif(total > hi):
            m.d.comb += y.eq(hi)
        with m.Elif(total < lo):
            m.d.comb += y.eq(lo)
        with m.Else():
            m.d.comb += y.eq(total)
        # The write is registered: a cycle old when it lands.
        m.d.sync += [self.act_en.eq(x_valid[3]), self.act_addr.eq(x_addr[3]),
                     self.act_data.eq(y)]
        return m
