"""Issues a GEMM's activation rows into the mesh, one a cycle, tile after tile."""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..multiplier import Multiplier
from ..synthesis import keep_copy
from .config import SystolicConfig
from .layouts import COUNTER_WIDTH

__all__ = ["IssueController", "IssueCounters", "row_layout"]

#: The counters the issue controller keeps (see :class:`~hw.systolic.layouts.Counters`).
IssueCounters = data.StructLayout({
    "busy": unsigned(COUNTER_WIDTH),
    "useful_macs": unsigned(COUNTER_WIDTH),
    "weight_stall": unsigned(COUNTER_WIDTH),
    "output_stall": unsigned(COUNTER_WIDTH),
})


def row_layout(config: SystolicConfig) -> data.StructLayout:
    """What travels with an issued row: whether there is one, its weight bank, whether its
    K tile is the first / last of its N tile, whether it is the GEMM's last result row, its
    row ``m`` and N tile ``nt``."""
    return data.StructLayout({
        "valid": 1, "bank": 1, "first": 1, "last": 1, "final": 1,
        "m": unsigned(max(1, (config.acc_depth - 1).bit_length())),
        "nt": unsigned(max(1, (config.param_depth - 1).bit_length())),
    })


class IssueController(wiring.Component):
    """Walks a GEMM's tiles (N tiles outer, K tiles inner, rows ``m`` innermost) and issues
    one row a cycle while a latched weight tile waits, its activation word has been written
    and, for a last-K-tile row, the output has room.

    A tile counts as ready from the cycle after the loader latches it; its rows use the
    bank it was latched into (banks alternate from 0). The activation buffer is read at
    ``act_addr`` (word ``kt*M + m``) in the cycle a row issues. Issued rows hold their bank
    busy for ``array_latency + 2`` cycles, which the loader sees on ``bank_idle``.

    Activations may still be arriving when the command starts: the host writes them in
    address order from 0, and a row issues only once its word is in the buffer. The last
    address written is registered (``act_last``, with ``act_any`` set by any write and
    cleared as the GEMM's final row issues), and the gate is judged a cycle ahead, off the
    issue path: the row that may issue next cycle is this one or the next, so the register
    ``act_ok`` says that both are written (the pass's last row, after which the address
    wraps to 0, needs only itself). A row thus issues two cycles after its word's write at
    the earliest, so a word is never read in the cycle it is written. Only the
    first N tile's pass can wait: every later pass reads words written by then. The first
    write after a GEMM must be address 0, so a command reads only the activations written
    since the last GEMM finished; a rejected command leaves them in place.

    The issue decision is made twice from copies of its inputs: once for the registers that
    feed it back, once for those that only follow it (the row counters, the buffer
    address, the row's metadata); one decision drove about a hundred registers.

    Parameters
    ----------
    config : SystolicConfig
    array_latency : int
        Cycles from issue to the row's partial sums leaving the mesh.

    Members
    -------
    check : In(1)
        The command in ``m``, ``k``, ``n`` is being checked: precompute its first tile's
        flags.
    start : In(1)
        The checked command starts (the cycle after ``check`` at the earliest).
    m, k, n : In(unsigned)
        The command's shape, steady from ``check`` to the end of the GEMM.
    latched : In(1)
        The loader latches a tile this cycle.
    room : In(1)
        The output FIFO has room for two more words than the rows in flight towards it;
        used a cycle later.
    act_write, act_write_addr : In(1), In(range(act_depth))
        An activation word is written at ``act_write_addr`` this cycle.
    row : Out(row_layout(config))
        The row issued this cycle (``valid``) and its metadata.
    act_addr : Out(range(act_depth))
    done : Out(1)
        Every row issued (set the cycle after the last issue).
    tiles_full, bank_idle : Out(1), Out(2)
        For the loader: two tiles latched and not yet issued; per bank, no row in flight.
    counters : Out(IssueCounters)
        Cleared by ``start``; counted a cycle late (``useful_macs`` later still). A cycle
        that waits for a weight tile or an activation word counts in ``weight_stall``.
    """

    def __init__(self, config: SystolicConfig, *, array_latency: int):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"IssueController needs a SystolicConfig, not {config!r}")
        if not isinstance(array_latency, int) or array_latency < 1:
            raise ValueError(f"array_latency={array_latency!r}: must be a positive int")
        self._cfg, self._d = config, array_latency
        super().__init__({
            "check": In(1), "start": In(1),
            "m": In(unsigned(config.max_m.bit_length())),
            "k": In(unsigned(config.max_k.bit_length())),
            "n": In(unsigned(config.max_n.bit_length())),
            "latched": In(1), "room": In(1),
            "act_write": In(1), "act_write_addr": In(range(config.act_depth)),
            "row": Out(row_layout(config)), "act_addr": Out(range(config.act_depth)),
            "done": Out(1), "tiles_full": Out(1), "bank_idle": Out(2),
            "counters": Out(IssueCounters),
        })

    #: Cycles from ``latched`` to the first issue of that tile, when the controller waits
    #: for it.
    LATENCY = 1

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        cfg, rows, cols = self._cfg, self._cfg.rows, self._cfg.cols
        i_m = Signal.like(self.m, name="i_m")
        i_k0 = Signal(cfg.max_k.bit_length() + 1, name="i_k0")
        i_nt = Signal.like(self.row.nt, name="i_nt")
        a_addr = Signal.like(self.act_addr, name="a_addr")
        done = Signal(name="issue_done")
        pending = Signal(name="pending")        # started and not done: a register of its own
        last_m, last_k, last_n = Signal(name="last_m"), Signal(name="last_k"), Signal(name="last_n")
        # Rows of the tile after the one being issued; K and N from the tile being issued
        # to the end (k - i_k0, and N likewise); a new tile's values.
        m_left, m_first_left = Signal.like(self.m), Signal.like(self.m)
        k_rem, n_rem = Signal.like(self.k), Signal.like(self.n)
        k_first_last = Signal()
        bank = Signal(name="issue_bank")
        tiles_ready = Signal(range(3))      # latched, not yet issued: 0, 1 or 2
        tile_ready = Signal()               # tiles_ready != 0, as a register of its own
        tiles_full = Signal()               # tiles_ready == 2, likewise
        keep = keep_copy(platform)
        pending_c = Signal(name="pending_copy_i", attrs=keep)
        tile_ready_c = Signal(name="tile_ready_copy_i", attrs=keep)
        last_k_c = Signal(name="last_k_copy_i", attrs=keep)
        tile_issued = Signal()
        bank_busy = [Signal(range(self._d + 3), name=f"bank_busy_{b}") for b in range(2)]
        bank_idle = [Signal(init=1, name=f"bank_idle_{b}") for b in range(2)]
        m.d.comb += [self.done.eq(done), self.tiles_full.eq(tiles_full),
                     self.bank_idle.eq(Cat(bank_idle)), self.act_addr.eq(a_addr)]

        with m.If(self.check):
            m.d.sync += [last_m.eq(self.m == 1), last_k.eq(rows >= self.k),
                         last_k_c.eq(rows >= self.k), last_n.eq(cols >= self.n),
                         m_first_left.eq(self.m - 1), k_first_last.eq(rows >= self.k)]
        with m.If(self.start):
            m.d.sync += [pending.eq(1), pending_c.eq(1), tile_ready_c.eq(0),
                         i_m.eq(0), i_k0.eq(0), i_nt.eq(0), a_addr.eq(0),
                         m_left.eq(m_first_left), k_rem.eq(self.k), n_rem.eq(self.n),
                         done.eq(0), bank.eq(0), tiles_ready.eq(0), tile_ready.eq(0),
                         tiles_full.eq(0), self.counters.eq(0)]

        # Output room judged from counts up to two cycles old (see SystolicTop), registered
        # off the issue path.
        credit, credit_c = Signal(name="credit"), Signal(name="credit_copy_i", attrs=keep)
        m.d.sync += [credit.eq(self.room), credit_c.eq(self.room)]
        # Activations written so far (see the class docstring), judged a cycle ahead.
        act_last = Signal.like(self.act_write_addr, name="act_last")
        act_any = Signal(name="act_any")
        act_ok, act_ok_c = Signal(name="act_ok"), Signal(name="act_ok_copy_i", attrs=keep)
        pass_end = Signal()             # this row is its pass's last: the next is word 0
        m.d.comb += pass_end.eq(last_m & last_k_c)
        ahead = Mux(pass_end, a_addr <= act_last, a_addr < act_last) & act_any
        m.d.sync += [act_ok.eq(ahead), act_ok_c.eq(ahead)]
        issue, issue_dp = Signal(), Signal()         # the same decision, twice
        m.d.comb += [issue.eq(pending & tile_ready & act_ok & (~last_k | credit)),
                     issue_dp.eq(pending_c & tile_ready_c & act_ok_c & (~last_k_c | credit_c))]
        with m.If(issue_dp & last_m & last_k_c & last_n):
            m.d.sync += act_any.eq(0)
        with m.If(self.act_write):
            m.d.sync += [act_last.eq(self.act_write_addr), act_any.eq(1)]
        row = self.row
        m.d.comb += [row.valid.eq(issue_dp), row.bank.eq(bank), row.first.eq(i_k0 == 0),
                     row.last.eq(last_k_c), row.m.eq(i_m), row.nt.eq(i_nt),
                     row.final.eq(last_k_c & last_m & last_n)]
        for b in range(2):
            with m.If(issue_dp & (bank == b)):
                m.d.sync += [bank_busy[b].eq(self._d + 2), bank_idle[b].eq(0)]
            with m.Elif(bank_busy[b] != 0):
                m.d.sync += [bank_busy[b].eq(bank_busy[b] - 1), bank_idle[b].eq(bank_busy[b] == 1)]

        # Useful MACs of an issued row, added once a pipelined multiplier has them (the K
        # and N left of the row's tile, then their part in it: a cycle each).
        valid_k, valid_n = Signal(9), Signal(9)
        m.submodules.macs_multiplier = row_macs = Multiplier(unsigned(9), unsigned(9))
        k_left, n_left = Signal.like(self.k), Signal.like(self.n)
        macs_issue = [Signal(name=f"macs_issue_{i}") for i in range(2 + Multiplier.LATENCY)]
        m.d.sync += [k_left.eq(k_rem), n_left.eq(n_rem),
                     valid_k.eq(Mux(k_left >= rows, rows, k_left)),
                     valid_n.eq(Mux(n_left >= cols, cols, n_left)),
                     macs_issue[0].eq(issue_dp)]
        m.d.sync += [macs_issue[i].eq(macs_issue[i - 1]) for i in range(1, len(macs_issue))]
        m.d.comb += [row_macs.a.eq(valid_k), row_macs.b.eq(valid_n)]
        counters = self.counters
        with m.If(macs_issue[-1]):
            m.d.sync += counters.useful_macs.eq(counters.useful_macs + row_macs.p)
        stalled_w, stalled_o = Signal(), Signal()
        m.d.sync += [stalled_w.eq(pending & ~(tile_ready & act_ok)),
                     stalled_o.eq(pending & ~issue)]
        with m.If(macs_issue[0]):
            m.d.sync += counters.busy.eq(counters.busy + 1)
        with m.If(stalled_w):
            m.d.sync += counters.weight_stall.eq(counters.weight_stall + 1)
        with m.Elif(stalled_o):
            m.d.sync += counters.output_stall.eq(counters.output_stall + 1)

        # The next row's last-row/tile flags come from down-counters compared with
        # constants (an add and then a compare with the command's fields, in one cycle, is
        # a carry chain too many).
        with m.If(issue):                # the decision's own state
            with m.If(last_m):
                m.d.comb += tile_issued.eq(1)
                m.d.sync += [m_left.eq(m_first_left), last_m.eq(m_first_left == 0)]
                with m.If(last_k):
                    m.d.sync += [k_rem.eq(self.k), last_k.eq(k_first_last),
                                 last_k_c.eq(k_first_last)]
                    with m.If(last_n):
                        m.d.sync += [done.eq(1), pending.eq(0), pending_c.eq(0)]
                    with m.Else():
                        m.d.sync += [n_rem.eq(n_rem - cols), last_n.eq(n_rem <= 2 * cols)]
                with m.Else():
                    m.d.sync += [k_rem.eq(k_rem - rows), last_k.eq(k_rem <= 2 * rows),
                                 last_k_c.eq(k_rem <= 2 * rows)]
            with m.Else():
                m.d.sync += [m_left.eq(m_left - 1), last_m.eq(m_left == 1)]
        with m.If(issue_dp):             # registers that only follow it
            with m.If(last_m):
                m.d.sync += [i_m.eq(0), bank.eq(~bank)]
                with m.If(last_k_c):
                    m.d.sync += [i_k0.eq(0), a_addr.eq(0), i_nt.eq(i_nt + 1)]
                with m.Else():
                    m.d.sync += [i_k0.eq(i_k0 + rows), a_addr.eq(a_addr + 1)]
            with m.Else():
                m.d.sync += [i_m.eq(i_m + 1), a_addr.eq(a_addr + 1)]
        with m.If(self.latched & ~tile_issued):
            m.d.sync += [tiles_ready.eq(tiles_ready + 1), tile_ready.eq(1), tile_ready_c.eq(1),
                         tiles_full.eq(tiles_ready == 1)]
        with m.Elif(tile_issued & ~self.latched):
            m.d.sync += [tiles_ready.eq(tiles_ready - 1), tile_ready.eq(tiles_ready != 1),
                         tile_ready_c.eq(tiles_ready != 1), tiles_full.eq(0)]
        return m
