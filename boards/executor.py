"""Request frames executed: commands checked and carried out on the engine bus."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.synthesis import keep_copy

from .bus import EngineSignature
from .deframer import FrameLayout
from .framer import ReplyLayout, WordLayout
from .protocol import COUNTERS_SPACE, Command, Space, Status

__all__ = ["Executor"]


class Executor(wiring.Component):
    """Carries out the command of each ``frame`` beat and states its reply on ``reply`` and
    ``words``; takes the frame once ``sent`` says the reply is out.

    A frame the deframer already failed is answered with its status in the next cycle.
    Otherwise the command is decoded and checked over 4 cycles (the link is never in a
    hurry, and these compares would set the design's Fmax), then: ``WRITE`` moves a word
    to the bus every 4 cycles (its bytes come from the frame buffer), ``RUN`` starts the
    engine and replies the cycles from ``start`` to ``done``; the reply follows. Each data
    word is fetched 3 cycles after the one before it is taken (a bus read's two cycles
    and a register).

    Parameters
    ----------
    spaces : sequence of Space
        The engine adapter's address spaces, one of them ``COUNTERS_SPACE``.
    info : sequence of int
        The words of an ``INFO`` reply (``MAGIC``, ``max_payload``, the adapter's words).
    max_payload : int
        Size of the frame buffer in bytes.

    Members
    -------
    frame : In(stream.Signature(FrameLayout))
    buffer : In(ReadPort.Signature(...))
        Read port of the frame buffer (read latency 1): the ``WRITE`` payload.
    reply : Out(stream.Signature(ReplyLayout))
    words : Out(stream.Signature(WordLayout))
    sent : In(1)
        The reply's last byte is out.
    engine : In(EngineSignature())
        The engine adapter, seen from the master side.
    """

    def __init__(self, *, spaces, info, max_payload: int):
        spaces = tuple(spaces)
        if not all(isinstance(s, Space) for s in spaces):
            raise TypeError("spaces must be boards.protocol.Space objects")
        if COUNTERS_SPACE not in {s.id for s in spaces}:
            raise ValueError(f"the spaces must include the counters, space {COUNTERS_SPACE:#x}")
        if not info:
            raise ValueError("info must hold at least one word")
        self._spaces = spaces
        self._info = tuple(int(w) & 0xFFFFFFFF for w in info)
        super().__init__({
            "frame": In(stream.Signature(FrameLayout)),
            "buffer": In(ReadPort.Signature(addr_width=ceil_log2(max_payload), shape=8)),
            "reply": Out(stream.Signature(ReplyLayout)),
            "words": Out(stream.Signature(WordLayout)),
            "sent": In(1),
            "engine": In(EngineSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.info_rom = info_rom = Memory(shape=32, depth=len(self._info),
                                                  init=self._info)
        info_r = info_rom.read_port()
        bus, frame = self.engine.bus, self.frame.payload
        index = Signal(16)             # the frame buffer byte a WRITE takes next
        status, reply_words = Signal(8), Signal(16)
        # The reply's data words come from: the info ROM, the engine bus, the cycle count.
        from_info, from_bus = Signal(name="from_info"), Signal(name="from_bus")
        from_cycles = Signal(name="from_cycles")
        word_index, word, byte_index = Signal(16), Signal(32), Signal(2)
        cycles, bus_space, bus_addr = Signal(32), Signal(8), Signal(24)
        # The address fans out to every adapter's decoder, so it counts from a copy of its
        # own: the bus register's fanout would pull it away from its own increment on the
        # ECP5.
        addr_count = Signal(24, name="bus_addr_copy_count", attrs=keep_copy(platform))

        def next_addr(value):
            return [bus_addr.eq(value), addr_count.eq(value)]
        # Bus writes leave from registers (the word comes out of the buffer's block RAM);
        # the address moves on once the write is out.
        w_en, w_data = Signal(), Signal(32)
        m.d.sync += w_en.eq(0)
        with m.If(w_en):
            m.d.sync += next_addr(addr_count + 1)
        # Compares, one cycle behind their operands (steady for several cycles when they
        # are used): off the state decode's paths.
        length_m1, reply_words_m1 = Signal(16), Signal(16)
        at_end, last_word, has_words = Signal(), Signal(), Signal()
        m.d.sync += [length_m1.eq(frame.length - 1), reply_words_m1.eq(reply_words - 1),
                     at_end.eq(index == length_m1), last_word.eq(word_index == reply_words_m1)]
        # Block-RAM reads land in a register next to the RAM (a read straight into logic
        # puts the RAM's slow clock-to-output in front of that logic on the ECP5).
        buf_q = Signal(8, reset_less=True)
        info_q = Signal(32, reset_less=True)
        m.d.sync += [buf_q.eq(self.buffer.data), info_q.eq(info_r.data)]
        # Engine start and done pass through registers (start fans out into the engine,
        # done comes from deep in it); RUN's cycle count starts at -1 to make up for them.
        start, done = Signal(), Signal()
        m.d.sync += [start.eq(0), done.eq(self.engine.done)]
        m.d.comb += [
            self.engine.start.eq(start),
            self.buffer.addr.eq(index),
            info_r.addr.eq(word_index),
            bus.space.eq(bus_space), bus.addr.eq(bus_addr),
            bus.w_en.eq(w_en), bus.w_data.eq(w_data),
            self.reply.payload.status.eq(status), self.reply.payload.words.eq(reply_words),
            self.words.payload.data.eq(word), self.words.payload.last.eq(last_word),
        ]
        actions, plan = self._plan(m)

        def reply(code, words=0, src=0):
            m.d.sync += [status.eq(code), reply_words.eq(words), word_index.eq(0),
                         has_words.eq(words != 0),
                         from_info.eq(src == 1), from_bus.eq(src == 2),  # src: 0 none,
                         from_cycles.eq(src == 3)]              # 1 info, 2 bus, 3 cycles
            m.next = "REPLY"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.frame.valid):
                    with m.If(frame.status == Status.OK):
                        m.next = "DECODE1"
                    with m.Else():
                        reply(frame.status)
            for state, after in (("DECODE1", "DECODE2"), ("DECODE2", "DECODE3"),
                                 ("DECODE3", "PLAN"), ("PLAN", "EXEC")):
                with m.State(state):
                    actions[state]()
                    m.next = after
            with m.State("EXEC"):
                m.d.sync += [bus_space.eq(Mux(plan.to_counters, COUNTERS_SPACE, frame.space)),
                             *next_addr(Mux(plan.to_counters, 0, frame.addr)), index.eq(4),
                             byte_index.eq(0)]
                with m.If(plan.go_write):
                    m.next = "WRITE_FETCH"
                with m.Elif(plan.go_run):
                    m.d.sync += [start.eq(1), cycles.eq(0xFFFFFFFF)]
                    m.next = "RUN_WAIT"
                with m.Else():
                    reply(plan.status, plan.words, plan.source)
            with m.State("WRITE_FETCH"):
                m.next = "WRITE_WAIT"
            with m.State("WRITE_WAIT"):             # buf_q registers here
                m.next = "WRITE_TAKE"
            with m.State("WRITE_TAKE"):
                next_word = Cat(word[8:], buf_q)
                m.d.sync += [word.eq(next_word), index.eq(index + 1),
                             byte_index.eq(byte_index + 1)]
                m.next = "WRITE_FETCH"
                with m.If(byte_index == 3):
                    m.d.sync += [w_en.eq(1), w_data.eq(next_word)]
                    with m.If(at_end):
                        reply(Status.OK)
            with m.State("RUN_WAIT"):
                with m.If(done):
                    reply(Status.OK, 1, 3)
                with m.Else():
                    m.d.sync += cycles.eq(cycles + 1)

            with m.State("REPLY"):
                m.d.comb += self.reply.valid.eq(1)
                with m.If(self.reply.ready):
                    m.next = "FINISH"
                    with m.If(has_words):
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += bus.r_en.eq(from_bus)
                m.next = "WAIT"
            with m.State("WAIT"):       # the bus's read latency is two cycles; info_q loads
                m.next = "LATCH"
            with m.State("LATCH"):
                # (an AND-OR of the sources with registered one-hot selects: a 2-bit source
                # decoded in front of the mux adds its logic to the bus read's path)
                m.d.sync += word.eq(Mux(from_info, info_q, 0) | Mux(from_bus, bus.r_data, 0) |
                                    Mux(from_cycles, cycles, 0))
                m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += self.words.valid.eq(1)
                with m.If(self.words.ready):
                    m.d.sync += [word_index.eq(word_index + 1), *next_addr(addr_count + 1)]
                    m.next = "FETCH"
                    with m.If(last_word):
                        m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += self.frame.ready.eq(self.sent)
                with m.If(self.sent):
                    m.next = "IDLE"
        return m

    def _plan(self, m):
        """The command's checks (DECODE1..3) and EXEC's decision (PLAN), into registers.

        Returns the action of each of those states, and the decision: ``go_write``,
        ``go_run``, ``to_counters`` and else a reply (``status``, ``words``, ``source``).
        """
        frame = self.frame.payload
        n_write, end_write, end_read = Signal(16), Signal(25), Signal(25)
        len_zero, len_write, len_read = Signal(), Signal(), Signal()
        write_ok, read_ok = Signal(), Signal()
        is_cmd = {c: Signal(name=f"is_{c.name.lower()}") for c in Command}
        plan = SimpleNamespace(go_write=Signal(name="go_write"), go_run=Signal(name="go_run"),
                               to_counters=Signal(name="to_counters"),
                               status=Signal(8, name="plan_status"),
                               words=Signal(16, name="plan_words"),
                               source=Signal(2, name="plan_source"))
        with m.Switch(frame.space):
            for s in self._spaces:
                with m.Case(s.id):
                    m.d.sync += [
                        write_ok.eq(Const(s.writable) & (end_write <= s.depth)),
                        read_ok.eq(Const(s.readable) & (end_read <= s.depth)),
                    ]
            with m.Default():
                m.d.sync += [write_ok.eq(0), read_ok.eq(0)]
        counters_depth = next(s.depth for s in self._spaces if s.id == COUNTERS_SPACE)

        def decode1():
            length = frame.length
            m.d.sync += [n_write.eq((length - 4) >> 2), len_zero.eq(length == 0),
                         len_write.eq((length >= 8) & (length[:2] == 0)),
                         len_read.eq((length == 6) & (frame.count <= 0x3FFF))]
            m.d.sync += [flag.eq(frame.command == c) for c, flag in is_cmd.items()]

        def decode2():
            m.d.sync += [end_write.eq(frame.addr + n_write),
                         end_read.eq(frame.addr + frame.count)]

        def decode3():
            pass                       # write_ok/read_ok register here

        def reply(code, words=0, src=0):
            m.d.sync += [plan.status.eq(code), plan.words.eq(words), plan.source.eq(src)]

        def decide():
            m.d.sync += [plan.go_write.eq(0), plan.go_run.eq(0), plan.to_counters.eq(0),
                         plan.words.eq(0), plan.source.eq(0)]
            with m.If(is_cmd[Command.INFO]):
                with m.If(~len_zero):
                    reply(Status.BAD_LENGTH)
                with m.Else():
                    reply(Status.OK, len(self._info), 1)
            with m.Elif(is_cmd[Command.WRITE]):
                with m.If(~len_write):
                    reply(Status.BAD_LENGTH)
                with m.Elif(~write_ok):
                    reply(Status.BAD_ADDRESS)
                with m.Else():
                    m.d.sync += plan.go_write.eq(1)
            with m.Elif(is_cmd[Command.READ]):
                with m.If(~len_read):
                    reply(Status.BAD_LENGTH)
                with m.Elif(~read_ok):
                    reply(Status.BAD_ADDRESS)
                with m.Else():
                    reply(Status.OK, frame.count, 2)
            with m.Elif(is_cmd[Command.RUN]):
                with m.If(~len_zero):
                    reply(Status.BAD_LENGTH)
                with m.Else():
                    m.d.sync += plan.go_run.eq(1)
            with m.Elif(is_cmd[Command.COUNTERS]):
                with m.If(~len_zero):
                    reply(Status.BAD_LENGTH)
                with m.Else():
                    m.d.sync += plan.to_counters.eq(1)
                    reply(Status.OK, counters_depth, 2)
            with m.Else():
                reply(Status.BAD_COMMAND)

        return {"DECODE1": decode1, "DECODE2": decode2, "DECODE3": decode3,
                "PLAN": decide}, plan
