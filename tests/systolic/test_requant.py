# amaranth: UnusedElaboratable=no
"""Requantization: the golden model against each rounding path's definition, and the
Requantizer (Amaranth simulator) against the golden model."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.systolic.config import ROUNDING_MODES
from hw.systolic.requant import Requantizer
from quantize.int8 import quantize_multiplier
from sim.golden.systolic import INT32_MAX, INT32_MIN, ROUNDINGS, requantize

# --- the definitions, on exact rationals -------------------------------------------------------

def _half_up(q: Fraction) -> int:
    """Nearest integer, ties toward +infinity."""
    return floor(q + Fraction(1, 2))


def _half_away(q: Fraction) -> int:
    """Nearest integer, ties away from zero."""
    return _half_up(q) if q >= 0 else -_half_up(-q)


def _int32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def reference(x, multiplier, shift, zp=0, lo=-128, hi=127, rounding="double") -> int:
    """One value, written from the kernels' arithmetic: TFLite's MultiplyByQuantizedMultiplier
    (double), its TFLITE_SINGLE_ROUNDING variant (single), ruy's x86 SIMD kernels (ruy_x86)."""
    x, m, s = int(x), int(multiplier), int(shift)
    if rounding == "single":
        y = _half_up(Fraction(x * m, 1 << (31 - s)))
        y = min(max(y, INT32_MIN), INT32_MAX)
    else:
        # the left shift is an int32 shift (wraps); the doubling high multiply rounds
        # x*m/2^31 to nearest, ties upward, for a multiplier >= 0 in both kernels
        high = _half_up(Fraction(_int32(x << max(s, 0)) * m, 1 << 31))
        scaled = Fraction(high, 1 << max(-s, 0))
        y = _half_away(scaled) if rounding == "double" else _half_up(scaled)
    return min(max(y + int(zp), int(lo)), int(hi))


def test_modes_agree_between_config_hw_and_golden():
    assert ROUNDING_MODES == ROUNDINGS == ("double", "single", "ruy_x86")
    for mode in ROUNDING_MODES:
        Requantizer(mode)
    with pytest.raises(ValueError, match="ruy_x86"):
        Requantizer("nearest")
    with pytest.raises(ValueError, match="ruy_x86"):
        requantize(1, 1 << 30, 0, rounding="nearest")


def test_the_three_paths_measured_against_litert():
    """Values where the paths part, each measured on LiteRT 2.3 (test_litert_rounding.py
    checks whole layers)."""
    # FULLY_CONNECTED reference kernel (single) vs the double-rounding CONV_2D one
    assert requantize(34524, 1863092033, -9, -128, rounding="double") == -69
    assert requantize(34524, 1863092033, -9, -128, rounding="single") == -70
    # ruy's x86 kernels break the final shift's tie (-3.5) upward
    assert requantize(-1297, 1483955109, -8, 46, rounding="double") == 42
    assert requantize(-1297, 1483955109, -8, 46, rounding="ruy_x86") == 43


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_hand_cases(rounding):
    half = 1 << 30                                    # 0.5 in Q0.31
    cases = {  # (x, multiplier, shift): double, single, ruy_x86
        (3, half, 0): (2, 2, 2),                      # 1.5
        (-3, half, 0): (-1, -1, -1),                  # -1.5: the high multiply rounds up
        (5, half, -1): (2, 1, 2),                     # 2.5 -> 3, then 1.5; single: 1.25
        (-6, half, -1): (-2, -1, -1),                 # -3 / 2 = -1.5
        (-7, half, -1): (-2, -2, -1),                 # -3.5 -> -3, then -1.5; single -1.75
        (-20, half, -3): (-1, -1, -1),                # -10 / 8 = -1.25
        (-12, half, -2): (-2, -1, -1),                # -6 / 4 = -1.5
        (12, half, -2): (2, 2, 2),                    # 1.5
    }
    col = ROUNDINGS.index(rounding)
    for (x, m, s), want in cases.items():
        assert int(requantize(x, m, s, rounding=rounding)) == want[col], (x, m, s)
        assert reference(x, m, s, rounding=rounding) == want[col], (x, m, s)


def _vectors(rng, n):
    """Random and edge-case (x, multiplier, shift, zero point, act_min, act_max)."""
    x = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    mult = rng.integers(1 << 30, INT32_MAX, n, endpoint=True)
    shift = rng.integers(-31, 30, n, endpoint=True)
    # int32 extremes, 0 and +-1 against the largest and smallest multipliers
    x[:8] = [INT32_MIN, INT32_MAX, 0, -1, 1, INT32_MIN + 1, 1 << 30, -(1 << 30)]
    x[8:16] = INT32_MIN
    mult[8:16] = [INT32_MAX, 1 << 30, 0, 1, INT32_MAX - 1, (1 << 31) - 2, 3, 1 << 29]
    shift[16:24] = [-31, 30, 0, -1, 1, -30, 29, -31]
    x[24:32] = INT32_MAX
    shift[24:32] = [30, 29, 1, 0, -1, -30, -31, 16]        # saturation (single), wrap
    # exact ties of the final shift, both signs: multiplier 0.5, x = (2j + 1) * 2^r
    r = rng.integers(1, 31, 64)
    j = rng.integers(0, np.minimum(1 << (30 - r), 1 << 10))          # x stays an int32
    sign = rng.choice([-1, 1], 64)
    x[32:96] = sign * (2 * j + 1) << r
    mult[32:96], shift[32:96] = 1 << 30, -r
    # values that land inside int8
    x[96::3] = rng.integers(-(1 << 14), 1 << 14, len(x[96::3]))
    shift[96::3] = rng.integers(-14, 1, len(shift[96::3]))
    zp = rng.integers(-128, 127, n, endpoint=True)
    lo = rng.integers(-128, 0, n, endpoint=True)
    hi = rng.integers(0, 127, n, endpoint=True)
    return x, mult, shift, zp, lo, hi


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_golden_matches_the_definition(rounding):
    rng = np.random.default_rng(20 + ROUNDINGS.index(rounding))
    n = 20_000
    x, mult, shift, zp, lo, hi = _vectors(rng, n)
    got = [int(requantize(x[i], mult[i], shift[i], zp[i], lo[i], hi[i], rounding))
           for i in range(n)]
    want = [reference(x[i], mult[i], shift[i], zp[i], lo[i], hi[i], rounding) for i in range(n)]
    bad = [i for i in range(n) if got[i] != want[i]]
    first = [(int(x[i]), got[i], want[i]) for i in bad[:3]]
    assert not bad, f"{len(bad)} of {n} differ, first (x, golden, definition) {first}"
    # per channel: one call on a (rows, N) array gives the same
    acc = x[:3000].reshape(100, 30)
    block = requantize(acc, mult[:30], shift[:30], 5, -100, 100, rounding)
    assert [int(v) for v in block.ravel()] == [
        reference(acc.flat[i], mult[i % 30], shift[i % 30], 5, -100, 100, rounding)
        for i in range(3000)]
    assert len(set(want)) > 200


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_saturation_and_extremes(rounding):
    # largest product, largest left shift: single saturates int32; the others wrap x << 30
    assert requantize(INT32_MAX, INT32_MAX, 30, rounding=rounding) == (
        127 if rounding == "single" else -128)
    assert requantize(INT32_MIN, INT32_MAX, 0, rounding=rounding) == -128
    assert requantize(INT32_MIN, INT32_MAX, -31, rounding=rounding) == -1
    assert requantize(INT32_MIN, 1 << 30, -31, rounding=rounding) == (
        -1 if rounding == "double" else 0)                  # -0.5 rounded
    # 0.5 - 2^-32: the high multiply rounds it to 0.5 first, which two roundings take to 1
    assert requantize(INT32_MAX, 1 << 30, -31, rounding=rounding) == (
        0 if rounding == "single" else 1)
    assert requantize(12345, 0, 7, 9, rounding=rounding) == 9           # multiplier 0
    # bounds of the parameters
    for bad in ({"multiplier": 1 << 31, "shift": 0}, {"multiplier": -1, "shift": 0},
                {"multiplier": 1 << 30, "shift": 31}, {"multiplier": 1 << 30, "shift": -32}):
        with pytest.raises(ValueError):
            requantize(1, rounding=rounding, **bad)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_quantize_multiplier_edges(rounding):
    """QuantizeMultiplier's edges land on parameters every path accepts: a mantissa that
    rounds to 2^31 becomes 2^30 one shift up, tiny factors become 0, huge ones clamp."""
    real = 1 - 2.0 ** -40                                 # rounds to 2^31 at shift 0
    assert quantize_multiplier(real) == (1 << 30, 1)
    assert quantize_multiplier(real / 256) == (1 << 30, -7)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)
    assert quantize_multiplier(2.0 ** 40) == ((1 << 31) - 1, 30)
    for acc in (-300, -129, -1, 0, 77, 255, 12_800):
        assert requantize(acc, 1 << 30, 1, rounding=rounding) == min(max(acc, -128), 127)
        y = int(requantize(acc, 1 << 30, -7, rounding=rounding))
        assert y == reference(acc, 1 << 30, -7, rounding=rounding)
        # one rounding is within half a step; two add at most half of the first's 1/128
        assert abs(y - acc / 256) <= 0.5 + (0 if rounding == "single" else 1 / 256)
    assert requantize(10 ** 6, (1 << 31) - 1, 30, rounding=rounding) == (
        127 if rounding == "single" else requantize(_int32(10 ** 6 << 30), (1 << 31) - 1, 0,
                                                    rounding=rounding))


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_requantizer_matches_golden(rounding):
    rng = np.random.default_rng(7)
    n = 400
    x, mult, shift, zp, lo, hi = _vectors(rng, n)
    want = [int(requantize(x[i], mult[i], shift[i], zp[i], lo[i], hi[i], rounding))
            for i in range(n)]
    dut = Requantizer(rounding)
    got = []

    async def producer(ctx):
        for i in range(n):
            ctx.set(dut.valid, 1)
            ctx.set(dut.x, int(x[i]))
            ctx.set(dut.multiplier, int(mult[i]))
            ctx.set(dut.shift, int(shift[i]))
            ctx.set(dut.zero_point, int(zp[i]))
            ctx.set(dut.act_min, int(lo[i]))
            ctx.set(dut.act_max, int(hi[i]))
            await ctx.tick()
            # zero point and bounds are held by the caller for the pipeline's duration
            for _ in range(dut.latency):
                ctx.set(dut.valid, 0)
                await ctx.tick()

    async def consumer(ctx):
        while len(got) < n:
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    mismatches = [(i, got[i], want[i]) for i in range(n) if got[i] != want[i]]
    assert not mismatches, f"{len(mismatches)} mismatches, first {mismatches[:5]}"
    # the cases reach many output codes and clamp at both bounds
    assert len(set(want)) > 20
    assert sum(want[i] == hi[i] for i in range(n)) > 10
    assert sum(want[i] == lo[i] for i in range(n)) > 10
    # and the three paths part on them: ties of the final shift among the cases
    others = [m for m in ROUNDINGS if m != rounding]
    for other in others:
        assert any(int(requantize(x[i], mult[i], shift[i], zp[i], lo[i], hi[i], other))
                   != want[i] for i in range(n)), other
