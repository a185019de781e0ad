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
    ``sim/golden/systolic.py``; this is an implementation of it.

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

    LATENCY = 4

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
        valid = [Signal(name=f"valid_{i}") for i in range(self.latency)]
        m.d.sync += valid[0].eq(self.valid)
        for i in range(1, self.latency):
            m.d.sync += valid[i].eq(valid[i - 1])
        m.d.comb += self.o_valid.eq(valid[-1])

        # Stage 1: left shift (int32 wrap) and the product with the multiplier.
        right = Signal(unsigned(6))
        product = Signal(signed(64))
        if self._rounding == "double":
            shifted = Signal(signed(32))
            left = Mux(self.shift > 0, self.shift.as_unsigned(), 0)[:5]
            m.d.comb += shifted.eq((self.x << left)[:32])
            m.d.sync += [
                product.eq(shifted * self.multiplier),
                right.eq(Mux(self.shift < 0, -self.shift, 0)),
            ]
        else:
            m.d.sync += [
                product.eq(self.x * self.multiplier),
                right.eq(31 - self.shift),  # total shift, 1..62
            ]

        # Stage 2: rounding.
        high = Signal(signed(33))
        if self._rounding == "double":
            # SaturatingRoundingDoublingHighMul: the multiplier is >= 0, so it never saturates.
            nudged = Signal(signed(65))
            m.d.comb += nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)))
            # C division by 2^31 truncates toward zero.
            m.d.sync += high.eq(Mux(nudged >= 0, nudged >> 31, (nudged + (1 << 31) - 1) >> 31))
            right_2 = Signal(unsigned(6))
            m.d.sync += right_2.eq(right)
            # Stage 3: RoundingDivideByPOT.
            mask = Signal(unsigned(32))
            remainder = Signal(unsigned(32))
            threshold = Signal(unsigned(33))
            m.d.comb += [
                mask.eq((Const(1, 33) << right_2) - 1),
                remainder.eq(high.as_unsigned()[:32] & mask),
                threshold.eq((mask >> 1) + (high < 0)),
            ]
            scaled = Signal(signed(33))
            m.d.sync += scaled.eq((high >> right_2) + (remainder > threshold))
        else:
            # Stage 2: one rounding right shift, saturated to int32; stage 3 only aligns.
            round_bit = Signal(unsigned(64))
            m.d.comb += round_bit.eq(Const(1, 64) << (right - 1)[:6])
            wide = Signal(signed(66))
            m.d.comb += wide.eq((product + round_bit) >> right)
            m.d.sync += high.eq(Mux(wide > _INT32_MAX, _INT32_MAX,
                                    Mux(wide < _INT32_MIN, _INT32_MIN, wide)))
            scaled = Signal(signed(33))
            m.d.sync += scaled.eq(high)

        # Stage 4: zero point and clamp.
        with_zp = Signal(signed(34))
        m.d.comb += with_zp.eq(scaled + self.zero_point)
        m.d.sync += self.y.eq(Mux(with_zp > self.act_max, self.act_max,
                                  Mux(with_zp < self.act_min, self.act_min, with_zp)))
        return m
