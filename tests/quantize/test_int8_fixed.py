"""TFLite int8 conventions and 16-bit fixed point."""

import math

import numpy as np
import pytest

from quantize.fixedpoint import frac_bits_for, from_fixed, to_fixed
from quantize.int8 import (
    activation_params,
    dequantize,
    quantize_activations,
    quantize_multiplier,
    quantize_weights_per_channel,
)


@pytest.mark.parametrize("real", [1e-9, 2 ** -32, 0.000123, 0.25, 0.5, 0.7071, 0.999999999,
                                  1.0, 1.5, 3.14159, 1234.5])
def test_quantize_multiplier(real):
    m, shift = quantize_multiplier(real)
    if real < 2 ** -32:
        assert (m, shift) == (0, 0)
        return
    assert 2 ** 30 <= m < 2 ** 31
    assert -31 <= shift <= 30
    approx = m * 2.0 ** (shift - 31)
    assert abs(approx - real) <= real * 2 ** -30


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    # q rounds up to 2^31: renormalised to 2^30 with shift + 1
    m, s = quantize_multiplier(1 - 2 ** -40)
    assert (m, s) == (2 ** 30, 1)
    with pytest.raises(ValueError):
        quantize_multiplier(-0.5)
    assert quantize_multiplier(2.0 ** 40) == (2 ** 31 - 1, 30)


def test_weights_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 20))
    w[3] = 0
    q, s = quantize_weights_per_channel(w)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    nz = np.abs(w).max(axis=1) > 0
    assert np.all(np.abs(q[nz]).max(axis=1) == 127)
    assert np.all(np.abs(q * s[:, None] - w) <= s[:, None] / 2 + 1e-12)


def test_activation_params_represent_zero_exactly():
    for lo, hi in [(0.0, 6.0), (-1.0, 3.0), (0.5, 2.0), (-4.0, -1.0)]:
        scale, zp = activation_params(lo, hi)
        assert -128 <= zp <= 127
        assert quantize_activations(0.0, scale, zp) == zp  # real 0 is exactly representable
        assert dequantize(zp, scale, zp) == 0
        assert (-128 - zp) * scale <= min(lo, 0) + scale
        assert (127 - zp) * scale >= max(hi, 0) - scale


def test_fixed_point():
    assert frac_bits_for(1.0) == 14      # 1.0 * 2^14 = 16384 <= 32767
    assert frac_bits_for(1.9999) == 14
    assert frac_bits_for(2.0) == 13
    assert frac_bits_for(0.001) == 15    # capped
    assert frac_bits_for(100.0) == 8
    x = np.array([-1.5, -0.00001, 0.3, 200.0])
    q = to_fixed(x, 8)
    assert q.tolist() == [-384, 0, 77, 32767]
    assert from_fixed(q, 8)[2] == pytest.approx(0.30078125)
    assert math.isclose(to_fixed(0.5 / 256, 8), 1)  # halves away from zero
