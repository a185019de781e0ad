"""The board-independent part of a board: UART, frame link and engine adapter.

:class:`BoardCore` is what runs under Verilator as the simulated board (ports ``rx``/``tx``
only) and what :class:`boards.top.BoardTop` places on a real board behind its clock and
pins.
"""

import hashlib
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .link import FrameLink
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["BoardCore", "source_hash"]


_GATEWARE = ("bus.py", "core.py", "deframer.py", "eie_adapter.py", "executor.py", "framer.py",
             "link.py", "mac_engine.py", "protocol.py", "stream_space.py", "systolic_adapter.py",
             "uart.py")


def source_hash() -> str:
    """Hash of the ``boards/`` gateware sources (part of every cached build's key)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _GATEWARE:
        h.update(name.encode() + (here / name).read_bytes())
    return h.hexdigest()[:16]


class BoardCore(wiring.Component):
    """UART ↔ :class:`FrameLink` ↔ engine adapter.

    Parameters
    ----------
    engine : wiring.Component
        An engine adapter (members of ``EngineSignature``, attributes ``spaces``, ``info``).
    divisor : int
        Clocks per UART bit.
    timeout_cycles : int
        Silence inside a frame after which it is answered ``TRUNCATED``.
    max_payload : int
        Request buffer size in bytes.

    Members
    -------
    rx : In(1)
    tx : Out(1)
    activity : Out(1)
        High while the engine runs (for a LED).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    activity: Out(1)

    def __init__(self, engine, *, divisor: int, timeout_cycles: int, max_payload: int = 1024):
        self._engine = engine
        self._divisor = divisor
        self._timeout = timeout_cycles
        self._max_payload = max_payload
        super().__init__()

    @property
    def engine(self):
        return self._engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.uart_rx = uart_rx = UARTReceiver(self._divisor)
        m.submodules.uart_tx = uart_tx = UARTTransmitter(self._divisor)
        m.submodules.link = link = FrameLink(spaces=engine.spaces, info=engine.info,
                                             timeout_cycles=self._timeout,
                                             max_payload=self._max_payload)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, link.rx)
        wiring.connect(m, link.tx, uart_tx.i)
        wiring.connect(m, link.engine.bus, engine.bus)
        m.d.comb += [engine.start.eq(link.engine.start), link.engine.done.eq(engine.done)]
        with m.If(engine.start):
            m.d.sync += self.activity.eq(1)
        with m.If(engine.done):
            m.d.sync += self.activity.eq(0)
        return m
