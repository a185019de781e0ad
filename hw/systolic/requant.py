"""TFLite-exact requantization of one output channel, pipelined."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..multiplier import Multiplier
from ..synthesis import keep_copy
from .wide_multiplier import WideMultiplier

__all__ = ["Requantizer"]

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_ROUNDINGS = ("double", "single", "ruy_x86")


class Requantizer(wiring.Component):
    """int32 accumulator → int8, as TFLite's ``MultiplyByQuantizedMultiplier`` + clamp.

    ``rounding="double"``: ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
    x << left, multiplier), right)``; ``rounding="single"``: ``TFLITE_SINGLE_ROUNDING``
    (one rounding right shift by ``31 - shift`` of the 64-bit product, saturated to int32);
    ``rounding="ruy_x86"``: as "double" but the right shift breaks ties upward instead of
    away from zero (ruy's x86 kernels). Then ``+ zero_point`` and clamp to
    ``[act_min, act_max]``. The definition is in
    ``sim/golden/systolic.py``; this is an implementation of it, cut into short stages
    for FPGA timing: the 32 × 31 product as four 18 × 18 partial products (a
    :class:`Multiplier`, one DSP with its registers, each), then each wide add, shift and
    compare in its own cycle.

    Parameters
    ----------
    rounding : str
        ``"double"``, ``"single"`` or ``"ruy_x86"``.

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

    #: Operand registers, left shift (two stages), a copy of the operands per multiplier,
    #: the multiplier and a register after it, then ten stages of adds, shifts and the
    #: clamp.
    LATENCY = 5 + Multiplier.LATENCY + 10

    def __init__(self, rounding: str = "double"):
        if rounding not in _ROUNDINGS:
            raise ValueError(f"rounding={rounding!r}: use one of {', '.join(_ROUNDINGS)}")
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
        # "ruy_x86" shares the two-rounding datapath of "double"; only the final shift's
        # round-up threshold differs (ties upward for either sign).
        double = self._rounding in ("double", "ruy_x86")
        ties_up = self._rounding == "ruy_x86"
        keep = keep_copy(platform)
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

        # 1: operand registers and shift amounts.
        x1 = Signal(signed(32), reset_less=True)
        mult1 = Signal(unsigned(31), reset_less=True)
        left1 = Signal(unsigned(5), reset_less=True)
        # the total right shift: double rounding 0..31 (5 bits: the coarse shift below is a
        # 4-way choice, not 8-way), single rounding 1..62
        right1 = Signal(unsigned(5 if double else 6), reset_less=True)
        # Only the valid bits are reset: the data registers (most of this block) need none,
        # and leaving them out keeps the reset net small.
        m.d.sync += [x1.eq(self.x), mult1.eq(self.multiplier)]
        if double:
            m.d.sync += [left1.eq(Mux(self.shift > 0, self.shift.as_unsigned()[:5], 0)),
                         right1.eq(Mux(self.shift < 0, -self.shift, 0))]
        else:
            m.d.sync += right1.eq(31 - self.shift)          # total shift, 1..62
        # 2, 3: left shift (int32 wrap), by the multiple of 4 and then the rest.
        x_coarse = Signal(signed(32), reset_less=True)
        x2 = Signal(signed(32), reset_less=True)
        mult2 = delayed(mult1, 2, "mult")
        right2 = delayed(right1, 2, "right")
        left2 = delayed(left1, 1, "left")
        m.d.sync += [x_coarse.eq((x1 << Cat(Const(0, 2), left1[2:]))[:32] if double else x1),
                     x2.eq((x_coarse << left2[:2])[:32] if double else x_coarse)]
        # 4 .. P+2: the 64-bit product (x2 and mult2 are at stage 3).
        P = WideMultiplier.LATENCY + 1
        m.submodules.product = wide = WideMultiplier()
        m.d.comb += [wide.a.eq(x2), wide.b.eq(mult2)]
        product = wide.p
        right_p1 = delayed(right2, P - 2, "right_p")      # right2 is at stage 3
        right_p3_in = delayed(right_p1, 1, "right_q")     # right_p3's input
        right_p3 = delayed(right_p3_in, 1, "right_q1")
        round_p2 = Signal(unsigned(64), reset_less=True)        # single rounding: 2^(right - 1)
        m.d.sync += round_p2.eq(Const(1, 64) << (right_p1 - 1)[:6])
        # P+3: add the nudge (double) or rounding bit (single).
        nudged = Signal(signed(66), reset_less=True)
        if ties_up:
            m.d.sync += nudged.eq(product + (1 << 30))
        elif double:
            # SaturatingRoundingDoublingHighMul: the multiplier is >= 0, so it never saturates.
            m.d.sync += nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)))
        else:
            m.d.sync += nudged.eq(product + round_p2)
        # P+4: double: C division by 2^31 (truncates toward zero; ruy_x86 floors after a
        # constant nudge, which for a multiplier >= 0 is the same); single: the rounding shift.
        # Each right shift by a run-time amount is cut in two: the multiple of 8 first, the
        # rest in the next stage (one 64-way shift is too deep for a cycle).
        high = Signal(signed(33), reset_less=True)
        wide_coarse = Signal(signed(66), reset_less=True)
        if ties_up:
            m.d.sync += high.eq(nudged >> 31)
        elif double:
            m.d.sync += high.eq((nudged + Mux(nudged < 0, (1 << 31) - 1, 0)) >> 31)
        else:
            m.d.sync += wide_coarse.eq(nudged >> Cat(Const(0, 3), right_p3[3:]))
        right_p4 = delayed(right_p3, 1, "right_r")
        # RoundingDivideByPOT's mask 2^right - 1 and its thresholds: the remainder rounds up
        # above (mask >> 1) + (x < 0), i.e. above_neg = 2^(right - 1) (1 if right = 0).
        mask = Signal(unsigned(32), reset_less=True)
        above = Signal(unsigned(32), reset_less=True)
        above_neg = Signal(unsigned(32), reset_less=True)
        # (each of the three from a copy of the shift of its own: one register fanning out
        # to all 96 compares is too wide a fan-out on the ECP5)
        r_mask, r_above, r_neg = (Signal.like(right_p3, name=f"right_copy_{n}", reset_less=True,
                                              attrs=keep) for n in ("mask", "above", "neg"))
        m.d.sync += [r.eq(right_p3_in) for r in (r_mask, r_above, r_neg)]
        top = (1 << len(right_p3)) - 1       # the largest shift the register holds

        def gt(r, k):                         # r > k, a constant where the width says so
            return r > k if k < top else Const(0, 1)

        def eq(r, k):
            return r == k if k <= top else Const(0, 1)
        m.d.sync += [mask.eq(Cat(gt(r_mask, i) for i in range(32))),
                     above.eq(Cat(gt(r_above, i + 1) for i in range(32))),
                     above_neg.eq(Cat(eq(r_neg, i + 1) | (eq(r_neg, 0) if i == 0 else 0)
                                      for i in range(32)))]
        # P+5: RoundingDivideByPOT's quotient by 2^(8k), remainder and threshold (double);
        # the rest of the rounding shift (single).
        coarse = Signal(signed(33), reset_less=True)
        wide = Signal(signed(66), reset_less=True)
        remainder = Signal(unsigned(32), reset_less=True)
        threshold = Signal(unsigned(32), reset_less=True)
        if double:
            m.d.sync += [coarse.eq(high >> Cat(Const(0, 3), right_p4[3:])),
                         remainder.eq(high.as_unsigned()[:32] & mask),
                         threshold.eq(above if ties_up else Mux(high < 0, above_neg, above))]
        else:
            m.d.sync += wide.eq(wide_coarse >> right_p4[:3])
        right_p5 = delayed(right_p4, 1, "right_s")
        # P+6: the quotient and the round-up bit (double); saturation to int32 (single).
        shifted = Signal(signed(33), reset_less=True)
        round_up = Signal(reset_less=True)
        if double:
            # remainder > threshold as the sign of their 33-bit difference: one carry chain
            # whose top sum bit is the answer (`>` became two chains and a LUT)
            m.d.sync += [shifted.eq(coarse >> right_p5[:3]),
                         round_up.eq((threshold - remainder)[32])]
        else:
            m.d.sync += shifted.eq(Mux(wide > _INT32_MAX, _INT32_MAX,
                                       Mux(wide < _INT32_MIN, _INT32_MIN, wide)))
        # P+7: rounded; P+8: plus the zero point; P+9: whether it fits int8, and its low
        # byte compared with the clamp bounds; P+10: clamped. (A 35-bit compare is a long
        # carry chain: two of them and the select, or the two alone, do not fit one
        # cycle.) A value outside int8 is beyond both bounds (int8 themselves): its
        # sign picks the bound.
        scaled = Signal(signed(34), reset_less=True)
        m.d.sync += scaled.eq(shifted + round_up)
        with_zp = Signal(signed(35), reset_less=True)
        # (the steady output parameters through registers of this requantizer's own)
        zero_point = Signal(signed(8), name="zero_point_q", reset_less=True)
        act_min = Signal(signed(8), name="act_min_q", reset_less=True)
        act_max = Signal(signed(8), name="act_max_q", reset_less=True)
        m.d.sync += [zero_point.eq(self.zero_point), act_min.eq(self.act_min),
                     act_max.eq(self.act_max)]
        m.d.sync += with_zp.eq(scaled + zero_point)
        # Its low byte again, in a register of its own for the two bound compares (the
        # wide sum's register fans out to the fit check too, and sat far from them).
        low_zp = Signal(signed(8), name="low_copy_zp", reset_less=True, attrs=keep)
        m.d.sync += low_zp.eq(scaled[:8] + zero_point)
        fits = Signal(name="fits_int8", reset_less=True)
        negative = Signal(name="negative", reset_less=True)
        low_above, low_below = Signal(name="low_above", reset_less=True), \
            Signal(name="low_below", reset_less=True)
        low = Signal(signed(8), reset_less=True)
        # The bound compares as the sign of a 9-bit difference: one carry chain whose top
        # sum bit is the answer (from `>` Yosys makes two chains and a LUT).
        m.d.sync += [fits.eq((with_zp[7:] == 0) | (with_zp[7:] == (1 << 28) - 1)),
                     negative.eq(with_zp[-1]), low.eq(with_zp[:8]),
                     low_above.eq((act_max - low_zp)[8]), low_below.eq((low_zp - act_min)[8])]
        y = Signal(signed(8), reset_less=True)
        with m.If(~fits):
            m.d.sync += y.eq(Mux(negative, act_min, act_max))
        with m.Else():
            m.d.sync += y.eq(Mux(low_above, act_max, Mux(low_below, act_min, low)))
        m.d.comb += self.y.eq(y)
        return m
