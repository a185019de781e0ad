"""TFLite-exact requantization of one output channel, pipelined."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer"]

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class Requantizer(wiring.Component):
    """int32 accumulator → int8, as TFLite's ``MultiplyByQuantizedMultiplier`` + clamp.

    ``rounding="double"``: ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
    x << left, multiplier), right)``; ``rounding="single"``: ``TFLITE_SINGLE_ROUNDING``
    (one rounding right shift by ``31 - shift`` of the 64-bit product, saturated to int32).
    Then ``+ zero_point`` and clamp to ``[act_min, act_max]``. The definition is in
    ``sim/golden/systolic.py``; this is an implementation of it, cut into short stages
    for FPGA timing: the 32 × 31 product as four 18 × 18 partial products (one DSP each,
    registered), each wide add, shift and compare in its own cycle.

    Parameters
    ----------
    rounding : str
        ``"double"`` or ``"single"``.

    Members
    -------
    valid, x : In
        Input accumulator (already ``acc + bias`` wrapped to int32).
    multiplier, shift : In
        Non-negative int32 multiplier (31 bits) and shift in [-31, 30], left if positive.
    zero_point, act_min, act_max : In
        Output zero point and clamp bounds (int8); held steady by the caller.
    o_valid, y : Out
        Result, :attr:`latency` cycles after its input.
    """

    LATENCY = 12

    def __init__(self, rounding: str = "double"):
        if rounding not in ("double", "single"):
            raise ValueError(f"rounding={rounding!r}: use 'double' or 'single'")
        self._rounding = rounding
        super().__init__({
            "valid": In(1), "x": In(signed(32)), "multiplier": In(unsigned(31)),
            "shift": In(signed(6)), "zero_point": In(signed(8)), "act_min": In(signed(8)),
            "act_max": In(signed(8)), "o_valid": Out(1), "y": Out(signed(8)),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        double = self._rounding == "double"
        valid = [Signal(name=f"valid_{i}") for i in range(self.LATENCY)]
        m.d.sync += valid[0].eq(self.valid)
        for i in range(1, self.LATENCY):
            m.d.sync += valid[i].eq(valid[i - 1])
        m.d.comb += self.o_valid.eq(valid[-1])

        def delayed(value, stages, name):
            for i in range(stages):
                reg = Signal.like(value, name=f"{name}_d{i}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        # Names end in the stage whose register holds them (the input is stage 0).
        # 1: operand registers and shift amounts.
        x1 = Signal(signed(32))
        mult1 = Signal(unsigned(31))
        left1 = Signal(unsigned(5))
        right1 = Signal(unsigned(6))
        m.d.sync += [x1.eq(self.x), mult1.eq(self.multiplier)]
        if double:
            m.d.sync += [left1.eq(Mux(self.shift > 0, self.shift.as_unsigned()[:5], 0)),
                         right1.eq(Mux(self.shift < 0, -self.shift, 0))]
        else:
            m.d.sync += right1.eq(31 - self.shift)          # total shift, 1..62
        # 2: left shift (int32 wrap); constants that depend on the right shift alone.
        x2 = Signal(signed(32))
        mult2 = delayed(mult1, 1, "mult")
        right2 = delayed(right1, 1, "right")
        m.d.sync += x2.eq((x1 << left1)[:32] if double else x1)
        mask2 = Signal(unsigned(32))         # RoundingDivideByPOT: 2^right - 1,
        above2 = Signal(unsigned(32))        # remainder > above2 rounds up (x >= 0),
        above_neg2 = Signal(unsigned(32))    # remainder > above_neg2 rounds up (x < 0)
        round2 = Signal(unsigned(64))        # single rounding: 2^(right - 1)
        m.d.sync += [mask2.eq((Const(1, 33) << right1) - 1),
                     above2.eq(((Const(1, 33) << right1) - 1) >> 1),
                     above_neg2.eq(Mux(right1 == 0, 1, Const(1, 32) << (right1 - 1)[:5])),
                     round2.eq(Const(1, 64) << (right1 - 1)[:6])]
        # 3: four 18x18 partial products (a DSP each): x = xh 2^17 + xl, mult = mh 2^17 + ml.
        xl, xh = x2[:17], x2[17:].as_signed()
        ml, mh = mult2[:17], mult2[17:]
        p_ll3, p_lh3 = Signal(unsigned(34)), Signal(unsigned(31))
        p_hl3, p_hh3 = Signal(signed(33)), Signal(signed(30))
        m.d.sync += [p_ll3.eq(xl * ml), p_lh3.eq(xl * mh), p_hl3.eq(xh * ml),
                     p_hh3.eq(xh * mh)]
        # 4: the cross terms' sum; the outer terms do not overlap (p_ll < 2^34).
        mid4 = Signal(signed(34))
        outer4 = Signal(signed(64))
        m.d.sync += [mid4.eq(p_lh3 + p_hl3), outer4.eq(Cat(p_ll3, p_hh3).as_signed())]
        # 5: the 64-bit product.
        product5 = Signal(signed(64))
        m.d.sync += product5.eq(outer4 + (mid4 << 17))
        right6 = delayed(right2, 4, "right6")
        # 6: add the nudge (double) or rounding bit (single).
        nudged6 = Signal(signed(66))
        if double:
            # SaturatingRoundingDoublingHighMul: the multiplier is >= 0, so it never saturates.
            m.d.sync += nudged6.eq(product5 + Mux(product5 >= 0, 1 << 30, 1 - (1 << 30)))
        else:
            m.d.sync += nudged6.eq(product5 + delayed(round2, 3, "round"))
        # 7: double: C division by 2^31 (truncates toward zero); single: the rounding shift.
        high7 = Signal(signed(33))
        wide7 = Signal(signed(66))
        if double:
            m.d.sync += high7.eq((nudged6 + Mux(nudged6 < 0, (1 << 31) - 1, 0)) >> 31)
        else:
            m.d.sync += wide7.eq(nudged6 >> right6)
        right7 = delayed(right6, 1, "right7")
        mask7 = delayed(mask2, 5, "mask")
        above7 = delayed(above2, 5, "above")
        above_neg7 = delayed(above_neg2, 5, "above_neg")
        # 8: RoundingDivideByPOT's quotient, remainder and threshold (double);
        # saturation to int32 (single).
        shifted8 = Signal(signed(33))
        remainder8 = Signal(unsigned(32))
        threshold8 = Signal(unsigned(32))
        if double:
            m.d.sync += [shifted8.eq(high7 >> right7),
                         remainder8.eq(high7.as_unsigned()[:32] & mask7),
                         threshold8.eq(Mux(high7 < 0, above_neg7, above7))]
        else:
            m.d.sync += shifted8.eq(Mux(wide7 > _INT32_MAX, _INT32_MAX,
                                        Mux(wide7 < _INT32_MIN, _INT32_MIN, wide7)))
        # 9: the round-up bit.
        round_up9 = Signal()
        shifted9 = delayed(shifted8, 1, "shifted")
        if double:
            m.d.sync += round_up9.eq(remainder8 > threshold8)
        # 10: rounded; 11: plus the zero point; 12: clamped.
        scaled10 = Signal(signed(34))
        m.d.sync += scaled10.eq(shifted9 + round_up9)
        with_zp11 = Signal(signed(35))
        m.d.sync += with_zp11.eq(scaled10 + self.zero_point)
        m.d.sync += self.y.eq(Mux(with_zp11 > self.act_max, self.act_max,
                                  Mux(with_zp11 < self.act_min, self.act_min, with_zp11)))
        return m
