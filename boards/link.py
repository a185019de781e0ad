"""The gateware end of the host link: frames in, commands on the engine bus, replies out.

See :mod:`boards.protocol` for the frame format and ``docs/link-protocol.md`` for the
commands. One command is handled at a time; bytes that arrive while a command runs or
its reply is sent are dropped (the host waits for each reply).
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.synthesis import no_collision

from .bus import EngineSignature
from .deframer import Deframer
from .executor import Executor
from .framer import Framer
from .protocol import COUNTERS_SPACE, Space

__all__ = ["FrameLink", "MAGIC"]

#: First word of every ``INFO`` reply ("NNA1").
MAGIC = 0x4E4E4131


class FrameLink(wiring.Component):
    """Receives request frames, checks length and CRC, executes them, sends the reply.

    ``rx`` → :class:`~boards.deframer.Deframer` (payload into the frame buffer, one beat a
    frame) → :class:`~boards.executor.Executor` (the command on the engine bus) →
    :class:`~boards.framer.Framer` (reply header and words) → ``tx``. The sync byte of
    the reply to ``INFO``, ``READ`` or ``COUNTERS`` is on ``tx`` 10 cycles after the
    request's last byte on ``rx`` (3 in the deframer, 6 in the executor's checks, 1 in the
    framer), of a ``BAD_CRC`` 5 cycles after; each part's docstring gives its own timing.

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
        # Written by the deframer while the executor, which reads it, waits for the frame.
        m.submodules.buffer = buffer = Memory(shape=8, depth=self._max_payload, init=[],
                                              attrs=no_collision())
        m.submodules.deframer = deframer = Deframer(timeout_cycles=self._timeout,
                                                    max_payload=self._max_payload)
        m.submodules.executor = executor = Executor(spaces=self._spaces, info=self._info,
                                                    max_payload=self._max_payload)
        m.submodules.framer = framer = Framer()
        wiring.connect(m, deframer.buffer, buffer.write_port())
        wiring.connect(m, executor.buffer, buffer.read_port())
        wiring.connect(m, wiring.flipped(self.rx), deframer.rx)
        wiring.connect(m, deframer.frame, executor.frame)
        wiring.connect(m, executor.reply, framer.reply)
        wiring.connect(m, executor.words, framer.words)
        m.d.comb += executor.sent.eq(framer.sent)
        wiring.connect(m, framer.tx, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.engine), executor.engine)
        return m
