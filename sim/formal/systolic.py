"""Proof wrappers for the systolic engine: its result stream, its output FIFO, the gate that
holds a row until its activation word is written, and a GEMM that runs to its ``last``
result word."""

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Fragment, Module, Mux, Signal

from hw.systolic import SystolicConfig
from hw.systolic.issue_controller import IssueController
from hw.systolic.requant import Requantizer
from hw.systolic.top import SystolicTop

from .contracts import (
    after_reset,
    field,
    fifo_invariants,
    free,
    signal,
    stream_rule,
)

__all__ = ["TINY", "GATE", "SystolicResultStream", "SystolicOutputFifo", "SystolicGemmCover",
           "SystolicActivationGate"]

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
    cycles old, two words to spare) leaves room for every row in flight.

    Proved by k-induction with two invariants, themselves proved: ``out_credit`` equals the
    last-K-tile rows between issue and the FIFO (the metadata stages up to the
    requantizers, the requantizer's valid pipeline, the two registers after it), and those
    rows plus the FIFO's level never exceed its depth.
    """

    def __init__(self, config: SystolicConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, fragment = _engine(m, self._cfg)
        out_fifo = fifo_invariants(m, fragment, "out_fifo")
        rq = Requantizer.LATENCY
        d = top.array_latency
        rows = [field(signal(fragment, f"meta_{s}"), "valid") &
                field(signal(fragment, f"meta_{s}"), "last") for s in range(1, d + 2)]
        rows += [signal(fragment, f"valid_{i}", "requant_0") for i in range(rq)]
        # (the register after ``write_r`` drives the FIFO's write enable)
        rows += [signal(fragment, "write_r"), out_fifo.w_en]
        in_flight = Signal(range(len(rows) + 1))
        m.d.comb += in_flight.eq(sum(rows, start=0))
        credit = signal(fragment, "out_credit")
        m.d.comb += [
            Assert(credit == in_flight, "out_credit differs from the rows in flight"),
            Assert(in_flight + out_fifo.w_level <= top.fifo_depth,
                   "rows in flight and FIFO words exceed the FIFO depth"),
            Assert(~(out_fifo.w_en & ~out_fifo.w_rdy), "output FIFO written while full"),
        ]
        return m


class SystolicGemmCover(Elaboratable):
    """Cover: a GEMM command is accepted and its ``last`` result word is taken.

    The host sends one shape (``m``, ``k``, ``n`` = 1, 2, 1: two K tiles to accumulate) to a
    sink that is always ready: the witness is one run, and the solver need not try every
    command and stall.
    """

    def __init__(self, config: SystolicConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, _ = _engine(m, self._cfg)
        cmd = top.i_cmd.payload
        m.d.comb += [Assume((cmd.m == 1) & (cmd.k == 2) & (cmd.n == 1)),
                     Assume(top.o_result.ready)]
        ok = after_reset(m)
        accepted = Signal()
        with m.If(top.i_cmd.valid & top.i_cmd.ready):
            m.d.sync += accepted.eq(1)
        m.d.comb += Cover(ok & accepted & top.o_result.valid & top.o_result.ready &
                          top.o_result.payload.last, "GEMM delivered its last result word")
        return m


#: Eight activation words: shapes with several K tiles, several rows and a ragged pass.
GATE = SystolicConfig(rows=1, cols=1, acc_width=20, act_depth=8, weight_depth=8, acc_depth=4,
                      param_depth=4)


class SystolicActivationGate(Elaboratable):
    """No row issues before its activation word is written.

    The issue controller alone, with free tile latches, output room and command timing
    (a start only the cycle after a check at the earliest and only while no GEMM runs),
    one shape per trace that fits the buffer, and a host that writes activation words in
    address order from 0 after each GEMM's final row (a write in that very cycle begins
    the next GEMM's load). The wrapper counts the words written since then; every issued
    row's address is below that count. For the induction, the engine's own record of the
    count (the last address and whether any was written) is asserted equal to it, and the
    copies the issue decision is made from equal their originals.
    """

    def __init__(self, config: SystolicConfig = GATE):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        dut = IssueController(cfg, array_latency=3)
        fragment = Fragment.get(dut, None)
        m.submodules.dut = fragment
        free(m, dut.check, dut.start, dut.latched, dut.room, dut.act_write, dut.act_write_addr)
        for name, most in (("m", cfg.max_m), ("k", cfg.max_k), ("n", cfg.max_n)):
            value = getattr(dut, name)
            m.d.comb += [value.eq(AnyConst(len(value))), Assume((value >= 1) & (value <= most))]
        m.d.comb += Assume(-(-dut.k // cfg.rows) * dut.m <= cfg.act_depth)
        checked = Signal(name="fv_checked")
        m.d.sync += checked.eq(dut.check)
        pending = signal(fragment, "pending")
        m.d.comb += Assume(~dut.start | (checked & ~pending & ~dut.check))

        final = dut.row.valid & dut.row.final
        written = Signal(range(cfg.act_depth + 1), name="fv_written")
        addr = Mux(final, 0, written)
        m.d.comb += Assume(~dut.act_write | ((dut.act_write_addr == addr) &
                                             (addr < cfg.act_depth)))
        with m.If(dut.act_write):
            m.d.sync += written.eq(addr + 1)
        with m.Elif(final):
            m.d.sync += written.eq(0)
        last, any_ = signal(fragment, "act_last"), signal(fragment, "act_any")
        # The issue decision is made twice, from copies of its inputs: they agree (the
        # induction would otherwise start from copies that disagree).
        for name in ("pending", "tile_ready", "last_k", "credit", "act_ok"):
            copy = f"{name}_copy_i"
            m.d.comb += Assert(signal(fragment, name) == signal(fragment, copy),
                               f"{copy} differs from {name}")
        m.d.comb += [
            Assert(Mux(any_, last + 1, 0) == written,
                   "the engine's activation count differs from the words written"),
            Assert(~dut.row.valid | (dut.act_addr < written),
                   "a row issued before its activation word was written"),
        ]
        return m
