"""The systolic GEMM engine: buffers, weight loader, issue controller, mesh, output stage."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..multiplier import Multiplier
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

    #: Cycles from a command's acceptance to ``error`` (and ``busy``) reflecting it.
    COMMAND_LATENCY = 5

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
        """Fewest cycles between two weight-tile latches: a tile shifts in row by row
        from the buffer (read, read-data register, shift) before it can be latched; the
        next tile's reads start right after a latch."""
        return config.rows + 3

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

        # Buffers, written by the addressed load streams.
        act_mem = runtime_memory(data.ArrayLayout(signed(8), rows), cfg.act_depth)
        w_mem = runtime_memory(data.ArrayLayout(signed(8), cols), cfg.weight_depth)
        # One parameter memory per column, each read at an address register of its own: a
        # single address register reaching the block RAMs of all columns took 8.3 ns.
        p_mems = [runtime_memory(ChannelParams, cfg.param_depth) for _ in range(cols)]
        acc_mem = runtime_memory(data.ArrayLayout(signed(cfg.acc_width), cols), cfg.acc_depth)
        m.submodules.act_mem, m.submodules.w_mem = act_mem, w_mem
        m.submodules.acc_mem = acc_mem
        for c in range(cols):
            m.submodules[f"p_mem_{c}"] = p_mems[c]
        for mem, port in ((act_mem, self.i_act), (w_mem, self.i_weight)):
            wp = mem.write_port()
            m.d.comb += [port.ready.eq(1), wp.addr.eq(port.payload.addr),
                         wp.data.eq(port.payload.data), wp.en.eq(port.valid)]
        m.d.comb += self.i_param.ready.eq(1)
        for c in range(cols):
            wp = p_mems[c].write_port()
            m.d.comb += [wp.addr.eq(self.i_param.payload.addr),
                         wp.data.eq(self.i_param.payload.data[c]), wp.en.eq(self.i_param.valid)]
        act_rd, w_rd = act_mem.read_port(), w_mem.read_port()
        p_rds = [mem.read_port() for mem in p_mems]
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port()

        m.submodules.mesh = mesh = Mesh(rows, cols, cfg.acc_width)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=cols * 8 + 1,
                                                                 depth=self.fifo_depth)

        # Command registers.
        cmd = Signal(gemm_command(cfg))
        running = Signal()
        result_valid = Signal()
        result_data = Signal(cols * 8 + 1, reset_less=True)
        cmd_in = Signal(gemm_command(cfg), reset_less=True)
        captured, checking, verifying, checked, ok = (Signal(), Signal(), Signal(), Signal(),
                                                      Signal())
        fields_ok = Signal(4)
        accepting = captured | checking | verifying | checked
        m.d.comb += [self.i_cmd.ready.eq(~running & ~accepting),
                     self.busy.eq(running | accepting | out_fifo.r_rdy | result_valid)]

        # Row metadata, delayed alongside the data: meta[s] belongs to the row issued s
        # cycles ago.
        tile_bits = (cfg.weight_depth // rows + 1).bit_length()
        meta_layout = data.StructLayout({
            "valid": 1, "bank": 1, "first": 1, "last": 1, "final": 1,
            "m": unsigned(max(1, (cfg.acc_depth - 1).bit_length())),
            "nt": unsigned(max(1, (cfg.param_depth - 1).bit_length())),
        })
        rq_latency = Requantizer.LATENCY
        n_stages = D + 4 + rq_latency
        meta = [Signal(meta_layout, name=f"meta_{s}") for s in range(n_stages)]
        for s in range(1, n_stages):
            m.d.sync += meta[s].eq(meta[s - 1])
        in_flight = Signal()
        m.d.comb += in_flight.eq(Cat(meta[s].valid for s in range(1, n_stages)).any())

        # Issue state.
        i_m = Signal.like(cmd.m)
        i_k0 = Signal(cfg.max_k.bit_length() + 1)
        i_nt = Signal.like(meta[0].nt)
        a_addr = Signal(range(cfg.act_depth))
        issue_done = Signal()
        pending = Signal()          # running & ~issue_done, as a register of its own
        last_m, last_k, last_n = Signal(name="last_m"), Signal(name="last_k"), Signal(name="last_n")
        # Rows of the tile after the one being issued; K and N from the tile being issued
        # to the end (cmd.k - i_k0, and N likewise); a new tile's values.
        m_left, m_first_left = Signal.like(cmd.m), Signal.like(cmd.m)
        k_rem, n_rem = Signal.like(cmd.k), Signal.like(cmd.n)
        k_first_last = Signal()
        tiles_issued = Signal(tile_bits)
        tiles_latched = Signal(tile_bits)
        tiles_ready = Signal(range(3))      # latched, not yet issued: 0, 1 or 2
        tile_ready = Signal()               # tiles_ready != 0, as a register of its own
        # Copies of the issue decision's inputs, assigned alike: the decision is made twice,
        # once for the registers that feed it back (last_*, the counts they come from,
        # pending, tile_ready) and once for those that only follow it (row and tile
        # counters, the buffer address, the row's metadata): one decision drove about a
        # hundred registers, pulled across the chip by both kinds.
        pending_c = Signal(name="pending_copy_i")
        tile_ready_c = Signal(name="tile_ready_copy_i")
        last_k_c = Signal(name="last_k_copy_i")
        tiles_full = Signal()               # tiles_ready == 2, likewise
        tile_latched, tile_issued = Signal(), Signal()
        bank_busy = [Signal(range(D + 3), name=f"bank_busy_{b}") for b in range(2)]
        # bank_busy[b] == 0, kept as a register (the loader's latch check reads it)
        bank_idle = [Signal(init=1, name=f"bank_idle_{b}") for b in range(2)]
        out_credit = Signal(range(self.fifo_depth + n_stages + 2))

        # Loader state.
        l_state = Signal(range(5))  # 0 idle, 1 reading, 2-3 last shifts, 4 chain full
        l_cnt = Signal(range(rows + 1))
        l_base = Signal(range(cfg.weight_depth + rows))
        l_k0 = Signal.like(i_k0)
        l_n0 = Signal(cfg.max_n.bit_length() + 1)
        l_done = Signal()
        # The loader's tile is the last of its K (N) run: registered (l_k0 and l_n0 are
        # steady for a tile's `rows` shift cycles before they are used).
        l_last_k, l_last_n = Signal(), Signal()
        w_addr = Signal(range(cfg.weight_depth + 2 * rows))    # l_base + rows - 1 - l_cnt
        shift_pending = Signal()

        # ---- command accept: capture, check each field, combine, start (each a cycle: the
        # start fans out to every control register and counter) ----
        # The payload is registered every cycle and copied into `cmd` a cycle after the
        # handshake, so the copy's enable is a register (the handshake's own logic in front
        # of the enable of every command bit took 8.9 ns on the ECP5).
        # The clamp bounds' order is compared as the payload is registered (cmd's bounds
        # also drive every requantizer: their register sits far from the check).
        bounds_in, bounds_ok = Signal(), Signal()
        m.d.sync += [checking.eq(0), verifying.eq(0), checked.eq(0),
                     cmd_in.eq(self.i_cmd.payload),
                     bounds_in.eq(self.i_cmd.payload.act_min <= self.i_cmd.payload.act_max),
                     captured.eq(self.i_cmd.valid & self.i_cmd.ready)]
        with m.If(captured):
            m.d.sync += [cmd.eq(cmd_in), bounds_ok.eq(bounds_in), checking.eq(1)]
        with m.If(verifying):
            m.d.sync += [checked.eq(1), ok.eq(fields_ok.all())]
        with m.If(checking):
            m.d.sync += [verifying.eq(1),
                         fields_ok.eq(Cat((cmd.m != 0) & (cmd.m <= cfg.max_m),
                                          (cmd.k != 0) & (cmd.k <= cfg.max_k),
                                          (cmd.n != 0) & (cmd.n <= cfg.max_n),
                                          bounds_ok)),
                         last_m.eq(cmd.m == 1), last_k.eq(rows >= cmd.k),
                         last_k_c.eq(rows >= cmd.k),
                         last_n.eq(cols >= cmd.n),
                         m_first_left.eq(cmd.m - 1), k_first_last.eq(rows >= cmd.k)]
        with m.If(checked):
            m.d.sync += self.error.eq(~ok)
            with m.If(ok):
                m.d.sync += [
                    running.eq(1), pending.eq(1), pending_c.eq(1), tile_ready_c.eq(0),
                    i_m.eq(0), i_k0.eq(0), i_nt.eq(0), a_addr.eq(0),
                    m_left.eq(m_first_left), k_rem.eq(cmd.k), n_rem.eq(cmd.n),
                    issue_done.eq(0), tiles_issued.eq(0), tiles_latched.eq(0),
                    tiles_ready.eq(0), tile_ready.eq(0), tiles_full.eq(0),
                    l_state.eq(0), l_base.eq(0), l_k0.eq(0), l_n0.eq(0), l_done.eq(0),
                    self.counters.eq(0),
                ]

        # ---- weight loader: shift the next tile in, latch it into the idle bank ----
        # The buffer's read data and the shift and latch commands are registered on their
        # way to the mesh (they fan out to every PE), and the mesh registers them again per
        # column (Mesh.CONTROL_LATENCY): the last shift and the latch reach the PEs two
        # cycles late, which the loader's states (and the issue of the latched tile's first
        # row, INPUT_STAGES + 1 cycles before it needs the weights) allow for.
        w_q = Signal.like(w_rd.data, reset_less=True)
        shift_q = Signal()
        latch_r, latch_bank_r = Signal(), Signal()
        m.d.sync += [shift_pending.eq(0), shift_q.eq(shift_pending), w_q.eq(w_rd.data),
                     latch_r.eq(0)]
        m.d.comb += [mesh.shift.eq(shift_q), mesh.w_in.eq(w_q),
                     mesh.latch.eq(latch_r), mesh.latch_bank.eq(latch_bank_r),
                     w_rd.addr.eq(w_addr)]
        latch_bank = tiles_latched[0]
        latch_ok = ~tiles_full & Mux(latch_bank, bank_idle[1], bank_idle[0])
        m.d.sync += [l_last_k.eq(l_k0 + rows >= cmd.k), l_last_n.eq(l_n0 + cols >= cmd.n)]
        with m.Switch(l_state):
            with m.Case(0):
                with m.If(running & ~l_done):
                    m.d.sync += [l_state.eq(1), l_cnt.eq(0), w_addr.eq(l_base + (rows - 1))]
            with m.Case(1):
                m.d.sync += [shift_pending.eq(1), l_cnt.eq(l_cnt + 1), w_addr.eq(w_addr - 1)]
                with m.If(l_cnt == rows - 1):
                    m.d.sync += l_state.eq(2)
            with m.Case(2):
                m.d.sync += l_state.eq(3)
            with m.Case(3):
                m.d.sync += l_state.eq(4)
            with m.Case(4):
                with m.If(latch_ok):
                    m.d.comb += tile_latched.eq(1)
                    m.d.sync += [latch_r.eq(1), latch_bank_r.eq(latch_bank),
                                 tiles_latched.eq(tiles_latched + 1), l_base.eq(l_base + rows),
                                 w_addr.eq(l_base + (2 * rows - 1)),
                                 l_state.eq(1), l_cnt.eq(0)]      # straight on to the next
                    with m.If(l_last_k):
                        m.d.sync += l_k0.eq(0)
                        with m.If(l_last_n):
                            m.d.sync += [l_done.eq(1), l_state.eq(0)]
                        with m.Else():
                            m.d.sync += l_n0.eq(l_n0 + cols)
                    with m.Else():
                        m.d.sync += l_k0.eq(l_k0 + rows)

        # ---- issue: one GEMM row of the current tile per cycle ----
        # Registered: whether the row being issued is in the last K tile / N tile and of
        # the last m; whether the output FIFO has room. Output space is judged from counts
        # up to two cycles old with two words to spare (rows in flight plus words in the
        # FIFO grow by at most one a cycle), so the check is off the issue path.
        credit, credit_c = Signal(), Signal(name="credit_copy_i")
        fifo_level = Signal.like(out_fifo.w_level)
        room = out_credit + fifo_level < self.fifo_depth - 2
        m.d.sync += [fifo_level.eq(out_fifo.w_level), credit.eq(room), credit_c.eq(room)]
        issue, issue_dp = Signal(), Signal()         # the same decision, twice (above)
        m.d.comb += [issue.eq(pending & tile_ready & (~last_k | credit)),
                     issue_dp.eq(pending_c & tile_ready_c & (~last_k_c | credit_c)),
                     act_rd.addr.eq(a_addr)]
        bank = tiles_issued[0]
        m.d.comb += [
            meta[0].valid.eq(issue_dp), meta[0].bank.eq(bank), meta[0].first.eq(i_k0 == 0),
            meta[0].last.eq(last_k_c), meta[0].m.eq(i_m), meta[0].nt.eq(i_nt),
            meta[0].final.eq(last_k_c & last_m & last_n),
        ]
        for b in range(2):
            with m.If(issue_dp & (bank == b)):
                m.d.sync += [bank_busy[b].eq(D + 2), bank_idle[b].eq(0)]
            with m.Elif(bank_busy[b] != 0):
                m.d.sync += [bank_busy[b].eq(bank_busy[b] - 1), bank_idle[b].eq(bank_busy[b] == 1)]
        # Useful MACs of an issued row, added once a pipelined multiplier has them.
        valid_k, valid_n = Signal(9), Signal(9)
        m.submodules.macs_multiplier = row_macs = Multiplier(unsigned(9), unsigned(9))
        # (the K and N left of the row's tile, then their part in it: a cycle each)
        k_left, n_left = Signal.like(cmd.k), Signal.like(cmd.n)
        macs_issue = [Signal(name=f"macs_issue_{i}") for i in range(2 + Multiplier.LATENCY)]
        m.d.sync += [k_left.eq(k_rem), n_left.eq(n_rem),
                     valid_k.eq(Mux(k_left >= rows, rows, k_left)),
                     valid_n.eq(Mux(n_left >= cols, cols, n_left)),
                     macs_issue[0].eq(issue_dp)]
        m.d.sync += [macs_issue[i].eq(macs_issue[i - 1]) for i in range(1, len(macs_issue))]
        m.d.comb += [row_macs.a.eq(valid_k), row_macs.b.eq(valid_n)]
        with m.If(macs_issue[-1]):
            m.d.sync += self.counters.useful_macs.eq(self.counters.useful_macs + row_macs.p)
        # The counters count a cycle late, from registered conditions.
        stalled_w, stalled_o = Signal(), Signal()
        m.d.sync += [stalled_w.eq(pending & ~tile_ready), stalled_o.eq(pending & ~issue)]
        with m.If(macs_issue[0]):
            m.d.sync += self.counters.busy.eq(self.counters.busy + 1)
        with m.If(stalled_w):
            m.d.sync += self.counters.weight_stall.eq(self.counters.weight_stall + 1)
        with m.Elif(stalled_o):
            m.d.sync += self.counters.output_stall.eq(self.counters.output_stall + 1)
        # The last-row/tile flags of the next row come from down-counters compared with
        # constants (an add and a compare with the command's fields took 8.6 ns).
        with m.If(issue):                # the decision's own state
            with m.If(last_m):
                m.d.comb += tile_issued.eq(1)
                m.d.sync += [m_left.eq(m_first_left), last_m.eq(m_first_left == 0)]
                with m.If(last_k):
                    m.d.sync += [k_rem.eq(cmd.k), last_k.eq(k_first_last),
                                 last_k_c.eq(k_first_last)]
                    with m.If(last_n):
                        m.d.sync += [issue_done.eq(1), pending.eq(0), pending_c.eq(0)]
                    with m.Else():
                        m.d.sync += [n_rem.eq(n_rem - cols), last_n.eq(n_rem <= 2 * cols)]
                with m.Else():
                    m.d.sync += [k_rem.eq(k_rem - rows), last_k.eq(k_rem <= 2 * rows),
                                 last_k_c.eq(k_rem <= 2 * rows)]
            with m.Else():
                m.d.sync += [m_left.eq(m_left - 1), last_m.eq(m_left == 1)]
        with m.If(issue_dp):             # registers that only follow it
            with m.If(last_m):
                m.d.sync += [i_m.eq(0), tiles_issued.eq(tiles_issued + 1)]
                with m.If(last_k_c):
                    m.d.sync += [i_k0.eq(0), a_addr.eq(0), i_nt.eq(i_nt + 1)]
                with m.Else():
                    m.d.sync += [i_k0.eq(i_k0 + rows), a_addr.eq(a_addr + 1)]
            with m.Else():
                m.d.sync += [i_m.eq(i_m + 1), a_addr.eq(a_addr + 1)]
        with m.If(running | out_fifo.r_rdy | result_valid):
            m.d.sync += self.counters.cycles.eq(self.counters.cycles + 1)
        with m.If(tile_latched & ~tile_issued):
            m.d.sync += [tiles_ready.eq(tiles_ready + 1), tile_ready.eq(1), tile_ready_c.eq(1),
                         tiles_full.eq(tiles_ready == 1)]
        with m.Elif(tile_issued & ~tile_latched):
            m.d.sync += [tiles_ready.eq(tiles_ready - 1), tile_ready.eq(tiles_ready != 1),
                         tile_ready_c.eq(tiles_ready != 1), tiles_full.eq(0)]
        with m.If(issue_done & ~in_flight & running):
            m.d.sync += running.eq(0)

        # ---- read data register, input zero point, then the mesh ----
        act_q = Signal.like(act_rd.data, reset_less=True)
        m.d.sync += act_q.eq(act_rd.data)
        a_in = Signal(data.ArrayLayout(signed(9), rows), reset_less=True)
        for r in range(rows):
            m.d.sync += a_in[r].eq(Mux(meta[2].valid, act_q[r] - cmd.input_zero_point, 0))
        m.d.comb += [mesh.a.eq(a_in), mesh.bank.eq(meta[self.INPUT_STAGES].bank)]

        # ---- accumulate across K tiles (stage D) ----
        # The accumulator word is read at D - 3 and registered twice (on the ECP5 the first
        # register is the block RAM's own), the new sum written at D + 1: rows of the same
        # m issued 1 to 4 cycles earlier hold newer sums than that read (a read of the
        # word being written may return either). The previous row's sum is forwarded
        # straight into the add (`near`); the sum to use otherwise (2 to 4 rows back, the
        # memory, or 0 in the first K tile) is chosen a cycle earlier into `far`. The
        # selects go to every bit of every column: one registered copy per column each.
        m.d.comb += acc_rd.addr.eq(meta[D - 3].m)
        for c in range(cols):
            p_addr = Signal.like(meta[0].nt, name=f"p_addr_copy_{c}")
            m.d.sync += p_addr.eq(meta[D - 2].nt)           # = meta[D - 1].nt
            m.d.comb += p_rds[c].addr.eq(p_addr)
        acc_q = Signal.like(acc_rd.data, reset_less=True)
        m.d.sync += acc_q.eq(acc_rd.data)

        def writes(row: data.View, ahead: data.View):
            return ahead.valid & ~ahead.last & (ahead.m == row.m)

        near = [Signal(name=f"acc_near_copy_{c}") for c in range(cols)]
        far = [[Signal(name=f"acc_far{j}_copy_{c}") for c in range(cols)] for j in range(4)]
        # The selects are decided once a cycle before their copies are made: near at D - 2
        # (the row one ahead), far at D - 3 (the rows two to four ahead); the address
        # compares a cycle before that, on the same rows one stage earlier (the metadata
        # moves down its stages every cycle): compares and select in one cycle took 7.6 ns.
        # (without reset: with one, Yosys 0.70's ABC9 stopped on its rtlil.cc:3091 assertion
        # in a 2x3 ECP5 build; the metadata's valid bits are reset, so these follow a cycle on)
        w1, w2, w3, w4 = (Signal(name=f"acc_writes_{j}", reset_less=True) for j in range(1, 5))
        m.d.sync += [w1.eq(writes(meta[D - 3], meta[D - 2]))]
        m.d.sync += [w.eq(writes(meta[D - 4], meta[D - 4 + j]))
                     for w, j in ((w2, 2), (w3, 3), (w4, 4))]
        first_1, first_2 = meta[D - 2].first, meta[D - 3].first
        near_q, far_q = Signal(), Signal(4)
        m.d.sync += [near_q.eq(~first_1 & w1),
                     far_q.eq(Cat(~first_2 & w2, ~first_2 & ~w2 & w3,
                                  ~first_2 & ~w2 & ~w3 & w4, ~first_2 & ~(w2 | w3 | w4)))]
        for c in range(cols):
            m.d.sync += [near[c].eq(near_q)] + [far[j][c].eq(far_q[j]) for j in range(4)]
        sums = Signal(data.ArrayLayout(signed(cfg.acc_width), cols))
        sums_r = [Signal.like(sums, name=f"sums_{j + 1}", reset_less=True) for j in range(3)]
        m.d.sync += [sums_r[0].eq(sums), sums_r[1].eq(sums_r[0]), sums_r[2].eq(sums_r[1])]
        for c in range(cols):
            far_sum = Signal(signed(cfg.acc_width), name=f"far_sum_{c}", reset_less=True)
            m.d.sync += far_sum.eq(Mux(far[0][c], sums_r[0][c], 0) |
                                   Mux(far[1][c], sums_r[1][c], 0) |
                                   Mux(far[2][c], sums_r[2][c], 0) | Mux(far[3][c], acc_q[c], 0))
            previous = Signal(signed(cfg.acc_width), name=f"previous_{c}")
            m.d.comb += previous.eq(Mux(near[c], sums_r[0][c], far_sum))
            m.d.comb += sums[c].eq(previous + mesh.psum[c])
        m.d.comb += [acc_wr.addr.eq(meta[D + 1].m), acc_wr.data.eq(sums_r[0]),
                     acc_wr.en.eq(meta[D + 1].valid & ~meta[D + 1].last)]
        params_r = Signal(data.ArrayLayout(ChannelParams, cols), reset_less=True)
        m.d.sync += [params_r[c].eq(p_rds[c].data) for c in range(cols)]
        sums_r = sums_r[0]

        # ---- requantize the last K tile (stage D + 1 onwards) ----
        # The command's output parameters (steady through a GEMM) reach each column's
        # requantizer through a register of its own, placed near it.
        out_params = [Signal(data.StructLayout({"zero_point": signed(8), "act_min": signed(8),
                                                "act_max": signed(8)}),
                             name=f"out_params_copy_{c}", reset_less=True) for c in range(cols)]
        for c in range(cols):
            m.d.sync += [out_params[c].zero_point.eq(cmd.output_zero_point),
                         out_params[c].act_min.eq(cmd.act_min),
                         out_params[c].act_max.eq(cmd.act_max)]
        outs = []
        for c in range(cols):
            m.submodules[f"requant_{c}"] = rq = Requantizer(cfg.rounding)
            total = Signal(signed(34), name=f"total_{c}")
            m.d.comb += [
                total.eq(sums_r[c] + params_r[c].bias),
                rq.valid.eq(meta[D + 1].valid & meta[D + 1].last),
                rq.x.eq(total[:32]),
                rq.multiplier.eq(params_r[c].multiplier), rq.shift.eq(params_r[c].shift),
                rq.zero_point.eq(out_params[c].zero_point),
                rq.act_min.eq(out_params[c].act_min), rq.act_max.eq(out_params[c].act_max),
            ]
            outs.append(rq)
        # The requantizers' outputs (one per column, spread over the array's width) meet in
        # two registers before the FIFO (one hop took up to 10 ns of routing).
        out_stage = D + 1 + rq_latency
        write, write_r = Signal(), Signal()
        w_data = Signal(cols * 8 + 1, reset_less=True)
        w_data_r = Signal(cols * 8 + 1, reset_less=True)
        m.d.sync += [write_r.eq(outs[0].o_valid), write.eq(write_r),
                     w_data_r.eq(Cat(*(rq.y for rq in outs), meta[out_stage].final)),
                     w_data.eq(w_data_r)]
        m.d.comb += [out_fifo.w_en.eq(write), out_fifo.w_data.eq(w_data)]
        issued_last = issue_dp & last_k_c
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
