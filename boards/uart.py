"""8N1 UART receiver and transmitter with a fixed clocks-per-bit divisor.

The host link's physical layer. Both sides speak ``lib.stream`` bytes; a UART cannot be
told to wait, so the receiver drops a byte that its consumer did not take before the next
one completed (the frame link above it is always ready while it listens).
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hw.synthesis import one_hot

__all__ = ["UARTReceiver", "UARTTransmitter", "uart_divisor"]


def uart_divisor(clk_freq: float, baud: int) -> int:
    """Clocks per bit for ``baud`` at ``clk_freq``; raises ``ValueError`` if the error > 2 %."""
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"baud rate {baud} is too fast for a {clk_freq / 1e6:g} MHz clock "
                         f"(need at least 4 clocks per bit): lower --baud")
    if abs(clk_freq / divisor - baud) / baud > 0.02:
        raise ValueError(f"baud rate {baud} cannot be made within 2 % from "
                         f"{clk_freq / 1e6:g} MHz: choose another --baud")
    return divisor


class UARTReceiver(wiring.Component):
    """Samples ``rx`` in the middle of each bit; emits a byte after a valid stop bit.

    Parameters
    ----------
    divisor : int
        Clocks per bit (at least 4).

    Members
    -------
    rx : In(1)
        The serial line (asynchronous; synchronised inside).
    o : Out(stream.Signature(8))
        Received bytes.
    framing_error : Out(1)
        Pulses when a stop bit was 0; that byte is dropped.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4, not {divisor}")
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)
        count = Signal(range(self._divisor))
        bit = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.framing_error.eq(0)
        with m.If(count != 0):
            m.d.sync += count.eq(count - 1)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += count.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count == 0):
                    m.d.sync += [count.eq(self._divisor - 1), bit.eq(0)]
                    m.next = "DATA"
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                with m.If(count == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), count.eq(self._divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(count == 0):
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                    m.next = "IDLE"
        one_hot(fsm)
        return m


class UARTTransmitter(wiring.Component):
    """Sends each byte of ``i`` as start bit, 8 data bits (LSB first), stop bit.

    Parameters
    ----------
    divisor : int
        Clocks per bit (at least 4).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; accepted one at a time when the line is idle.
    tx : Out(1)
        The serial line, high when idle.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4, not {divisor}")
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)
        count = Signal(range(self._divisor))
        bits = Signal(range(11))
        # `tick` is `count == 0` kept in a register, so the compare is off the shift enable.
        tick = Signal()
        m.d.comb += [self.tx.eq(shift[0]), self.i.ready.eq(bits == 0)]
        m.d.sync += tick.eq(0)
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shift.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             count.eq(self._divisor - 1), bits.eq(10)]
        with m.Elif(tick):
            m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), count.eq(self._divisor - 1),
                         bits.eq(bits - 1)]
        with m.Else():
            m.d.sync += [count.eq(count - 1), tick.eq(count == 1)]
        return m
