"""The EIE engine behind the board's word bus."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hw.eie.config import EieConfig
from hw.eie.layouts import cmd_layout, counter_layout, load_layout, result_layout
from hw.eie.top import EieTop
from hw.synthesis import no_collision

from .bus import ENGINE_IDS, EngineSignature
from .protocol import COUNTERS_SPACE, Space
from .stream_space import StreamSpace, stride_log2

__all__ = ["EieAdapter", "EIE_SPACES"]

#: Space ids of the EIE adapter.
EIE_SPACES = {"load": 1, "command": 2, "results": 3}


class EieAdapter(wiring.Component):
    """:class:`hw.eie.EieTop` with addressed-stream spaces and a result buffer.

    ``i_load`` beats (as :func:`sim.eie.load_beats` makes them) are written as ``2**stride``
    bus words each into space 1; the engine takes them while idle, much faster than the
    link delivers them. A layer command is written into space 2 and issued by ``RUN``,
    which finishes when the engine is idle again; result beats of an ``emit`` layer land in
    space 3 from address 0. The counters space is the engine's counter vector
    (:func:`hw.eie.layouts.counter_layout`) in 32-bit words.
    """

    def __init__(self, config: EieConfig):
        if not isinstance(config, EieConfig):
            raise TypeError(f"EieAdapter needs an EieConfig, not {config!r}")
        self._cfg = config
        self._top = EieTop(config)
        self._widths = {"load": load_layout(config).size, "command": cmd_layout(config).size,
                        "results": result_layout(config).size}
        self._counter_words = -(-counter_layout(config).size // 32)
        super().__init__(EngineSignature())

    @property
    def config(self) -> EieConfig:
        return self._cfg

    def stride_log2(self, space: str) -> int:
        return stride_log2(self._widths[space])

    @property
    def result_depth(self) -> int:
        return self._cfg.act_depth

    @property
    def spaces(self):
        c = self._cfg
        return (Space(1, "load", max(c.spmat_depth, c.ptr_depth // 2, c.act_depth,
                                     c.bias_depth, c.max_layers << c.index_bits)
                      << self.stride_log2("load"), writable=True),
                Space(2, "command", 1 << self.stride_log2("command"), writable=True),
                Space(3, "results", self.result_depth << self.stride_log2("results"),
                      readable=True),
                Space(COUNTERS_SPACE, "counters", self._counter_words, readable=True))

    @property
    def info(self):
        c = self._cfg
        return (ENGINE_IDS["eie"], c.pes, c.act_width, c.act_frac, c.weight_width,
                c.weight_frac, c.spmat_depth, c.ptr_depth, c.act_depth, c.bias_depth,
                c.max_layers)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = top = self._top
        bus = self.bus
        m.submodules.load_space = load = StreamSpace(self._widths["load"])
        m.submodules.command_space = command = StreamSpace(self._widths["command"])
        for name, space in (("load", load), ("command", command)):
            m.d.comb += [space.w_en.eq(bus.w_en & (bus.space == EIE_SPACES[name])),
                         space.w_addr.eq(bus.addr), space.w_data.eq(bus.w_data)]
        wiring.connect(m, load.o, top.i_load)
        staged = Signal(self._widths["command"])
        m.d.comb += command.o.ready.eq(1)
        with m.If(command.o.valid):
            m.d.sync += staged.eq(command.o.payload)

        issuing = Signal()
        settle = Signal(2)              # cycles since the command was taken
        running = Signal()
        m.d.comb += [top.i_cmd.valid.eq(issuing), top.i_cmd.payload.eq(staged)]
        with m.If(self.start):
            m.d.sync += issuing.eq(1)
        with m.If(issuing & top.i_cmd.ready):
            m.d.sync += [issuing.eq(0), running.eq(1), settle.eq(0)]
        with m.If(running & (settle != 3)):
            m.d.sync += settle.eq(settle + 1)
        finished = running & (settle == 3) & ~top.o_busy & ~top.o_result.valid
        with m.If(finished):
            m.d.sync += running.eq(0)
        m.d.comb += self.done.eq(finished)

        # Read only after the run, never at the address being written.
        out_mem = Memory(shape=self._widths["results"], depth=self.result_depth, init=[],
                         attrs=no_collision())
        m.submodules.results = out_mem
        out_wr, out_rd = out_mem.write_port(), out_mem.read_port()
        stored = Signal(range(self.result_depth + 1))
        m.d.comb += top.o_result.ready.eq(1)
        with m.If(self.start):
            m.d.sync += stored.eq(0)
        with m.If(top.o_result.valid & (stored < self.result_depth)):
            m.d.comb += [out_wr.addr.eq(stored), out_wr.data.eq(top.o_result.payload),
                         out_wr.en.eq(1)]
            m.d.sync += stored.eq(stored + 1)

        r_stride = self.stride_log2("results")
        m.d.comb += out_rd.addr.eq(bus.addr >> r_stride)
        r_results, r_addr = Signal(), Signal(24)     # the read's space is the results
        with m.If(bus.r_en):
            m.d.sync += [r_results.eq(bus.space == EIE_SPACES["results"]),
                         r_addr.eq(bus.addr)]
        # The counters change only while a command runs, and the link reads nothing until
        # RUN has finished, so a copy a cycle old is a consistent snapshot for a READ.
        counters = Signal(256 * -(-self._counter_words // 8))   # whole groups of 8 words
        m.d.sync += counters.eq(top.o_counters.as_value())
        # The bus holds the address from r_en on, and the read data is valid two cycles
        # after r_en: the counter word is selected within each group of 8 words by the
        # registered address's low bits and registered, then its group selected.
        words = self._counter_words
        groups = -(-words // 8)
        low_bits = max(1, min(3, (words - 1).bit_length()))
        in_group = Signal(32 * groups)
        m.d.sync += in_group.eq(Cat(*(
            counters[256 * k:256 * (k + 1)].word_select(r_addr[:low_bits], 32)
            for k in range(groups))))
        counter_word = (in_group.word_select(r_addr[3:3 + max(1, (groups - 1).bit_length())],
                                             32) if groups > 1 else in_group)
        # The result memory's read data registered as it leaves the block RAM (its
        # clock-to-output is most of a cycle), then the word and the space selected.
        results = Signal(32 << r_stride)
        m.d.sync += results.eq(out_rd.data)
        with m.If(r_results):
            m.d.comb += bus.r_data.eq(results.word_select(r_addr[:r_stride], 32)
                                      if r_stride else results)
        with m.Else():
            m.d.comb += bus.r_data.eq(counter_word)
        return m
