"""The gateware end of the host link: frames in, commands on the engine bus, replies out.

See :mod:`boards.protocol` for the frame format and ``docs/link-protocol.md`` for the
commands. One command is handled at a time; bytes that arrive while a command runs or
its reply is sent are dropped (the host waits for each reply).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .bus import EngineSignature
from .crc import CRC_INIT, crc16_update
from .protocol import COUNTERS_SPACE, REPLY_SYNC, REQUEST_SYNC, Command, Space, Status

__all__ = ["FrameLink", "MAGIC"]

#: First word of every ``INFO`` reply ("NNA1").
MAGIC = 0x4E4E4131


class FrameLink(wiring.Component):
    """Receives request frames, checks length and CRC, executes them, sends the reply.

    Parameters
    ----------
    spaces : sequence of Space
        The engine adapter's address spaces; must include ``COUNTERS_SPACE``.
    info : sequence of int
        Words returned by ``INFO`` after ``MAGIC`` and ``max_payload``.
    timeout_cycles : int
        A frame that stays silent this long is answered ``TRUNCATED`` (or ``BAD_LENGTH``
        if it was already too long) and the link listens for the next sync byte.
    max_payload : int
        Request payload buffer in bytes (a ``WRITE`` carries up to ``(max_payload-4)/4``
        words); longer requests are answered ``BAD_LENGTH``.

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes (always ready; the link's own decisions are registered, so bytes
        come at most one every other cycle, as from a UART).
    tx : Out(stream.Signature(8))
        Reply bytes.
    engine : In(EngineSignature())
        The engine adapter, seen from the master side.
    """

    def __init__(self, *, spaces, info=(), timeout_cycles: int, max_payload: int = 1024):
        spaces = tuple(spaces)
        if not all(isinstance(s, Space) for s in spaces):
            raise TypeError("spaces must be boards.protocol.Space objects")
        if len({s.id for s in spaces}) != len(spaces):
            raise ValueError("space ids must be distinct")
        if COUNTERS_SPACE not in {s.id for s in spaces}:
            raise ValueError(f"the engine adapter must expose its counters as space "
                             f"{COUNTERS_SPACE:#x}")
        if max_payload < 8 or max_payload % 4 or max_payload > 0xFFFF:
            raise ValueError(f"max_payload must be a multiple of 4 in 8..65532, "
                             f"not {max_payload}")
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be at least 16, not {timeout_cycles}")
        self._spaces = spaces
        self._info = (MAGIC, max_payload, *(int(w) & 0xFFFFFFFF for w in info))
        self._timeout = timeout_cycles
        self._max_payload = max_payload
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "engine": In(EngineSignature()),
        })

    @property
    def spaces(self):
        return self._spaces

    @property
    def info(self):
        return self._info

    def elaborate(self, platform):
        m = Module()
        # Never read at the address being written (see boards/synth.py, _NO_COLLISION).
        m.submodules.buffer = buffer = Memory(shape=8, depth=self._max_payload, init=[])
        buf_w = buffer.write_port()
        buf_r = buffer.read_port()
        m.submodules.info_rom = info_rom = Memory(shape=32, depth=len(self._info),
                                                  init=self._info)
        info_r = info_rom.read_port()
        bus = self.engine.bus

        cmd = Signal(8)
        length = Signal(16)
        index = Signal(16)
        header = Signal(48)           # the first 6 payload bytes: space, addr, count
        crc_rx = Signal(16)
        crc_lo = Signal(8)
        timer = Signal(range(self._timeout + 2))
        timed_out = Signal()          # timer >= timeout, registered
        hdr_pos = Signal(6)           # one-hot: the header byte the next payload byte is
        left = Signal(16)             # payload bytes still to come
        last_byte = Signal()          # the next payload byte is the last (left == 1)
        h_space, h_addr, h_count = header[:8], header[8:32], header[32:48]

        status = Signal(8)
        reply_words = Signal(16)
        # The reply's data words come from: the info ROM, the engine bus, the cycle count.
        from_info, from_bus = Signal(name="from_info"), Signal(name="from_bus")
        from_cycles = Signal(name="from_cycles")
        word_index = Signal(16)
        word = Signal(32)
        byte_index = Signal(2)
        crc_tx = Signal(16)
        cycles = Signal(32)
        bus_space = Signal(8)
        bus_addr = Signal(24)
        # The address fans out to every adapter's decoder, so it counts from a copy of its
        # own (named ``*_copy_*``: kept apart by synthesis): the bus register's fanout put
        # its own increment 4.3 ns of routing away on the ECP5 (123.7 MHz).
        addr_count = Signal(24, name="bus_addr_copy_count")

        def next_addr(value):
            return [bus_addr.eq(value), addr_count.eq(value)]
        # Bus writes leave from registers (the word comes out of the buffer's block RAM);
        # the address moves on once the write is out.
        w_en, w_data = Signal(), Signal(32)
        m.d.sync += w_en.eq(0)
        with m.If(w_en):
            m.d.sync += next_addr(addr_count + 1)

        # Command checks, registered over three DECODE cycles (the link is never in a hurry
        # and they would otherwise set the design's Fmax).
        n_write = Signal(16)
        end_write = Signal(25)
        end_read = Signal(25)
        len_zero, len_write, len_read = Signal(), Signal(), Signal()
        write_ok, read_ok = Signal(), Signal()
        length_m1 = Signal(16)
        reply_words_m1 = Signal(16)
        m.d.sync += [length_m1.eq(length - 1), reply_words_m1.eq(reply_words - 1)]
        # Compares the state machine needs, one cycle behind their operands (which are
        # steady for several cycles when they are used): off the state decode's paths.
        at_end, last_word, has_words, crc_ok = Signal(), Signal(), Signal(), Signal()
        crc_hi = Signal(8)
        m.d.sync += [at_end.eq(index == length_m1), last_word.eq(word_index == reply_words_m1),
                     has_words.eq(reply_words != 0), crc_ok.eq(Cat(crc_lo, crc_hi) == crc_rx),
                     timed_out.eq(timer >= self._timeout)]
        # EXEC's decision, made in PLAN.
        go_write, go_run, to_counters = Signal(), Signal(), Signal()
        plan_status, plan_words, plan_source = Signal(8), Signal(16), Signal(2)
        # The command, decoded into one flag each during DECODE1.
        is_cmd = {c: Signal(name=f"is_{c.name.lower()}") for c in Command}
        # Block-RAM reads land in a register next to the RAM (a read straight into logic
        # costs the RAM's 5.8 ns clock-to-output and more on the ECP5).
        buf_q = Signal(8, reset_less=True)
        info_q = Signal(32, reset_less=True)
        m.d.sync += [buf_q.eq(buf_r.data), info_q.eq(info_r.data)]
        # Engine start and done pass through registers (start fans out into the engine,
        # done comes from deep in it); RUN's cycle count starts at -1 to make up for them.
        start, done = Signal(), Signal()
        m.d.sync += [start.eq(0), done.eq(self.engine.done)]
        m.d.comb += self.engine.start.eq(start)
        # Reply bytes enter the CRC a cycle after they are sent (TX_CRC_WAIT lets the last
        # one in).
        # Reply bytes leave through a register (the UART's enables are off the state decode).
        tx_valid, tx_byte = Signal(), Signal(8)
        tx_free = ~tx_valid
        m.d.comb += [self.tx.valid.eq(tx_valid), self.tx.payload.eq(tx_byte)]
        with m.If(self.tx.ready):
            m.d.sync += tx_valid.eq(0)
        crc_byte, crc_pending = Signal(8), Signal()
        m.d.sync += crc_pending.eq(0)
        with m.If(crc_pending):
            m.d.sync += crc_tx.eq(crc16_update(crc_tx, crc_byte))
        with m.Switch(h_space):
            for s in self._spaces:
                with m.Case(s.id):
                    m.d.sync += [
                        write_ok.eq(Const(s.writable) & (end_write <= s.depth)),
                        read_ok.eq(Const(s.readable) & (end_read <= s.depth)),
                    ]
            with m.Default():
                m.d.sync += [write_ok.eq(0), read_ok.eq(0)]
        counters_depth = next(s.depth for s in self._spaces if s.id == COUNTERS_SPACE)

        m.d.comb += [
            self.rx.ready.eq(1),
            buf_r.addr.eq(index),
            info_r.addr.eq(word_index),
            bus.space.eq(bus_space),
            bus.addr.eq(bus_addr),
            bus.w_en.eq(w_en),
            bus.w_data.eq(w_data),
        ]

        def reply(code, words=0, src=0):
            m.d.sync += [status.eq(code), reply_words.eq(words),   # src: 0 none, 1 info,
                         from_info.eq(src == 1), from_bus.eq(src == 2),  # 2 bus, 3 cycles
                         from_cycles.eq(src == 3)]
            m.next = "TX_SYNC"

        def receiving(next_state, on_byte=()):
            """Common to states inside a frame: a byte moves on, silence times out."""
            with m.If(rx_valid):
                m.d.sync += [timer.eq(0), timed_out.eq(0)]
                m.d.sync += on_byte
                if next_state is not None:
                    m.next = next_state
            with m.Elif(timed_out):
                m.next = "TIMED_OUT"
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        def send(byte, next_state, update_crc=True):
            with m.If(tx_free):
                m.d.sync += [tx_valid.eq(1), tx_byte.eq(byte)]
                if update_crc:
                    m.d.sync += [crc_byte.eq(byte), crc_pending.eq(1)]
                if next_state is not None:
                    m.next = next_state

        # Request bytes pass a register, with the compares the state machine makes on them
        # (the length's low byte, from the byte before, is steady by then).
        rx_valid, rx_byte = Signal(), Signal(8)
        rx_sync, len_over, len_zero_rx, len_one = Signal(), Signal(), Signal(), Signal()
        incoming_length = Cat(length[:8], self.rx.payload)
        m.d.sync += [rx_valid.eq(self.rx.valid), rx_byte.eq(self.rx.payload),
                     rx_sync.eq(self.rx.payload == REQUEST_SYNC),
                     len_over.eq(incoming_length > self._max_payload),
                     len_zero_rx.eq(incoming_length == 0), len_one.eq(incoming_length == 1)]
        # The header is the first 6 payload bytes: hdr_pos, set by the second length byte,
        # walks over them whatever the state (bytes past them, or a short frame's, are not
        # used as a header).
        with m.If(rx_valid):
            m.d.sync += hdr_pos.eq(hdr_pos << 1)
            for k in range(6):
                with m.If(hdr_pos[k]):
                    m.d.sync += header[8 * k:8 * k + 8].eq(rx_byte)
        with m.FSM():
            with m.State("HUNT"):
                with m.If(rx_valid & rx_sync):
                    m.d.sync += [crc_rx.eq(CRC_INIT), timer.eq(0), timed_out.eq(0)]
                    m.next = "CMD"
            with m.State("CMD"):
                receiving("LEN0", [cmd.eq(rx_byte), crc_rx.eq(crc16_update(crc_rx, rx_byte))])
            with m.State("LEN0"):
                receiving("LEN1", [length[:8].eq(rx_byte),
                                   crc_rx.eq(crc16_update(crc_rx, rx_byte))])
            with m.State("LEN1"):
                receiving(None, [length[8:].eq(rx_byte), index.eq(0), hdr_pos.eq(1),
                                 left.eq(Cat(length[:8], rx_byte)), last_byte.eq(len_one),
                                 crc_rx.eq(crc16_update(crc_rx, rx_byte))])
                with m.If(rx_valid):
                    with m.If(len_over):
                        m.next = "DISCARD"
                    with m.Elif(len_zero_rx):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [buf_w.addr.eq(index), buf_w.data.eq(rx_byte),
                             buf_w.en.eq(rx_valid)]
                receiving(None, [index.eq(index + 1), left.eq(left - 1),
                                 last_byte.eq(left == 2),
                                 crc_rx.eq(crc16_update(crc_rx, rx_byte))])
                with m.If(rx_valid):
                    with m.If(last_byte):
                        m.next = "CRC0"
            with m.State("CRC0"):
                receiving("CRC1", [crc_lo.eq(rx_byte)])
            with m.State("CRC1"):
                receiving("CRC_WAIT", [crc_hi.eq(rx_byte)])
            with m.State("CRC_WAIT"):               # crc_ok registers here
                m.next = "CRC_CHECK"
            with m.State("CRC_CHECK"):
                with m.If(crc_ok):
                    m.next = "DECODE1"
                with m.Else():
                    reply(Status.BAD_CRC)
            with m.State("TIMED_OUT"):
                reply(Status.TRUNCATED)
            with m.State("DISCARD"):
                with m.If(rx_valid):
                    m.d.sync += [timer.eq(0), timed_out.eq(0)]
                with m.Elif(timed_out):
                    reply(Status.BAD_LENGTH)
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            with m.State("DECODE1"):
                m.d.sync += [n_write.eq((length - 4) >> 2), len_zero.eq(length == 0),
                             len_write.eq((length >= 8) & (length[:2] == 0)),
                             len_read.eq((length == 6) & (h_count <= 0x3FFF))]
                m.d.sync += [flag.eq(cmd == c) for c, flag in is_cmd.items()]
                m.next = "DECODE2"
            with m.State("DECODE2"):
                m.d.sync += [end_write.eq(h_addr + n_write), end_read.eq(h_addr + h_count)]
                m.next = "DECODE3"
            with m.State("DECODE3"):
                m.next = "PLAN"      # write_ok/read_ok register here
            with m.State("PLAN"):    # what EXEC does, decided into registers
                m.d.sync += [go_write.eq(0), go_run.eq(0), to_counters.eq(0),
                             plan_words.eq(0), plan_source.eq(0)]

                def plan_reply(code, words=0, src=0):
                    m.d.sync += [plan_status.eq(code), plan_words.eq(words),
                                 plan_source.eq(src)]

                with m.If(is_cmd[Command.INFO]):
                    with m.If(~len_zero):
                        plan_reply(Status.BAD_LENGTH)
                    with m.Else():
                        plan_reply(Status.OK, len(self._info), 1)
                with m.Elif(is_cmd[Command.WRITE]):
                    with m.If(~len_write):
                        plan_reply(Status.BAD_LENGTH)
                    with m.Elif(~write_ok):
                        plan_reply(Status.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += go_write.eq(1)
                with m.Elif(is_cmd[Command.READ]):
                    with m.If(~len_read):
                        plan_reply(Status.BAD_LENGTH)
                    with m.Elif(~read_ok):
                        plan_reply(Status.BAD_ADDRESS)
                    with m.Else():
                        plan_reply(Status.OK, h_count, 2)
                with m.Elif(is_cmd[Command.RUN]):
                    with m.If(~len_zero):
                        plan_reply(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += go_run.eq(1)
                with m.Elif(is_cmd[Command.COUNTERS]):
                    with m.If(~len_zero):
                        plan_reply(Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += to_counters.eq(1)
                        plan_reply(Status.OK, counters_depth, 2)
                with m.Else():
                    plan_reply(Status.BAD_COMMAND)
                m.next = "EXEC"
            with m.State("EXEC"):
                m.d.sync += [bus_space.eq(Mux(to_counters, COUNTERS_SPACE, h_space)),
                             *next_addr(Mux(to_counters, 0, h_addr)), index.eq(4),
                             byte_index.eq(0)]
                with m.If(go_write):
                    m.next = "WRITE_FETCH"
                with m.Elif(go_run):
                    m.d.sync += [start.eq(1), cycles.eq(0xFFFFFFFF)]
                    m.next = "RUN_WAIT"
                with m.Else():
                    reply(plan_status, plan_words, plan_source)
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

            with m.State("TX_SYNC"):
                m.d.sync += [crc_tx.eq(CRC_INIT), word_index.eq(0)]
                send(REPLY_SYNC, "TX_STATUS", update_crc=False)
            with m.State("TX_STATUS"):
                send(status, "TX_LEN0")
            with m.State("TX_LEN0"):
                send(Cat(Const(0, 2), reply_words[:6]), "TX_LEN1")
            with m.State("TX_LEN1"):
                send(reply_words[6:14], None)
                with m.If(tx_free):
                    m.next = "TX_CRC_WAIT"
                    with m.If(has_words):
                        m.next = "TX_FETCH"
            with m.State("TX_FETCH"):
                m.d.comb += bus.r_en.eq(from_bus)
                m.next = "TX_WAIT"
            with m.State("TX_WAIT"):    # the bus's read latency is two cycles; info_q loads
                m.next = "TX_LATCH"
            with m.State("TX_LATCH"):
                # (an AND-OR of the sources with registered one-hot selects: decoding a
                # 2-bit source in front of the mux took 7.9 ns)
                m.d.sync += word.eq(Mux(from_info, info_q, 0) | Mux(from_bus, bus.r_data, 0) |
                                    Mux(from_cycles, cycles, 0))
                m.d.sync += byte_index.eq(0)
                m.next = "TX_BYTE"
            with m.State("TX_BYTE"):
                send(word[:8], None)
                with m.If(tx_free):
                    m.d.sync += [word.eq(word >> 8), byte_index.eq(byte_index + 1)]
                    with m.If(byte_index == 3):
                        m.d.sync += [word_index.eq(word_index + 1),
                                     *next_addr(addr_count + 1)]
                        m.next = "TX_FETCH"
                        with m.If(last_word):
                            m.next = "TX_CRC_WAIT"
            with m.State("TX_CRC_WAIT"):           # the last byte enters the CRC
                m.next = "TX_CRC0"
            with m.State("TX_CRC0"):
                send(crc_tx[:8], "TX_CRC1", update_crc=False)
            with m.State("TX_CRC1"):
                send(crc_tx[8:], "HUNT", update_crc=False)
        return m
