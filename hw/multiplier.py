"""A pipelined multiplier that lands in a DSP block with its registers."""

from amaranth import ClockSignal, Instance, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Multiplier"]


class Multiplier(wiring.Component):
    """``p = a × b``, :attr:`LATENCY` cycles after ``a`` and ``b`` are presented.

    Three register stages: the operands, the product, the product again. On an ECP5
    (``platform.family == "ecp5"``) with operands of at most 18 bits this is a
    ``MULT18X18D`` with its input and output registers, followed by one fabric register
    that takes up the routing out of the DSP row: a DSP used without its registers puts its
    multiplier's delay and the routing into and out of it on one path, which alone keeps a
    design well short of its clock target there. Elsewhere (simulation, iCE40, Xilinx) the same
    registers surround ``a * b`` and the synthesis tool places them (Yosys packs them into
    the iCE40's ``SB_MAC16``). The registers have no reset, like a DSP's.

    Parameters
    ----------
    a_shape, b_shape : Shape
        Operand shapes (signed or unsigned).

    Members
    -------
    a, b : In
    p : Out
        The full product (the shape Amaranth gives ``a * b``).
    """

    LATENCY = 3

    def __init__(self, a_shape, b_shape):
        self._a_shape, self._b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        p_shape = (Signal(self._a_shape) * Signal(self._b_shape)).shape()
        super().__init__({"a": In(self._a_shape), "b": In(self._b_shape), "p": Out(p_shape)})

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        a_shape, b_shape = self._a_shape, self._b_shape
        out = Signal.like(self.p, name="product_out", reset_less=True)
        p_r = Signal.like(self.p, name="product_r", reset_less=True)
        m.d.sync += p_r.eq(out)
        m.d.comb += self.p.eq(p_r)
        if (getattr(platform, "family", None) == "ecp5" and a_shape.width <= 18 and
                b_shape.width <= 18):
            a18 = Signal(signed(18) if a_shape.signed else unsigned(18))
            b18 = Signal(signed(18) if b_shape.signed else unsigned(18))
            p36 = Signal(36)
            m.d.comb += [a18.eq(self.a), b18.eq(self.b), out.eq(p36[:len(out)])]
            m.submodules.dsp = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
                p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED",
                p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
                i_SIGNEDA=int(a_shape.signed), i_SIGNEDB=int(b_shape.signed),
                i_SOURCEA=0, i_SOURCEB=0, i_CLK0=ClockSignal("sync"), i_CE0=1, i_RST0=0,
                **{f"i_A{i}": a18[i] for i in range(18)},
                **{f"i_B{i}": b18[i] for i in range(18)},
                **{f"i_C{i}": 0 for i in range(18)},
                **{f"o_P{i}": p36[i] for i in range(36)},
            )
        else:
            a_r = Signal(a_shape, name="a_r", reset_less=True)
            b_r = Signal(b_shape, name="b_r", reset_less=True)
            m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), out.eq(a_r * b_r)]
        return m
