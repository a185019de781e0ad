"""The systolic engine behind the board's word bus."""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hw.synthesis import no_collision
from hw.systolic.config import ROUNDING_MODES, SystolicConfig
from hw.systolic.layouts import act_word, gemm_command, param_word, weight_word
from hw.systolic.top import SystolicTop

from .bus import ENGINE_IDS, EngineSignature
from .protocol import COUNTERS_SPACE, Space
from .stream_space import StreamSpace, stride_log2

__all__ = ["SystolicAdapter", "SYSTOLIC_SPACES", "SYSTOLIC_COUNTERS"]

#: Space ids of the systolic adapter.
SYSTOLIC_SPACES = {"act": 1, "weight": 2, "param": 3, "command": 4, "results": 5}
#: Words of its counters space: the engine's counters (low 32 bits), results stored, flags
#: (bit 0: the engine rejected the command, bit 1: results overflowed the result buffer).
SYSTOLIC_COUNTERS = ("cycles", "busy", "useful_macs", "weight_stall", "output_stall",
                     "results", "flags")


class SystolicAdapter(wiring.Component):
    """:class:`hw.systolic.top.SystolicTop` with addressed-stream spaces and a result buffer.

    A buffer beat (activation, weight or parameter word, including its address field, as
    :func:`sim.systolic.pack` makes it) is written as ``2**stride`` bus words of its space;
    the command is written the same way into space 4 and issued by ``RUN``. Result beats
    (their ``data``) land in space 5 at consecutive strides; ``RUN`` finishes on the beat
    with ``last`` set, or at once if the engine rejects the command.

    Parameters
    ----------
    config : SystolicConfig
    out_depth : int
        Result buffer depth in beats (default ``config.acc_depth``: one N tile of the
        largest M); further results are dropped and flagged.
    """

    def __init__(self, config: SystolicConfig, out_depth: int | None = None):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"SystolicAdapter needs a SystolicConfig, not {config!r}")
        self._cfg = config
        self._out_depth = out_depth or config.acc_depth
        self._top = SystolicTop(config)
        self._widths = {"act": act_word(config).size, "weight": weight_word(config).size,
                        "param": param_word(config).size, "command": gemm_command(config).size,
                        "results": config.cols * 8}
        super().__init__(EngineSignature())

    @property
    def config(self) -> SystolicConfig:
        return self._cfg

    def stride_log2(self, space: str) -> int:
        return stride_log2(self._widths[space])

    @property
    def spaces(self):
        c = self._cfg
        depths = {"act": c.act_depth, "weight": c.weight_depth, "param": c.param_depth,
                  "command": 1, "results": self._out_depth}
        out = [Space(SYSTOLIC_SPACES[n], n, depths[n] << self.stride_log2(n),
                     writable=n != "results", readable=n == "results")
               for n in SYSTOLIC_SPACES]
        return (*out, Space(COUNTERS_SPACE, "counters", len(SYSTOLIC_COUNTERS), readable=True))

    @property
    def info(self):
        c = self._cfg
        return (ENGINE_IDS["systolic"], c.rows, c.cols, c.act_depth, c.weight_depth,
                c.acc_depth, c.param_depth, ROUNDING_MODES.index(c.rounding),
                self._out_depth)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = top = self._top
        bus = self.bus
        for name in ("act", "weight", "param", "command"):
            m.submodules[f"{name}_space"] = space = StreamSpace(self._widths[name])
            m.d.comb += [space.w_en.eq(bus.w_en & (bus.space == SYSTOLIC_SPACES[name])),
                         space.w_addr.eq(bus.addr), space.w_data.eq(bus.w_data)]
            if name != "command":
                wiring.connect(m, space.o, getattr(top, f"i_{name}"))
            else:
                command = space
        staged_cmd = Signal(self._widths["command"])
        m.d.comb += command.o.ready.eq(1)
        with m.If(command.o.valid):
            m.d.sync += staged_cmd.eq(command.o.payload)

        # The engine's error flag reflects a command COMMAND_LATENCY cycles after it took it.
        issuing = Signal()
        accepted = Signal(top.COMMAND_LATENCY)
        m.d.comb += [top.i_cmd.valid.eq(issuing), top.i_cmd.payload.eq(staged_cmd)]
        m.d.sync += accepted.eq(accepted << 1)
        with m.If(self.start):
            m.d.sync += issuing.eq(1)
        with m.If(issuing & top.i_cmd.ready):
            m.d.sync += [issuing.eq(0), accepted.eq(1)]
        waiting_error = accepted[-1]

        # Read only after the run, never at the address being written.
        out_mem = Memory(shape=self._widths["results"], depth=self._out_depth, init=[],
                         attrs=no_collision())
        m.submodules.result_mem = out_mem
        out_wr, out_rd = out_mem.write_port(), out_mem.read_port()
        stored = Signal(32)
        room = Signal(init=1)                 # stored < out_depth, kept as a register
        flags = Signal(2)
        m.d.comb += top.o_result.ready.eq(1)
        with m.If(self.start):
            m.d.sync += [stored.eq(0), room.eq(1), flags.eq(0)]
        # The write goes to the block RAM from registers, a cycle after the beat (the
        # enable from `room` straight into the RAMs is a long route on the ECP5); results are
        # read only after `done`, which the link sees cycles later.
        wr_en = Signal()
        wr_addr = Signal.like(out_wr.addr, reset_less=True)
        wr_data = Signal.like(out_wr.data, reset_less=True)
        m.d.comb += [out_wr.addr.eq(wr_addr), out_wr.data.eq(wr_data), out_wr.en.eq(wr_en)]
        m.d.sync += [wr_en.eq(0), wr_addr.eq(stored), wr_data.eq(top.o_result.payload.data)]
        with m.If(top.o_result.valid):
            with m.If(room):
                m.d.sync += [wr_en.eq(1), stored.eq(stored + 1),
                             room.eq(stored != self._out_depth - 1)]
            with m.Else():
                m.d.sync += flags[1].eq(1)
        rejected = waiting_error & top.error
        with m.If(rejected):
            m.d.sync += flags[0].eq(1)
        m.d.comb += self.done.eq((top.o_result.valid & top.o_result.payload.last) | rejected)

        # Reads, two cycles after r_en: a result beat through a register right after the
        # block RAM (on the ECP5 its output register), or a registered counter; the word
        # is selected after those registers.
        r_stride = self.stride_log2("results")
        m.d.comb += out_rd.addr.eq(bus.addr >> r_stride)
        r_results, r_addr = Signal(), Signal(24)
        with m.If(bus.r_en):
            m.d.sync += [r_results.eq(bus.space == SYSTOLIC_SPACES["results"]),
                         r_addr.eq(bus.addr)]
        # The counters (spread over the engine) are copied every cycle into registers next
        # to the read mux; the bus holds the address from r_en on.
        values = [top.counters.cycles[:32], top.counters.busy[:32],
                  top.counters.useful_macs[:32], top.counters.weight_stall[:32],
                  top.counters.output_stall[:32], stored, flags]
        snapshot = [Signal(32, name=f"counter_snapshot_{k}", reset_less=True)
                    for k in range(len(values))]
        m.d.sync += [copy.eq(value) for copy, value in zip(snapshot, values, strict=True)]
        beat_q = Signal(32 << r_stride, reset_less=True)
        # The counter word in two registered steps: of each pair by the address's lowest
        # bit in the r_en cycle, then the pair.
        pairs = [Signal(32, name=f"counter_pair_{k}", reset_less=True)
                 for k in range((len(snapshot) + 1) // 2)]
        words = snapshot + [Const(0, 32)] * (len(snapshot) % 2)
        m.d.sync += [pair.eq(Mux(bus.addr[0], words[2 * k + 1], words[2 * k]))
                     for k, pair in enumerate(pairs)]
        counter_q = Signal(32)
        m.d.sync += [beat_q.eq(out_rd.data), counter_q.eq(Array(pairs)[r_addr[1:3]])]
        beat_word = beat_q.word_select(r_addr[:r_stride], 32) if r_stride else beat_q
        m.d.comb += bus.r_data.eq(Mux(r_results, beat_word, counter_q))
        return m
