"""The EIE engine's top level: PEs, non-zero tree, layer sequencer, load and result streams."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from .codebook_store import CodebookStore
from .config import EieConfig
from .layouts import Mem, bcast_layout, cmd_layout, counter_layout, load_layout, result_layout
from .lnzd import NonZeroTree
from .pe import ProcessingElement
from .result_buffer import ResultBuffer

__all__ = ["EieTop"]

#: The command's fields every PE takes (and copies at the start of a layer).
LAYER_FIELDS = ("in_features", "out_features", "ptr_base", "bias_base", "use_bias", "relu",
                "queue_limit")


class EieTop(wiring.Component):
    """An EIE engine of ``config.pes`` PEs: b = ReLU(W a + bias), layer after layer on chip.

    Members
    -------
    i_load: In(stream.Signature(load_layout(config)))
        Image loading while idle: each beat writes every PE's lane into memory ``mem`` at
        ``addr`` (see :class:`hw.eie.layouts.Mem`), so a memory of ``D`` words per PE loads
        in ``D`` beats whatever the PE count.
    i_cmd: In(stream.Signature(cmd_layout(config)))
        One command per layer; the outputs of a layer are the inputs of the next.
    o_result: Out(stream.Signature(result_layout(config)))
        After a command with ``emit``: ``ceil(out_features / pes)`` beats, beat ``r``
        holding rows ``r*pes .. r*pes + pes - 1``.
    o_busy: Out(1)
        Not idle (clearing after reset, running a layer or emitting).
    o_counters: Out(counter_layout(config))
        Performance counters.

    After reset the engine clears its accumulators (``act_depth`` cycles) before it
    accepts anything; memories keep their contents across a reset.

    Latency of a layer: scan, broadcast and MAC until every PE is idle (seen one cycle
    later, when row 0's write-back starts), then ``ceil(out_features / pes) - 1`` more
    write-back cycles and ``writeback_latency`` more for the last writes to land.
    """

    def __init__(self, config: EieConfig):
        if not isinstance(config, EieConfig):
            raise TypeError(f"EieTop needs an EieConfig, got {config!r}")
        self._cfg = config
        super().__init__({
            "i_load": In(stream.Signature(load_layout(config))),
            "i_cmd": In(stream.Signature(cmd_layout(config))),
            "o_result": Out(stream.Signature(result_layout(config))),
            "o_busy": Out(1),
            "o_counters": Out(counter_layout(config)),
        })

    @property
    def config(self) -> EieConfig:
        return self._cfg

    def elaborate(self, platform):
        c = self._cfg
        n = c.pes
        m = Module()
        pes = [ProcessingElement(c, k) for k in range(n)]
        for k, pe in enumerate(pes):
            m.submodules[f"pe_{k}"] = pe
        m.submodules.tree = tree = NonZeroTree(bcast_layout(c), n)

        # Codebooks (one slot per layer) and the running layer's codebook.
        m.submodules.codebooks = codebooks = CodebookStore(c)
        cmd = Signal(cmd_layout(c))
        ld = self.i_load.payload
        load_now = Signal()
        m.d.comb += [load_now.eq(self.i_load.valid & self.i_load.ready),
                     codebooks.w_en.eq(load_now & (ld.mem == Mem.CODEBOOK)),
                     codebooks.w_addr.eq(ld.addr), codebooks.w_data.eq(ld.data[0]),
                     codebooks.slot.eq(self.i_cmd.payload.slot)]

        # Results: the PEs' activation read data holds a beat (e_valid) until the result
        # buffer takes it, so the read enable never waits on the consumer's ready.
        m.submodules.results = results = ResultBuffer(c)
        wiring.connect(m, results.o, wiring.flipped(self.o_result))
        e_valid = Signal()
        more = Signal()                 # rows left to emit (registered)
        take = Signal()
        m.d.comb += [results.i.valid.eq(e_valid), take.eq(e_valid & results.i.ready)]

        # Broadcast: the tree's root goes to every queue when all have room.
        all_ready = Signal()
        push = Signal()
        m.d.comb += all_ready.eq(_all([pe.q_ready for pe in pes]))
        m.d.comb += [push.eq(tree.o.valid & all_ready), tree.o.ready.eq(all_ready)]
        for k, pe in enumerate(pes):
            m.d.comb += [
                pe.load_en.eq(load_now), pe.load_mem.eq(ld.mem), pe.load_addr.eq(ld.addr),
                pe.load_data.eq(ld.data[k]),
                pe.q_push.eq(push), pe.q_data.eq(tree.o.payload),
                tree.i[k].valid.eq(pe.nz_valid), tree.i[k].payload.eq(pe.nz_data),
                pe.nz_ready.eq(tree.i[k].ready),
                pe.codebook.eq(codebooks.active),
                *[getattr(pe, name).eq(getattr(cmd, name)) for name in LAYER_FIELDS],
                results.i.payload[k].eq(pe.emit_data),
                self.o_counters.busy[k].eq(pe.busy_count),
                self.o_counters.bubble[k].eq(pe.bubble_count),
                self.o_counters.padding[k].eq(pe.padding_count),
            ]

        def to_pes(**signals):
            for pe in pes:
                m.d.comb += [getattr(pe, name).eq(value) for name, value in signals.items()]

        act_addr = _bits(c.act_depth - 1)
        counter = Signal(range(max(c.act_depth, pes[0].writeback_latency) + 1))
        row_base = Signal(c.feature_bits + 1 + _bits(n))
        row_next = Signal.like(row_base)         # row_base + pes, kept ahead
        # Registered: the PEs and the tree were idle last cycle. Not looked at in the
        # first cycle of a layer, when it still shows the cycle before the scan started.
        compute_done = Signal()
        # Two cycles into COMPUTE: the PEs start their scan a cycle after START, and
        # compute_done shows the cycle before.
        armed0, armed = Signal(), Signal()
        idle_q = Signal()               # in IDLE (a register: it enables the copies below)
        computing = Signal()            # in COMPUTE (a register: it drives every PE)
        to_pes(compute=computing)
        # The command and its codebook are copied every cycle while idle (nothing reads
        # them then), so the copy does not wait on the handshake.
        m.d.comb += codebooks.select_en.eq(idle_q)
        with m.If(idle_q):
            m.d.sync += cmd.eq(self.i_cmd.payload)
        m.d.sync += compute_done.eq(tree.empty & _all([pe.idle & pe.scan_done for pe in pes]))
        counting = Signal()
        with m.If(counting):
            m.d.sync += self.o_counters.cycles.eq(self.o_counters.cycles + 1)
        with m.If(push):
            m.d.sync += self.o_counters.broadcasts.eq(self.o_counters.broadcasts + 1)
        with m.If(tree.o.valid & ~all_ready):
            m.d.sync += self.o_counters.stall_cycles.eq(self.o_counters.stall_cycles + 1)

        with m.FSM(name="sequencer"):
            with m.State("CLEAR"):
                m.d.comb += self.o_busy.eq(1)
                to_pes(clear_en=1, clear_addr=counter[:act_addr])
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == c.act_depth - 1):
                    m.d.sync += idle_q.eq(1)
                    m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += [self.i_load.ready.eq(1),
                             self.i_cmd.ready.eq(~self.i_load.valid & ~codebooks.busy)]
                with m.If(self.i_cmd.valid & ~self.i_load.valid & ~codebooks.busy):
                    m.d.comb += counting.eq(1)
                    m.d.sync += idle_q.eq(0)
                    m.next = "START"
            with m.State("START"):
                # The PEs copy the layer's parameters and start scanning.
                m.d.comb += [self.o_busy.eq(1), counting.eq(1)]
                to_pes(scan_start=1)
                m.d.sync += [armed0.eq(0), armed.eq(0), computing.eq(1)]
                m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += [self.o_busy.eq(1), counting.eq(1)]
                m.d.sync += [armed0.eq(1), armed.eq(armed0)]
                with m.If(armed & compute_done):
                    m.d.sync += computing.eq(0)
                    # Row 0's write-back starts now (a layer has at least one output).
                    to_pes(wb_en=1, wb_addr=0, wb_row=0)
                    m.d.sync += [counter.eq(1), row_base.eq(n), row_next.eq(2 * n)]
                    with m.If(cmd.out_features <= n):
                        m.d.sync += counter.eq(0)
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "WRITEBACK"
            with m.State("WRITEBACK"):
                m.d.comb += [self.o_busy.eq(1), counting.eq(1)]
                to_pes(wb_en=1, wb_addr=counter[:act_addr], wb_row=row_base)
                m.d.sync += [counter.eq(counter + 1), row_base.eq(row_next),
                             row_next.eq(row_next + n)]
                with m.If(row_next >= cmd.out_features):
                    m.d.sync += counter.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # The last rows' activation writes land (writeback_latency after wb_en).
                m.d.comb += [self.o_busy.eq(1), counting.eq(1)]
                m.d.sync += [counter.eq(counter + 1), row_base.eq(0),
                             more.eq(cmd.out_features != 0)]
                with m.If(counter >= max(0, pes[0].writeback_latency - 1)):
                    m.d.sync += counter.eq(0)
                    with m.If(cmd.emit):
                        m.next = "EMIT"
                    with m.Else():
                        m.d.sync += idle_q.eq(1)
                        m.next = "IDLE"
            with m.State("EMIT"):
                # The activation memory's read data is a beat; a read is issued whenever
                # the beat held is taken (or there is none). Busy until the last beat is
                # taken from the port.
                m.d.comb += self.o_busy.eq(1)
                with m.If(~e_valid | take):
                    with m.If(more):
                        to_pes(emit_en=1)
                        m.d.sync += [e_valid.eq(1), row_base.eq(row_base + n),
                                     more.eq(row_base + n < cmd.out_features)]
                    with m.Else():
                        m.d.sync += e_valid.eq(0)
                with m.If(~more & ~e_valid & results.empty):
                    m.d.sync += idle_q.eq(1)
                    m.next = "IDLE"
        return m


def _all(signals):
    result = signals[0]
    for s in signals[1:]:
        result = result & s
    return result
