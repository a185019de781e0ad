"""TFLite-exact requantization of one output channel, pipelined."""

from amaranth import Const, Module, Mux, Signal, signed, unsigned
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
    (the 32 × 31 product in two halves, each wide add in its own cycle) for FPGA timing.

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

    LATENCY = 8

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
                reg = Signal.like(value, name=f"{name}_{i}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        # 1: left shift (int32 wrap), right shift amount, operand registers.
        x1 = Signal(signed(32))
        mult1 = Signal(unsigned(31))
        right1 = Signal(unsigned(6))
        if double:
            left = Mux(self.shift > 0, self.shift.as_unsigned(), 0)[:5]
            m.d.sync += [x1.eq((self.x << left)[:32]),
                         right1.eq(Mux(self.shift < 0, -self.shift, 0))]
        else:
            m.d.sync += [x1.eq(self.x), right1.eq(31 - self.shift)]  # total shift, 1..62
        m.d.sync += mult1.eq(self.multiplier)
        # 2: partial products; 3: the 64-bit product.
        lo2, hi2 = Signal(signed(49)), Signal(signed(48))
        m.d.sync += [lo2.eq(x1 * mult1[:16]), hi2.eq(x1 * mult1[16:])]
        product = Signal(signed(64))
        m.d.sync += product.eq(lo2 + (hi2 << 16))
        right3 = delayed(right1, 2, "right")
        # 4: add the nudge (double) or rounding bit (single); 5: shift and truncate.
        nudged = Signal(signed(66))
        high = Signal(signed(33))
        if double:
            # SaturatingRoundingDoublingHighMul: the multiplier is >= 0, so it never saturates.
            m.d.sync += nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)))
            # C division by 2^31 truncates toward zero.
            m.d.sync += high.eq(Mux(nudged >= 0, nudged >> 31, (nudged + (1 << 31) - 1) >> 31))
        else:
            round_bit = Signal(unsigned(64))
            m.d.comb += round_bit.eq(Const(1, 64) << (right3 - 1)[:6])
            m.d.sync += nudged.eq(product + round_bit)
            wide = Signal(signed(66))
            m.d.comb += wide.eq(nudged >> delayed(right3, 1, "right4"))
            m.d.sync += high.eq(Mux(wide > _INT32_MAX, _INT32_MAX,
                                    Mux(wide < _INT32_MIN, _INT32_MIN, wide)))
        right5 = delayed(right3, 2, "right5")
        # 6: RoundingDivideByPOT (double) as shifted value and round-up bit; 7: their sum.
        shifted = Signal(signed(33))
        round_up = Signal()
        if double:
            mask = Signal(unsigned(32))
            remainder = Signal(unsigned(32))
            threshold = Signal(unsigned(33))
            m.d.comb += [
                mask.eq((Const(1, 33) << right5) - 1),
                remainder.eq(high.as_unsigned()[:32] & mask),
                threshold.eq((mask >> 1) + (high < 0)),
            ]
            m.d.sync += [shifted.eq(high >> right5), round_up.eq(remainder > threshold)]
        else:
            m.d.sync += [shifted.eq(high), round_up.eq(0)]
        scaled = Signal(signed(34))
        m.d.sync += scaled.eq(shifted + round_up)
        # 8: zero point and clamp.
        with_zp = Signal(signed(35))
        m.d.comb += with_zp.eq(scaled + self.zero_point)
        m.d.sync += self.y.eq(Mux(with_zp > self.act_max, self.act_max,
                                  Mux(with_zp < self.act_min, self.act_min, with_zp)))
        return m
