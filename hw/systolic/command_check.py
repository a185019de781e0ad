"""Accepts a GEMM command, checks its fields and starts it (or reports it bad)."""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import SystolicConfig
from .layouts import gemm_command

__all__ = ["CommandCheck"]


class CommandCheck(wiring.Component):
    """Takes a command while the engine is idle and, a stage a cycle, captures it, checks
    each field, combines the checks and starts it.

    The payload is registered every cycle and copied into ``cmd`` a cycle after the
    handshake, so the copy's enable is a register (the handshake's own logic in front of the
    enable of every command bit, a wide fan-out, is too long a path on the ECP5). The clamp
    bounds' order is compared as the payload is registered (``cmd``'s bounds also drive
    every requantizer: their register sits far from the check). ``start`` fans out to every
    control register and counter of the engine, hence the stages.

    A command is good when ``1 <= m <= max_m``, ``1 <= k <= max_k``, ``1 <= n <= max_n``
    and ``act_min <= act_max``.

    Parameters
    ----------
    config : SystolicConfig

    Members
    -------
    i_cmd : In(stream(gemm_command(config)))
        Ready while ``running`` is low and no command is being checked.
    running : In(1)
        The engine is running a command.
    cmd : Out(gemm_command(config))
        The command taken, from two cycles after its handshake until the next is taken.
    checking : Out(1)
        ``cmd`` is being checked (two cycles after the handshake).
    start : Out(1)
        A good command starts, :attr:`latency` cycles after its handshake.
    accepting : Out(1)
        A command is between its handshake and ``start`` (inclusive).
    error : Out(1)
        The last command was bad: set (or cleared) a cycle after ``start`` would be.
    """

    #: Cycles from the handshake to ``start``: capture, check, combine, start.
    LATENCY = 4

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"CommandCheck needs a SystolicConfig, not {config!r}")
        self._cfg = config
        super().__init__({
            "i_cmd": In(stream.Signature(gemm_command(config))), "running": In(1),
            "cmd": Out(gemm_command(config)), "checking": Out(1), "start": Out(1),
            "accepting": Out(1), "error": Out(1),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        cmd = Signal(gemm_command(cfg), name="cmd")
        cmd_in = Signal(gemm_command(cfg), name="cmd_in", reset_less=True)
        captured, checking, verifying, checked, ok = (
            Signal(name=n) for n in ("captured", "checking", "verifying", "checked", "ok"))
        fields_ok = Signal(4)
        bounds_in, bounds_ok = Signal(), Signal()
        payload = self.i_cmd.payload
        m.d.comb += [self.accepting.eq(captured | checking | verifying | checked),
                     self.i_cmd.ready.eq(~self.running & ~self.accepting),
                     self.cmd.eq(cmd), self.checking.eq(checking), self.start.eq(checked & ok)]
        m.d.sync += [checking.eq(0), verifying.eq(0), checked.eq(0), cmd_in.eq(payload),
                     bounds_in.eq(payload.act_min <= payload.act_max),
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
                                          bounds_ok))]
        with m.If(checked):
            m.d.sync += self.error.eq(~ok)
        return m
