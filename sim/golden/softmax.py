"""Golden int8 → int8 softmax, as LiteRT's reference kernel computes it.

TFLite's int8 SOFTMAX (output scale 1/256, zero point −128, required by the op) in its
reference kernel (``reference_ops::Softmax`` on int8) works in gemmlowp fixed point, per row
of the last axis:

* ``diff = q − max(row)``; taps with ``diff < diff_min`` give −128 and add nothing;
* ``d = SaturatingRoundingDoublingHighMul(diff · 2^left_shift, multiplier)``: ``diff`` in
  Q5.26, with ``multiplier · 2^(left_shift − 31) ≈ beta · s_in · 2^26``
  (:func:`softmax_params`, TFLite's ``PreprocessSoftmaxScaling``);
* ``e = exp(d)`` in Q0.31 by gemmlowp's ``exp_on_negative_values`` (a Taylor polynomial on
  [−1/4, 0) and a barrel of constant factors ``exp(−2^k)``);
* ``sum = Σ RoundingDivideByPOT(e, 12)`` in Q12.19, its reciprocal by gemmlowp's
  ``one_over_one_plus_x_for_x_in_0_1`` (three Newton-Raphson steps) after normalising it to
  [1, 2);
* ``y = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(1/sum, e), bits + 23) − 128``,
  clamped to int8.

Everything there is int32 arithmetic carried in NumPy int64, wrap-around explicit.

LiteRT's optimized kernels compute it differently (:func:`softmax_float_table`):
``table[d] = expf(−s_in · beta · d)`` for the 256 distances ``d = max − q``, the row's
float32 sum in order, ``p = table[d] · (1 / (sum / 256))`` in float32, rounded half away
from zero, −128.
"""

import math

import numpy as np

from .systolic import (
    INT32_MAX,
    INT32_MIN,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

__all__ = ["softmax_params", "softmax", "softmax_float_table", "int8_softmax", "METHODS"]

#: The two kernels: LiteRT's reference one and its optimized one.
METHODS = ("fixed_point", "float_table")

#: Integer bits of the scaled differences (Q5.26) and of the sum of exponentials (Q12.19).
DIFF_INTEGER_BITS = 5
ACCUM_INTEGER_BITS = 12


def _wrap32(x):
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _mul(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def _shl_saturating(x, exponent: int):
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT`` for a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    x = np.asarray(x, dtype=np.int64)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_quarter_interval(a):
    """``exp(a)`` for Q0.31 ``a`` in [−1/4, 0): Taylor polynomial around −1/8."""
    constant_term = 1895147668                      # exp(−1/8) in Q0.31
    one_third = 715827883
    x = _wrap32(a + (1 << 28))                      # a + 1/8
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap32(_mul(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + _mul(constant_term, _wrap32(x + poly)))


#: ``(k, exp(−2^k) in Q0.31)``: the factors applied for each set bit of the integer part.
_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def _exp_on_negative_values(a):
    """gemmlowp's ``exp_on_negative_values``: Q5.26 ``a <= 0`` → Q0.31 ``exp(a)``."""
    frac = 31 - DIFF_INTEGER_BITS
    quarter = 1 << (frac - 2)
    a = np.asarray(a, dtype=np.int64)
    a_mod = (a & (quarter - 1)) - quarter          # in [−1/4, 0)
    result = _exp_quarter_interval(_shl_saturating(a_mod, DIFF_INTEGER_BITS))
    remainder = _wrap32(a_mod - a)
    for k, factor in _BARREL:
        if DIFF_INTEGER_BITS > k:
            result = np.where(remainder & (1 << (frac + k)), _mul(result, factor), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a):
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1``: Q0.31 ``a`` → Q0.31 ``1/(1+a)``."""
    s = np.asarray(a, dtype=np.int64) + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))
    x = _wrap32(1515870810 + _mul(half_denominator, -1010580540))   # 48/17 − 32/17·d, Q2.29
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _mul(half_denominator, x))
        x = _wrap32(x + _shl_saturating(_mul(x, one_minus), 2))
    return _shl_saturating(x, 1)


def softmax_params(input_scale: float, beta: float = 1.0) -> dict:
    """``input_multiplier``, ``input_left_shift`` and ``diff_min`` of TFLite's int8 softmax
    (``PreprocessSoftmaxScaling`` and ``CalculateInputRadius`` with 5 integer bits), from
    the input's float32 scale and the op's ``beta``."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - DIFF_INTEGER_BITS)),
               (1 << 31) - 1.0)
    q, shift = math.frexp(real)
    multiplier = int(math.floor(q * (1 << 31) + 0.5))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < 0:
        raise ValueError(f"softmax input scale {input_scale} with beta {beta} is too small "
                         f"(beta·scale·2^26 = {real} < 1)")
    radius = math.floor(((1 << DIFF_INTEGER_BITS) - 1) * (1 << (31 - DIFF_INTEGER_BITS))
                        / (1 << shift))
    return {"input_multiplier": multiplier, "input_left_shift": shift, "diff_min": -radius}


def softmax(q, input_multiplier: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """int8 softmax over the last axis of int8 ``q`` (output scale 1/256, zero point −128).

    Raises
    ------
    ValueError
        ``q`` is not int8, or the parameters are out of range.
    """
    q = np.asarray(q)
    if q.size and not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"softmax input must hold integers, got {q.dtype}")
    q = q.astype(np.int64)
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError("softmax input must be int8 (-128..127)")
    if not 0 <= input_multiplier <= INT32_MAX or not 0 <= input_left_shift <= 30:
        raise ValueError(f"softmax multiplier {input_multiplier} / left shift "
                         f"{input_left_shift} out of range")
    diff = q - q.max(axis=-1, keepdims=True)
    kept = diff >= diff_min
    scaled = _mul(_wrap32(diff << input_left_shift), input_multiplier)
    e = np.where(kept, _exp_on_negative_values(np.where(kept, scaled, 0)), 0)
    total = _wrap32(rounding_divide_by_pot(e, ACCUM_INTEGER_BITS).sum(axis=-1, keepdims=True))
    # the row maximum adds exp(0) / 2^12 > 0, so total > 0; frexp's exponent of an integer
    # below 2^53 is its bit length
    headroom_plus_one = 32 - np.frexp(total.astype(np.float64))[1].astype(np.int64)
    bits_over_unit = ACCUM_INTEGER_BITS - headroom_plus_one
    shifted_minus_one = _wrap32((total << headroom_plus_one) - (1 << 31))
    reciprocal = _one_over_one_plus_x(shifted_minus_one)
    exponent = bits_over_unit + 31 - 8
    y = rounding_divide_by_pot(_mul(reciprocal, e), exponent) - 128
    return np.where(kept, np.clip(y, -128, 127), -128).astype(np.int8)


def softmax_float_table(q, input_scale: float, beta: float = 1.0) -> np.ndarray:
    """int8 softmax over the last axis as LiteRT's optimized kernel computes it (float32
    table of ``exp``, float32 row sums in order, rounding half away from zero)."""
    q = np.asarray(q).astype(np.int64)
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError("softmax input must be int8 (-128..127)")
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = np.exp(scale * np.arange(256, dtype=np.float32)).astype(np.float32)
    e = table[q.max(axis=-1, keepdims=True) - q]
    total = np.zeros(q.shape[:-1] + (1,), np.float32)
    for j in range(q.shape[-1]):
        total = (total + e[..., j:j + 1]).astype(np.float32)
    p = (e * (np.float32(1.0) / (total * np.float32(1 / 256)))).astype(np.float32)
    p = p.astype(np.float64)                # p ± 0.5 exact: std::round's half away from zero
    y = np.trunc(p + np.copysign(0.5, p)).astype(np.int64)
    return np.clip(y - 128, -128, 127).astype(np.int8)


def int8_softmax(q, method: str, input_multiplier: int, input_left_shift: int, diff_min: int,
                 input_scale: float, beta: float) -> np.ndarray:
    """int8 softmax over the last axis by ``method`` (:data:`METHODS`): ``"fixed_point"``
    (:func:`softmax`, LiteRT's reference kernel) or ``"float_table"``
    (:func:`softmax_float_table`, its optimized one)."""
    if method == "fixed_point":
        return softmax(q, input_multiplier, input_left_shift, diff_min)
    if method == "float_table":
        return softmax_float_table(q, input_scale, beta)
    raise ValueError(f"softmax method {method!r}: use one of {', '.join(METHODS)}")
