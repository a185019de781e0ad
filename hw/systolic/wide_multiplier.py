"""int32 × uint31 → int64 from four 18 × 18 multipliers, pipelined."""

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..multiplier import Multiplier
from ..synthesis import keep_copy

__all__ = ["WideMultiplier"]


class WideMultiplier(wiring.Component):
    """``p = a * b`` for a signed 32-bit ``a`` and an unsigned 31-bit ``b``, exact in 64 bits.

    The operands split at bit 17 (``a = ah 2^17 + al``, ``b = bh 2^17 + bl``) into four
    partial products of at most 18 × 18 bits, a :class:`Multiplier` (one DSP with its
    registers) each; each multiplier reads an operand register of its own (the four DSPs
    can sit rows apart, and one register feeding two of them is a long route on the ECP5),
    and its product passes one more register (see :class:`ProcessingElement`). The cross
    terms are summed while the outer ones, which do not overlap, are joined; then the final
    add.

    Members
    -------
    a : In(signed(32))
    b : In(unsigned(31))
    p : Out(signed(64))
        The product of the operands presented :attr:`latency` cycles earlier.
    """

    #: Operand copies, the multipliers, the register after them, the cross-term sum, the
    #: final add.
    LATENCY = 1 + Multiplier.LATENCY + 3

    def __init__(self):
        super().__init__({"a": In(signed(32)), "b": In(unsigned(31)), "p": Out(signed(64))})

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        keep = keep_copy(platform)
        al, ah = self.a[:17], self.a[17:].as_signed()
        bl, bh = self.b[:17], self.b[17:]
        parts = {}
        for name, a, b in (("ll", al, bl), ("lh", al, bh), ("hl", ah, bl), ("hh", ah, bh)):
            a_copy = Signal(a.shape(), name=f"a_copy_{name}", reset_less=True, attrs=keep)
            b_copy = Signal(b.shape(), name=f"b_copy_{name}", reset_less=True, attrs=keep)
            m.d.sync += [a_copy.eq(a), b_copy.eq(b)]
            m.submodules[f"mul_{name}"] = mul = Multiplier(a.shape(), b.shape())
            m.d.comb += [mul.a.eq(a_copy), mul.b.eq(b_copy)]
            parts[name] = Signal.like(mul.p, name=f"part_{name}", reset_less=True)
            m.d.sync += parts[name].eq(mul.p)
        # The outer terms do not overlap: the low one is below 2^34.
        mid = Signal(signed(34), reset_less=True)
        outer = Signal(signed(64), reset_less=True)
        m.d.sync += [mid.eq(parts["lh"] + parts["hl"]),
                     outer.eq(Cat(parts["ll"][:34], parts["hh"]).as_signed())]
        product = Signal(signed(64), reset_less=True)
        m.d.sync += product.eq(outer + (mid << 17))
        m.d.comb += self.p.eq(product)
        return m
