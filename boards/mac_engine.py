"""A single-MAC dense matrix-vector engine: the board framework's reference engine.

Small enough to fit any board, with a block RAM per operand and one multiplier, so the
host link, the drivers and the synthesis flow can be checked on their own, independently
of the systolic and EIE engines (which plug in the same way, see :mod:`boards.engines`).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hw.multiplier import Multiplier

from .bus import ENGINE_IDS, EngineSignature
from .protocol import COUNTERS_SPACE, Space

__all__ = ["MacEngine", "mac_golden"]


def mac_golden(weights, x):
    """y = W x in int32 (wrapping), from int8 ``weights`` (rows × cols) and int8 ``x``."""
    import numpy as np
    acc = np.asarray(weights, dtype=np.int64) @ np.asarray(x, dtype=np.int64)
    return ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)


class MacEngine(wiring.Component):
    """y = W x with int8 weights and inputs and int32 outputs, one MAC per cycle.

    Spaces: 1 ``weights`` (row-major, 4 int8 per word, little-endian), 2 ``inputs``
    (4 int8 per word), 3 ``outputs`` (one int32 per word), ``COUNTERS_SPACE``:
    [runs, busy cycles, MACs]. A run takes :meth:`run_cycles` cycles from ``start`` to
    ``done``: one MAC a cycle through a pipeline of operand read, operand bytes, a
    :class:`hw.multiplier.Multiplier`, accumulation and the output write.

    Parameters
    ----------
    rows, cols : int
        Matrix shape, each 1..4096.
    """

    def __init__(self, rows: int, cols: int):
        for name, value in (("rows", rows), ("cols", cols)):
            if not 1 <= value <= 4096:
                raise ValueError(f"mac engine {name} must be 1..4096, not {value}")
        self._rows, self._cols = rows, cols
        super().__init__(EngineSignature())

    #: Cycles from addressing a MAC's operands to its sum (and the output write).
    LATENCY = 3 + Multiplier.LATENCY

    def run_cycles(self) -> int:
        return self._rows * self._cols + self.LATENCY

    @property
    def spaces(self):
        return (Space(1, "weights", -(-self._rows * self._cols // 4), writable=True),
                Space(2, "inputs", -(-self._cols // 4), writable=True),
                Space(3, "outputs", self._rows, readable=True),
                Space(COUNTERS_SPACE, "counters", 3, readable=True))

    @property
    def info(self):
        return (ENGINE_IDS["mac"], self._rows, self._cols)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        sp = {s.name: s for s in self.spaces}
        bus = self.bus
        # At least 2 words each: a 1-word memory has a 0-bit address, which lints badly.
        m.submodules.weights = w_mem = Memory(shape=32, depth=max(2, sp["weights"].depth),
                                              init=[])
        m.submodules.inputs = x_mem = Memory(shape=32, depth=max(2, sp["inputs"].depth),
                                             init=[])
        m.submodules.outputs = y_mem = Memory(shape=32, depth=max(2, rows), init=[])
        w_wr, w_rd = w_mem.write_port(), w_mem.read_port()
        x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
        y_wr, y_rd = y_mem.write_port(), y_mem.read_port()

        runs, busy_cycles, macs = Signal(32), Signal(32), Signal(32)
        for port, space in ((w_wr, sp["weights"]), (x_wr, sp["inputs"])):
            m.d.comb += [port.addr.eq(bus.addr), port.data.eq(bus.w_data),
                         port.en.eq(bus.w_en & (bus.space == space.id))]
        # Reads: the space decoded as r_en comes, the data registered the cycle after.
        r_outputs = Signal()
        r_addr = Signal(2)
        r_data = Signal(32)
        m.d.comb += [y_rd.addr.eq(bus.addr), bus.r_data.eq(r_data)]
        with m.If(bus.r_en):
            m.d.sync += [r_outputs.eq(bus.space == sp["outputs"].id), r_addr.eq(bus.addr)]
        counter = Mux(r_addr == 0, runs, Mux(r_addr == 1, busy_cycles, macs))
        m.d.sync += r_data.eq(Mux(r_outputs, y_rd.data, counter))

        # Stage A: address the operands; stage B: multiply-accumulate, write a finished row.
        running = Signal()
        i = Signal(range(rows * cols))
        c = Signal(range(cols))
        r = Signal(range(rows))
        m.d.comb += [w_rd.addr.eq(i >> 2), x_rd.addr.eq(c >> 2)]
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_w_byte, a_x_byte = Signal(2), Signal(2)
        a_row = Signal(range(rows))
        m.d.sync += [a_valid.eq(running), a_first.eq(c == 0), a_last.eq(c == cols - 1),
                     a_w_byte.eq(i[:2]), a_x_byte.eq(c[:2]), a_row.eq(r)]
        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), i.eq(0), c.eq(0), r.eq(0), runs.eq(runs + 1)]
        with m.If(running):
            m.d.sync += [i.eq(i + 1), c.eq(c + 1), macs.eq(macs + 1)]
            with m.If(c == cols - 1):
                m.d.sync += [c.eq(0), r.eq(r + 1)]
            with m.If(i == rows * cols - 1):
                m.d.sync += running.eq(0)

        # Stage B: the operand bytes; then the multiplier; then the sum.
        w_b, x_b = Signal(signed(8)), Signal(signed(8))
        m.d.sync += [w_b.eq(w_rd.data.word_select(a_w_byte, 8)),
                     x_b.eq(x_rd.data.word_select(a_x_byte, 8))]
        m.submodules.multiplier = mul = Multiplier(signed(8), signed(8))
        m.d.comb += [mul.a.eq(w_b), mul.b.eq(x_b)]
        product = mul.p
        # Row flags travel alongside: stage B, then one stage per multiplier cycle.
        flags = [(a_valid, a_first, a_last, a_row)]
        for s in range(1 + Multiplier.LATENCY):
            stage = (Signal(name=f"valid_{s}"), Signal(name=f"first_{s}"),
                     Signal(name=f"last_{s}"), Signal(range(rows), name=f"row_{s}"))
            m.d.sync += [new.eq(old) for new, old in zip(stage, flags[-1], strict=True)]
            flags.append(stage)
        c_valid, c_first, c_last, c_row = flags[-1]
        busy_flags = [f[0] for f in flags[1:]]
        acc = Signal(32)
        with m.If(c_valid):
            m.d.sync += acc.eq(Mux(c_first, 0, acc) + product)
        # A finished row is written from the accumulator register a cycle later.
        d_write, d_row, d_done = Signal(), Signal(range(rows)), Signal()
        m.d.sync += [d_write.eq(c_valid & c_last), d_row.eq(c_row),
                     d_done.eq(c_valid & c_last & (c_row == rows - 1))]
        m.d.comb += [y_wr.addr.eq(d_row), y_wr.data.eq(acc), y_wr.en.eq(d_write),
                     self.done.eq(d_done)]
        with m.If(running | a_valid | Cat(*busy_flags, d_write).any()):
            m.d.sync += busy_cycles.eq(busy_cycles + 1)
        return m
