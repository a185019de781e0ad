"""The systolic GEMM engine: buffers, weight loader, issue controller, mesh, output stage."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..runtime_memory import runtime_memory
from .config import SystolicConfig
from .layouts import (
    ChannelParams,
    Counters,
    act_word,
    gemm_command,
    param_word,
    result_word,
    weight_word,
)
from .mesh import Mesh
from .requant import Requantizer

__all__ = ["SystolicTop"]


class SystolicTop(wiring.Component):
    """C = requantize(A·B) on a weight-stationary int8 mesh, for any M×K×N that fits.

    The host writes A, B and the per-channel parameters into on-chip buffers through
    addressed streams, then sends a GEMM command. Buffer layouts (``KT = ceil(K/rows)``,
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

    Members
    -------
    i_act, i_weight, i_param : In(stream)
        Addressed buffer writes; always ready.
    i_cmd : In(stream(gemm_command))
        Accepted when the engine is idle.
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

    @property
    def array_latency(self) -> int:
        """Cycles from issuing a row to its partial sums leaving the mesh."""
        return 2 + Mesh.latency_of(self._cfg.rows, self._cfg.cols)

    @property
    def fifo_depth(self) -> int:
        return self.array_latency + 12

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols = cfg.rows, cfg.cols
        D = self.array_latency

        # Buffers, written by the addressed load streams.
        act_mem = runtime_memory(data.ArrayLayout(signed(8), rows), cfg.act_depth)
        w_mem = runtime_memory(data.ArrayLayout(signed(8), cols), cfg.weight_depth)
        p_mem = runtime_memory(data.ArrayLayout(ChannelParams, cols), cfg.param_depth)
        acc_mem = runtime_memory(data.ArrayLayout(signed(cfg.acc_width), cols), cfg.acc_depth)
        m.submodules.act_mem, m.submodules.w_mem = act_mem, w_mem
        m.submodules.p_mem, m.submodules.acc_mem = p_mem, acc_mem
        for mem, port in ((act_mem, self.i_act), (w_mem, self.i_weight), (p_mem, self.i_param)):
            wp = mem.write_port()
            m.d.comb += [port.ready.eq(1), wp.addr.eq(port.payload.addr),
                         wp.data.eq(port.payload.data), wp.en.eq(port.valid)]
        act_rd, w_rd, p_rd = act_mem.read_port(), w_mem.read_port(), p_mem.read_port()
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port(transparent_for=(acc_wr,))

        m.submodules.mesh = mesh = Mesh(rows, cols, cfg.acc_width)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=cols * 8 + 1,
                                                                 depth=self.fifo_depth)

        # Command registers.
        cmd = Signal(gemm_command(cfg))
        running = Signal()
        m.d.comb += [self.i_cmd.ready.eq(~running),
                     self.busy.eq(running | out_fifo.r_rdy)]

        # Row metadata, delayed alongside the data: meta[s] belongs to the row issued s
        # cycles ago.
        tile_bits = (cfg.weight_depth // rows + 1).bit_length()
        meta_layout = data.StructLayout({
            "valid": 1, "bank": 1, "first": 1, "last": 1, "final": 1,
            "m": unsigned(max(1, (cfg.acc_depth - 1).bit_length())),
            "nt": unsigned(max(1, (cfg.param_depth - 1).bit_length())),
        })
        rq_latency = Requantizer.LATENCY
        n_stages = D + 2 + rq_latency
        meta = [Signal(meta_layout, name=f"meta_{s}") for s in range(n_stages)]
        for s in range(1, n_stages):
            m.d.sync += meta[s].eq(meta[s - 1])
        in_flight = Signal()
        m.d.comb += in_flight.eq(Cat(meta[s].valid for s in range(1, n_stages)).any())

        # Issue state.
        i_m = Signal.like(cmd.m)
        i_k0 = Signal(cfg.max_k.bit_length() + 1)
        i_n0 = Signal(cfg.max_n.bit_length() + 1)
        i_nt = Signal.like(meta[0].nt)
        a_addr = Signal(range(cfg.act_depth))
        issue_done = Signal()
        tiles_issued = Signal(tile_bits)
        tiles_latched = Signal(tile_bits)
        bank_busy = [Signal(range(D + 3), name=f"bank_busy_{b}") for b in range(2)]
        out_credit = Signal(range(self.fifo_depth + n_stages + 2))

        # Loader state.
        l_state = Signal(2)  # 0 idle, 1 reading, 2 last shift, 3 chain full
        l_cnt = Signal(range(rows + 1))
        l_base = Signal(range(cfg.weight_depth + rows))
        l_k0 = Signal.like(i_k0)
        l_n0 = Signal.like(i_n0)
        l_done = Signal()
        shift_pending = Signal()

        # ---- command accept ----
        with m.If(self.i_cmd.valid & ~running):
            p = self.i_cmd.payload
            ok = ((p.m != 0) & (p.m <= cfg.max_m) & (p.k != 0) & (p.k <= cfg.max_k) &
                  (p.n != 0) & (p.n <= cfg.max_n) & (p.act_min <= p.act_max))
            m.d.sync += self.error.eq(~ok)
            with m.If(ok):
                m.d.sync += [
                    cmd.eq(p), running.eq(1),
                    i_m.eq(0), i_k0.eq(0), i_n0.eq(0), i_nt.eq(0), a_addr.eq(0),
                    issue_done.eq(0), tiles_issued.eq(0), tiles_latched.eq(0),
                    l_state.eq(0), l_base.eq(0), l_k0.eq(0), l_n0.eq(0), l_done.eq(0),
                    self.counters.eq(0),
                ]

        # ---- weight loader: shift the next tile in, latch it into the idle bank ----
        m.d.sync += shift_pending.eq(0)
        m.d.comb += [mesh.shift.eq(shift_pending), mesh.w_in.eq(w_rd.data),
                     w_rd.addr.eq(l_base + (rows - 1) - l_cnt)]
        latch_bank = tiles_latched[0]
        latch_ok = ((tiles_latched - tiles_issued < 2) &
                    (Mux(latch_bank, bank_busy[1], bank_busy[0]) == 0))
        with m.Switch(l_state):
            with m.Case(0):
                with m.If(running & ~l_done):
                    m.d.sync += [l_state.eq(1), l_cnt.eq(0)]
            with m.Case(1):
                m.d.sync += [shift_pending.eq(1), l_cnt.eq(l_cnt + 1)]
                with m.If(l_cnt == rows - 1):
                    m.d.sync += l_state.eq(2)
            with m.Case(2):
                m.d.sync += l_state.eq(3)
            with m.Case(3):
                with m.If(latch_ok):
                    m.d.comb += [mesh.latch.eq(1), mesh.latch_bank.eq(latch_bank)]
                    m.d.sync += [tiles_latched.eq(tiles_latched + 1), l_base.eq(l_base + rows),
                                 l_state.eq(0)]
                    with m.If(l_k0 + rows >= cmd.k):
                        m.d.sync += l_k0.eq(0)
                        with m.If(l_n0 + cols >= cmd.n):
                            m.d.sync += l_done.eq(1)
                        with m.Else():
                            m.d.sync += l_n0.eq(l_n0 + cols)
                    with m.Else():
                        m.d.sync += l_k0.eq(l_k0 + rows)

        # ---- issue: one GEMM row of the current tile per cycle ----
        last_k = Signal()
        m.d.comb += last_k.eq(i_k0 + rows >= cmd.k)
        credit_ok = Signal()
        m.d.comb += credit_ok.eq(~last_k | (out_credit + out_fifo.w_level < self.fifo_depth))
        tile_ready = Signal()
        m.d.comb += tile_ready.eq(tiles_latched != tiles_issued)
        pending = Signal()
        m.d.comb += pending.eq(running & ~issue_done)
        issue = Signal()
        m.d.comb += [issue.eq(pending & tile_ready & credit_ok),
                     act_rd.addr.eq(a_addr)]
        bank = tiles_issued[0]
        m.d.comb += [
            meta[0].valid.eq(issue), meta[0].bank.eq(bank), meta[0].first.eq(i_k0 == 0),
            meta[0].last.eq(last_k), meta[0].m.eq(i_m), meta[0].nt.eq(i_nt),
            meta[0].final.eq(last_k & (i_m == cmd.m - 1) & (i_n0 + cols >= cmd.n)),
        ]
        for b in range(2):
            with m.If(issue & (bank == b)):
                m.d.sync += bank_busy[b].eq(D + 2)
            with m.Elif(bank_busy[b] != 0):
                m.d.sync += bank_busy[b].eq(bank_busy[b] - 1)
        valid_k = Mux(cmd.k - i_k0 >= rows, rows, cmd.k - i_k0)
        valid_n = Mux(cmd.n - i_n0 >= cols, cols, cmd.n - i_n0)
        with m.If(issue):
            m.d.sync += [self.counters.busy.eq(self.counters.busy + 1),
                         self.counters.useful_macs.eq(self.counters.useful_macs +
                                                      valid_k[:9] * valid_n[:9])]
            with m.If(i_m == cmd.m - 1):
                m.d.sync += [i_m.eq(0), tiles_issued.eq(tiles_issued + 1)]
                with m.If(last_k):
                    m.d.sync += [i_k0.eq(0), a_addr.eq(0), i_nt.eq(i_nt + 1)]
                    with m.If(i_n0 + cols >= cmd.n):
                        m.d.sync += issue_done.eq(1)
                    with m.Else():
                        m.d.sync += i_n0.eq(i_n0 + cols)
                with m.Else():
                    m.d.sync += [i_k0.eq(i_k0 + rows), a_addr.eq(a_addr + 1)]
            with m.Else():
                m.d.sync += [i_m.eq(i_m + 1), a_addr.eq(a_addr + 1)]
        with m.Elif(pending & ~tile_ready):
            m.d.sync += self.counters.weight_stall.eq(self.counters.weight_stall + 1)
        with m.Elif(pending):
            m.d.sync += self.counters.output_stall.eq(self.counters.output_stall + 1)
        with m.If(running | out_fifo.r_rdy):
            m.d.sync += self.counters.cycles.eq(self.counters.cycles + 1)
        with m.If(issue_done & ~in_flight & running):
            m.d.sync += running.eq(0)

        # ---- input zero point, then the mesh ----
        a_in = Signal(data.ArrayLayout(signed(9), rows))
        for r in range(rows):
            m.d.sync += a_in[r].eq(Mux(meta[1].valid, act_rd.data[r] - cmd.input_zero_point, 0))
        m.d.comb += [mesh.a.eq(a_in), mesh.bank.eq(meta[2].bank)]

        # ---- accumulate across K tiles (stage D) ----
        m.d.comb += [acc_rd.addr.eq(meta[D - 1].m), p_rd.addr.eq(meta[D - 1].nt)]
        sums = Signal(data.ArrayLayout(signed(cfg.acc_width), cols))
        for c in range(cols):
            m.d.comb += sums[c].eq(Mux(meta[D].first, 0, acc_rd.data[c]) + mesh.psum[c])
        m.d.comb += [acc_wr.addr.eq(meta[D].m), acc_wr.data.eq(sums),
                     acc_wr.en.eq(meta[D].valid & ~meta[D].last)]
        sums_r = Signal.like(sums)
        params_r = Signal(data.ArrayLayout(ChannelParams, cols))
        m.d.sync += [sums_r.eq(sums), params_r.eq(p_rd.data)]

        # ---- requantize the last K tile (stage D + 1 onwards) ----
        outs = []
        for c in range(cols):
            m.submodules[f"requant_{c}"] = rq = Requantizer(cfg.rounding)
            total = Signal(signed(34), name=f"total_{c}")
            m.d.comb += [
                total.eq(sums_r[c] + params_r[c].bias),
                rq.valid.eq(meta[D + 1].valid & meta[D + 1].last),
                rq.x.eq(total[:32]),
                rq.multiplier.eq(params_r[c].multiplier), rq.shift.eq(params_r[c].shift),
                rq.zero_point.eq(cmd.output_zero_point),
                rq.act_min.eq(cmd.act_min), rq.act_max.eq(cmd.act_max),
            ]
            outs.append(rq)
        out_stage = D + 1 + rq_latency
        write = Signal()
        m.d.comb += [
            write.eq(outs[0].o_valid),
            out_fifo.w_en.eq(write),
            out_fifo.w_data.eq(Cat(*(rq.y for rq in outs), meta[out_stage].final)),
        ]
        issued_last = issue & last_k
        with m.If(issued_last & ~write):
            m.d.sync += out_credit.eq(out_credit + 1)
        with m.Elif(~issued_last & write):
            m.d.sync += out_credit.eq(out_credit - 1)

        # ---- results ----
        m.d.comb += [
            self.o_result.valid.eq(out_fifo.r_rdy),
            self.o_result.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o_result.ready),
        ]
        return m
