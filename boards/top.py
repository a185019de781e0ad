"""A board's top level: clock (PLL where the board has one set up), reset, UART pins, LEDs."""

from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .core import BoardCore
from .pll import ecp5_pll
from .uart import uart_divisor

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """:class:`BoardCore` on a real board.

    Parameters
    ----------
    board : boards.platforms.Board
    engine : the engine adapter
    clock_mhz : float
        Design clock; on a PLL board it is made from the oscillator, otherwise it must be
        the oscillator's frequency.
    baud : int
        UART rate of the host link.
    """

    def __init__(self, board, engine, *, clock_mhz: float | None = None, baud: int = 115200):
        self._board = board
        self._engine = engine
        self._clock_mhz = clock_mhz or board.clock_mhz
        self._baud = baud
        self.clock_mhz = self._clock_mhz     # updated to the PLL's exact output

    def elaborate(self, platform):
        m = Module()
        osc_mhz = platform.default_clk_frequency / 1e6
        m.domains.sync = sync = ClockDomain("sync")
        m.submodules.clk_buffer = clk_buffer = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        clk_in = clk_buffer.i
        if self._board.pll:
            pll, clk_out, locked, self.clock_mhz = ecp5_pll(clk_in, osc_mhz, self._clock_mhz)
            m.submodules.pll = pll
            m.d.comb += sync.clk.eq(clk_out)
            platform.add_clock_constraint(clk_out, self.clock_mhz * 1e6)
        else:
            if abs(self._clock_mhz - osc_mhz) > 1e-6:
                raise ValueError(f"the {self._board.name} design clock is its {osc_mhz:g} MHz "
                                 f"oscillator: leave out --clock-mhz")
            locked = Const(1)
            m.d.comb += sync.clk.eq(clk_in)
        # Power-on reset: hold the design until the clock is locked and, on iCE40, the
        # block RAMs are usable (15 us after configuration).
        m.domains.por = por = ClockDomain("por", reset_less=True)
        m.d.comb += por.clk.eq(sync.clk)
        settle = int(self.clock_mhz * 20) + 1
        por_count = Signal(range(settle + 1))
        with m.If(por_count != settle):
            m.d.por += por_count.eq(por_count + 1)
        if self._board.family == "ecp5":
            # The synchronous reset reaches most flip-flops of the design: it is
            # synchronised in the `por` domain and distributed on a global network (DCCA);
            # from an ordinary flip-flop it would be a long route across the chip.
            hold = Signal(2, init=3)
            m.d.por += hold.eq(Cat(~locked | (por_count != settle), hold[0]))
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=hold[1], i_CE=Const(1),
                                                 o_CLKO=sync.rst)
        else:
            m.submodules.reset_sync = ResetSynchronizer(~locked | (por_count != settle),
                                                        domain="sync")
        divisor = uart_divisor(self.clock_mhz * 1e6, self._baud)
        m.submodules.core = core = BoardCore(
            self._engine, divisor=divisor, timeout_cycles=int(self.clock_mhz * 1e6 * 0.05))
        # every subsignal raw (the ULX3S's UART also has RTS and DTR, left unused)
        uart = platform.request("uart", 0, dir={sub.name: "-" for sub in
                                                platform.lookup("uart", 0).ios})
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for k, value in enumerate((core.activity, locked)):
            m.submodules[f"led_{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(value)
        return m
