"""Properties of 16-bit fixed point (quantize/fixedpoint.py) and the TFLite int8 conventions
(quantize/int8.py): rounding error within half a step, saturation at the ends, requantization
multipliers within 2**-31, and non-finite or non-positive scales refused."""

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from quantize.fixedpoint import frac_bits_for, from_fixed, to_fixed
from quantize.int8 import (
    activation_params,
    dequantize,
    quantize_activations,
    quantize_bias,
    quantize_multiplier,
    quantize_weights_per_channel,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
widths = st.integers(2, 32)


@settings(deadline=None, max_examples=300)
@given(st.lists(finite, max_size=20), st.integers(-8, 24), widths)
def test_to_fixed_half_step_and_saturation(xs, frac, bits):
    x = np.array(xs, dtype=np.float64)
    q = to_fixed(x, frac, bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert q.dtype == np.int64 and ((q >= lo) & (q <= hi)).all()
    step = 2.0 ** -frac
    inside = (x >= lo * step) & (x <= hi * step)
    err = np.abs(from_fixed(q, frac) - x)
    assert (err[inside] <= step / 2 * (1 + 1e-12)).all()
    assert (q[x > hi * step] == hi).all() and (q[x < lo * step] == lo).all()
    # Halves round away from zero, so the code is odd-symmetric inside the range.
    sym = inside & (-x >= lo * step) & (-x <= hi * step)
    assert (to_fixed(-x, frac, bits)[sym] == -q[sym]).all()


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 15), widths)
def test_to_fixed_saturates_infinities_and_refuses_nan(frac, bits):
    hi = 2 ** (bits - 1) - 1
    assert to_fixed([math.inf, -math.inf], frac, bits).tolist() == [hi, -hi - 1]
    with pytest.raises(ValueError, match="NaN"):
        to_fixed([0.5, math.nan], frac, bits)


@settings(deadline=None, max_examples=300)
@given(st.floats(1e-30, 1e30), st.integers(2, 32))
def test_frac_bits_for_is_the_most_that_fits(max_abs, bits):
    f = frac_bits_for(max_abs, bits)
    limit = 2 ** (bits - 1) - 1
    assert f <= bits - 1
    q = to_fixed([max_abs, -max_abs], f, bits)
    assert abs(int(q[0])) <= limit and abs(int(q[1])) <= limit
    # The range at f covers max_abs (up to rounding); at f + 1 it would not.
    assert max_abs * 2.0 ** f <= limit * (1 + 1e-12)
    if f < bits - 1:
        assert max_abs * 2.0 ** (f + 1) > limit


@settings(deadline=None, max_examples=30)
@given(st.one_of(non_finite), st.integers(2, 32))
def test_frac_bits_for_refuses_non_finite(max_abs, bits):
    with pytest.raises(ValueError, match="finite"):
        frac_bits_for(max_abs, bits)


@settings(deadline=None, max_examples=400)
@given(st.floats(2.0 ** -31, 2.0 ** 30, exclude_max=True))
def test_quantize_multiplier_within_2_pow_minus_31(real):
    m, shift = quantize_multiplier(real)
    assert 2 ** 30 <= m < 2 ** 31 and -31 <= shift <= 30
    assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -31


@settings(deadline=None, max_examples=100)
@given(st.one_of(st.floats(0, 2.0 ** -31, exclude_max=True), st.floats(2.0 ** 30, 1e300)))
def test_quantize_multiplier_clamps(real):
    m, shift = quantize_multiplier(real)
    if real >= 2.0 ** 30:
        assert (m, shift) == (2 ** 31 - 1, 30)
    elif real <= 2.0 ** -33:
        assert (m, shift) == (0, 0)
    elif (m, shift) != (0, 0):
        # Near 2**-32 a factor that rounds up to 2**-32 is kept (TFLite clamps after rounding).
        assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2.0 ** -31


@settings(deadline=None, max_examples=60)
@given(st.one_of(non_finite, st.floats(max_value=-1e-300)))
def test_quantize_multiplier_refuses_bad_factor(real):
    with pytest.raises(ValueError, match="finite and >= 0"):
        quantize_multiplier(real)


@settings(deadline=None, max_examples=300)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.lists(finite, min_size=1, max_size=20))
@example(0.0, 2.225073858507e-311, [1.0])     # a subnormal range: 1.0 / scale overflows
@example(0.0, 5e-324, [0.0])                  # (hi - lo) / 255 underflows to 0
def test_activations_half_step_zero_exact_and_saturation(a, b, xs):
    lo, hi = min(a, b), max(a, b)
    scale, zp = activation_params(lo, hi)
    assert scale > 0 and -128 <= zp <= 127
    assert quantize_activations(0.0, scale, zp) == zp and dequantize(zp, scale, zp) == 0
    x = np.array(xs)
    q = quantize_activations(x, scale, zp)
    assert q.dtype == np.int8
    rlo, rhi = min(lo, 0.0), max(hi, 0.0)
    inside = (x >= rlo) & (x <= rhi)
    err = np.abs(dequantize(q, scale, zp) - x)
    assert (err[inside] <= scale / 2 * (1 + 1e-9) + 1e-300).all()
    assert (q[x > (127 - zp) * scale + scale] == 127).all()
    assert (q[x < (-128 - zp) * scale - scale] == -128).all()


@settings(deadline=None, max_examples=60)
@given(st.one_of(non_finite, st.floats(max_value=0.0)), finite)
def test_activations_refuse_bad_scale(scale, x):
    with pytest.raises(ValueError, match="scale"):
        quantize_activations([x], scale, 0)


@settings(deadline=None, max_examples=30)
@given(non_finite, finite)
def test_activation_params_refuse_non_finite_range(bad, other):
    with pytest.raises(ValueError, match="finite"):
        activation_params(bad, other)
    with pytest.raises(ValueError, match="finite"):
        activation_params(other, bad)


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 6), st.integers(1, 10), st.integers(0, 2**32 - 1),
       st.sampled_from([1e-6, 1e-2, 1.0, 1e3]))
def test_weights_per_channel(rows, cols, seed, spread):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, spread, (rows, cols))
    w[rng.random(rows) < 0.2] = 0
    q, s = quantize_weights_per_channel(w)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert (s > 0).all()
    assert (np.abs(q * s[:, None] - w) <= s[:, None] / 2 * (1 + 1e-9)).all()
    nz = np.abs(w).max(axis=1) > 0
    assert (np.abs(q[nz]).max(axis=1) == 127).all() and not q[~nz].any()


@settings(deadline=None, max_examples=30)
@given(non_finite, st.integers(0, 5))
def test_weights_and_bias_refuse_non_finite(bad, at):
    w = np.ones((2, 6))
    w.flat[at] = bad
    with pytest.raises(ValueError, match="finite"):
        quantize_weights_per_channel(w)
    b = np.zeros(6)
    b[at] = bad
    with pytest.raises(ValueError, match="finite|int32"):
        quantize_bias(b, 0.1, np.full(6, 0.01))


@settings(deadline=None, max_examples=100)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8), st.floats(1e-4, 1.0),
       st.floats(1e-4, 1.0))
def test_quantize_bias_half_step(bias, s_x, s_w):
    b = np.array(bias)
    sw = np.full(b.size, s_w)
    ratio = np.abs(b) / (s_x * s_w)
    assume(not ((ratio > 2**31 - 2) & (ratio < 2**31)).any())     # too close to call
    if (ratio >= 2**31).any():
        with pytest.raises(ValueError, match="int32"):
            quantize_bias(b, s_x, sw)
        return
    q = quantize_bias(b, s_x, sw)
    assert q.dtype == np.int32
    assert (np.abs(q * (s_x * sw) - b) <= s_x * sw / 2 * (1 + 1e-9)).all()


@settings(deadline=None, max_examples=40)
@given(st.one_of(non_finite, st.floats(max_value=0.0)))
def test_quantize_bias_refuses_bad_scale(bad):
    with pytest.raises(ValueError, match="scale"):
        quantize_bias(np.ones(3), bad, np.full(3, 0.5))
    with pytest.raises(ValueError, match="scale"):
        quantize_bias(np.ones(3), 0.5, np.array([0.5, bad, 0.5]))
