"""Proof wrappers for the systolic engine: its result stream, its output FIFO, and a GEMM
that runs to its ``last`` result word."""

from amaranth.hdl import Assert, Cover, Elaboratable, Fragment, Module, Signal

from hw.systolic import SystolicConfig
from hw.systolic.top import SystolicTop

from .contracts import after_reset, find, free, stream_rule

__all__ = ["TINY", "SystolicResultStream", "SystolicOutputFifo", "SystolicGemmCover"]

#: A 1x1 array with 2-word buffers: two K tiles or two N tiles, every pipeline stage.
TINY = SystolicConfig(rows=1, cols=1, acc_width=17, act_depth=2, weight_depth=2, acc_depth=2,
                      param_depth=2)


def _engine(m: Module, config: SystolicConfig) -> tuple[SystolicTop, Fragment]:
    """The engine with free inputs that keep the stream rule, as its host would."""
    top = SystolicTop(config)
    fragment = Fragment.get(top, None)
    m.submodules.dut = fragment
    free(m, top.o_result.ready)
    for name in ("i_act", "i_weight", "i_param", "i_cmd"):
        port = getattr(top, name)
        free(m, port.valid, port.payload)
        stream_rule(m, port, name=name, assume=True)
    return top, fragment


class SystolicResultStream(Elaboratable):
    """``o_result`` keeps the stream rule (its output register holds a stalled word)."""

    def __init__(self, config: SystolicConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, _ = _engine(m, self._cfg)
        stream_rule(m, top.o_result, name="o_result")
        return m


class SystolicOutputFifo(Elaboratable):
    """The output FIFO is never written while full: issue's credit check (counts up to two
    cycles old, two words to spare) leaves room for every row in flight."""

    def __init__(self, config: SystolicConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, fragment = _engine(m, self._cfg)
        out_fifo = find(fragment, "out_fifo")
        m.d.comb += [Assert(~(out_fifo.w_en & ~out_fifo.w_rdy), "output FIFO written while full"),
                     Assert(out_fifo.w_level <= top.fifo_depth, "output FIFO level past depth")]
        return m


class SystolicGemmCover(Elaboratable):
    """Cover: a GEMM command is accepted and its ``last`` result word is taken."""

    def __init__(self, config: SystolicConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, _ = _engine(m, self._cfg)
        ok = after_reset(m)
        accepted = Signal()
        with m.If(ok & top.i_cmd.valid & top.i_cmd.ready):
            m.d.sync += accepted.eq(1)
        m.d.comb += Cover(ok & accepted & top.o_result.valid & top.o_result.ready &
                          top.o_result.payload.last, "GEMM delivered its last result word")
        return m
