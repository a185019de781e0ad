"""The systolic GEMM engine: buffers, command check, weight loader, issue controller, mesh,
accumulator, requantizers and the output stage."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..fifo import BufferedFifo
from ..synthesis import keep_copy
from .accumulator import Accumulator
from .activation_lut import ActivationLut
from .buffers import Buffers
from .command_check import CommandCheck
from .config import SystolicConfig
from .issue_controller import IssueController, IssueCounters, row_layout
from .layouts import (
    Counters,
    act_word,
    gemm_command,
    lut_chunk,
    lut_entries,
    param_word,
    result_word,
    weight_word,
)
from .mesh import Mesh
from .requant import Requantizer
from .weight_loader import WeightLoader

__all__ = ["SystolicTop"]


class SystolicTop(wiring.Component):
    """C = requantize(A·B) on a weight-stationary int8 mesh, for any M×K×N that fits.

    The host writes A, B and the per-channel parameters into on-chip buffers through
    addressed streams and sends a GEMM command; the activations may still be streaming in
    (in address order, from 0) while it runs, since a row issues only once its word is
    written (:class:`IssueController`). Buffer layouts (``KT = ceil(K/rows)``,
    ``NT = ceil(N/cols)``, zero padding past K and N):

    * activations: word ``kt*M + m`` = ``A[m, kt*rows : (kt+1)*rows]``;
    * weights: word ``(nt*KT + kt)*rows + r`` = ``B[kt*rows + r, nt*cols : (nt+1)*cols]``;
    * parameters: word ``nt`` = channels ``nt*cols .. nt*cols + cols - 1``.

    Results leave N tile by N tile, one word per GEMM row: ``C[m, nt*cols : (nt+1)*cols]``,
    ``last`` set on the final word. Tiles stream through the mesh back to back: the next
    weight tile shifts into the idle bank while the current one computes, partial sums
    accumulate across K tiles in the accumulator memory, and the last K tile goes straight
    through requantization into an output FIFO whose free space gates issue.

    A command whose M, K or N is zero or beyond the configured maxima sets ``error`` and
    is dropped; the buffer-capacity products are checked by the host
    (:meth:`SystolicConfig.check_gemm`).

    The parts are components of their own (:class:`Buffers`, :class:`CommandCheck`,
    :class:`WeightLoader`, :class:`IssueController`, :class:`Mesh`, :class:`Accumulator`,
    :class:`Requantizer`, :class:`~hw.fifo.BufferedFifo`); the row metadata's delay line,
    the output credit and the registers around the FIFO stay here, where the formal proofs
    (:mod:`sim.formal.systolic`) find them by name.

    Members
    -------
    i_act, i_weight, i_param : In(stream)
        Addressed buffer writes; always ready.
    i_cmd : In(stream(gemm_command))
        Accepted when the engine is idle, once the weights and parameters are loaded;
        the activations need not be.
    o_result : Out(stream(result_word))
    busy, error : Out(1)
    counters : Out(Counters)
        Cleared when a command is accepted.
    """

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"SystolicTop needs a SystolicConfig, not {config!r}")
        self._cfg = config
        super().__init__({
            "i_act": In(stream.Signature(act_word(config))),
            "i_weight": In(stream.Signature(weight_word(config))),
            "i_param": In(stream.Signature(param_word(config))),
            "i_cmd": In(stream.Signature(gemm_command(config))),
            "o_result": Out(stream.Signature(result_word(config))),
            "busy": Out(1),
            "error": Out(1),
            "counters": Out(Counters),
        })

    @property
    def config(self) -> SystolicConfig:
        return self._cfg

    #: Cycles from a command's acceptance to ``error`` (and ``busy``) reflecting it.
    COMMAND_LATENCY = CommandCheck.LATENCY + 1

    #: Cycles from issuing a row to its activations entering the mesh: buffer read,
    #: read-data register, zero-point subtraction.
    INPUT_STAGES = 3

    @property
    def array_latency(self) -> int:
        """Cycles from issuing a row to its partial sums leaving the mesh."""
        return self.array_latency_of(self._cfg)

    @classmethod
    def array_latency_of(cls, config: SystolicConfig) -> int:
        return cls.INPUT_STAGES + Mesh.latency_of(config.rows, config.cols)

    @staticmethod
    def weight_load_cycles_of(config: SystolicConfig) -> int:
        """Fewest cycles between two weight-tile latches (:class:`WeightLoader`)."""
        return WeightLoader.load_cycles_of(config.rows)

    @property
    def weight_load_cycles(self) -> int:
        return self.weight_load_cycles_of(self._cfg)

    @property
    def fifo_depth(self) -> int:
        """Output FIFO depth: room for every last-K-tile row in flight (through the mesh,
        accumulation and requantization) plus a few, so a ready sink never stalls issue."""
        return self.array_latency + Requantizer.LATENCY + 8

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols = cfg.rows, cfg.cols
        D = self.array_latency
        keep = keep_copy(platform)

        m.submodules.buffers = buffers = Buffers(cfg)
        m.submodules.mesh = mesh = Mesh(rows, cols, cfg.acc_width)
        for name in ("i_act", "i_weight", "i_param"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(buffers, name))
        m.submodules.loader = loader = WeightLoader(
            rows=rows, cols=cols, weight_depth=cfg.weight_depth, max_k=cfg.max_k,
            max_n=cfg.max_n)
        m.submodules.issue = issue = IssueController(cfg, array_latency=D)
        m.submodules.accumulator = acc = Accumulator(cols=cols, acc_width=cfg.acc_width,
                                                     acc_depth=cfg.acc_depth)
        m.submodules.out_fifo = out_fifo = BufferedFifo(cols * 8 + 1, self.fifo_depth)
        m.submodules.command = command = CommandCheck(cfg)
        wiring.connect(m, wiring.flipped(self.i_cmd), command.i_cmd)
        cmd, start = command.cmd, command.start
        running = Signal()
        result_valid = Signal()
        result_data = Signal(cols * 8 + 1, reset_less=True)
        m.d.comb += [command.running.eq(running), self.error.eq(command.error),
                     self.busy.eq(running | command.accepting | out_fifo.r_rdy | result_valid)]

        # Row metadata, delayed alongside the data: meta[s] belongs to the row issued s
        # cycles ago.
        rq_latency = Requantizer.LATENCY
        n_stages = D + 4 + rq_latency
        meta = [Signal(row_layout(cfg), name=f"meta_{s}") for s in range(n_stages)]
        for s in range(1, n_stages):
            m.d.sync += meta[s].eq(meta[s - 1])
        in_flight = Signal()
        m.d.comb += in_flight.eq(Cat(meta[s].valid for s in range(1, n_stages)).any())
        out_credit = Signal(range(self.fifo_depth + n_stages + 2))

        cycles = Signal.like(self.counters.cycles)
        with m.If(start):
            m.d.sync += [running.eq(1), cycles.eq(0)]
        with m.If(running | out_fifo.r_rdy | result_valid):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(issue.done & ~in_flight & running):
            m.d.sync += running.eq(0)
        m.d.comb += [self.counters.cycles.eq(cycles)]
        m.d.comb += [self.counters[f].eq(issue.counters[f]) for f in IssueCounters.members]

        # ---- weight loader and issue controller ----
        # The loader's read data and its shift and latch commands are registered on their
        # way to the mesh, and the mesh registers them again per column
        # (Mesh.CONTROL_LATENCY): the last shift and the latch reach the PEs two cycles
        # late, which the loader's states (and the issue of the latched tile's first row,
        # INPUT_STAGES + 1 cycles before it needs the weights) allow for.
        m.d.comb += [
            loader.start.eq(start), loader.run.eq(running), loader.k.eq(cmd.k),
            loader.n.eq(cmd.n), loader.tiles_full.eq(issue.tiles_full),
            loader.bank_idle.eq(issue.bank_idle), buffers.w_addr.eq(loader.w_addr),
            loader.w_data.eq(buffers.w_data),
            mesh.shift.eq(loader.shift), mesh.w_in.eq(loader.w_out),
            mesh.latch.eq(loader.latch), mesh.latch_bank.eq(loader.latch_bank),
        ]
        # Output space is judged from counts up to two cycles old with two words to spare
        # (rows in flight plus words in the FIFO grow by at most one a cycle), so the check
        # is off the issue path.
        fifo_level = Signal.like(out_fifo.w_level)
        m.d.sync += fifo_level.eq(out_fifo.w_level)
        m.d.comb += [
            issue.check.eq(command.checking), issue.start.eq(start), issue.m.eq(cmd.m),
            issue.k.eq(cmd.k), issue.n.eq(cmd.n), issue.latched.eq(loader.latched),
            issue.room.eq(out_credit + fifo_level < self.fifo_depth - 2),
            issue.act_write.eq(self.i_act.valid), issue.act_write_addr.eq(self.i_act.payload.addr),
            buffers.act_addr.eq(issue.act_addr), meta[0].eq(issue.row),
        ]

        # ---- read data register, input zero point, then the mesh ----
        act_q = Signal.like(buffers.act_data, reset_less=True)
        m.d.sync += act_q.eq(buffers.act_data)
        a_in = Signal(data.ArrayLayout(signed(9), rows), reset_less=True)
        for r in range(rows):
            m.d.sync += a_in[r].eq(Mux(meta[2].valid, act_q[r] - cmd.input_zero_point, 0))
        m.d.comb += [mesh.a.eq(a_in), mesh.bank.eq(meta[self.INPUT_STAGES].bank)]

        # ---- accumulate across K tiles (stage D), read the N tile's parameters ----
        first_tap = D - Accumulator.PSUM_TAP
        for j in range(Accumulator.TAPS):
            for name in ("valid", "first", "last", "m"):
                m.d.comb += acc.taps[j][name].eq(meta[first_tap + j][name])
        m.d.comb += acc.psum.eq(mesh.psum)
        for c in range(cols):
            p_addr = Signal.like(meta[0].nt, name=f"p_addr_copy_{c}", attrs=keep)
            m.d.sync += p_addr.eq(meta[D - 2].nt)           # = meta[D - 1].nt
            m.d.comb += buffers.p_addr[c].eq(p_addr)
        params_r = Signal.like(buffers.p_data, reset_less=True)
        m.d.sync += params_r.eq(buffers.p_data)

        # ---- requantize the last K tile (stage D + 1 onwards) ----
        # The command's output parameters (steady through a GEMM) reach each column's
        # requantizer through a register of its own, placed near it.
        out_params = [Signal(data.StructLayout({"zero_point": signed(8), "act_min": signed(8),
                                                "act_max": signed(8)}),
                             name=f"out_params_copy_{c}", reset_less=True, attrs=keep)
                      for c in range(cols)]
        outs = []
        for c in range(cols):
            m.d.sync += [out_params[c].zero_point.eq(cmd.output_zero_point),
                         out_params[c].act_min.eq(cmd.act_min),
                         out_params[c].act_max.eq(cmd.act_max)]
            m.submodules[f"requant_{c}"] = rq = Requantizer(cfg.rounding)
            total = Signal(signed(34), name=f"total_{c}")
            m.d.comb += [
                total.eq(acc.sums[c] + params_r[c].bias),
                rq.valid.eq(meta[D + 1].valid & meta[D + 1].last),
                rq.x.eq(total[:32]),
                rq.multiplier.eq(params_r[c].multiplier), rq.shift.eq(params_r[c].shift),
                rq.zero_point.eq(out_params[c].zero_point),
                rq.act_min.eq(out_params[c].act_min), rq.act_max.eq(out_params[c].act_max),
            ]
            outs.append(rq)
        # The requantizers' outputs (one per column, spread over the array's width) meet in
        # two registers before the FIFO (one hop across the array's width is too long a
        # route): the activation table's, which a command without ``lut`` passes through
        # unchanged.
        m.submodules.lut = lut = ActivationLut(cols=cols, entries=lut_entries(cfg),
                                                 tables=cfg.act_lut)
        chunk = lut_chunk(cfg)(self.i_param.payload.data.as_value()[:lut_chunk(cfg).size])
        lut_enable = Signal(name="lut_enable", reset_less=True)
        m.d.sync += lut_enable.eq(cmd.lut)
        m.d.comb += [lut.w_en.eq(self.i_param.valid & self.i_param.payload.lut),
                     lut.w_chunk.eq(chunk.chunk), lut.w_data.eq(chunk.entries),
                     lut.enable.eq(lut_enable)]
        m.d.comb += [lut.i_y[c].eq(rq.y) for c, rq in enumerate(outs)]
        out_stage = D + 1 + rq_latency
        write, write_r = Signal(), Signal()
        final, final_r = Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [write_r.eq(outs[0].o_valid), write.eq(write_r),
                     final_r.eq(meta[out_stage].final), final.eq(final_r)]
        m.d.comb += [out_fifo.w_en.eq(write), out_fifo.w_data.eq(Cat(lut.o_y, final))]
        issued_last = meta[0].valid & meta[0].last
        with m.If(issued_last & ~write):
            m.d.sync += out_credit.eq(out_credit + 1)
        with m.Elif(~issued_last & write):
            m.d.sync += out_credit.eq(out_credit - 1)

        # ---- results, through a register (the FIFO's data comes out of a block RAM) ----
        with m.If(~result_valid | self.o_result.ready):
            m.d.sync += [result_valid.eq(out_fifo.r_rdy), result_data.eq(out_fifo.r_data)]
        m.d.comb += [
            self.o_result.valid.eq(result_valid),
            self.o_result.payload.eq(result_data),
            out_fifo.r_en.eq(~result_valid | self.o_result.ready),
        ]
        return m
