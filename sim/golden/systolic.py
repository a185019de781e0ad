"""Golden model of the systolic engine: int8 GEMM with TFLite requantization.

Written from the arithmetic's definition (TFLite reference kernels / gemmlowp), in NumPy
int64, independent of the engine's tiling and pipeline:

``acc[m, n] = sum_k (a[m, k] - input_zero_point) * w[k, n]`` exactly (int64), then
``acc + bias[n]`` wrapped to int32 (TFLite adds the int32 bias in int32), then

* ``rounding="double"`` (TFLite's default)::

      x = acc << max(shift, 0)             (int32, wraps)
      x = SaturatingRoundingDoublingHighMul(x, multiplier)
      x = RoundingDivideByPOT(x, max(-shift, 0))

* ``rounding="single"`` (``TFLITE_SINGLE_ROUNDING``)::

      x = (acc * multiplier + 2**(30 - shift)) >> (31 - shift)   (int64, saturated to int32)

* ``rounding="ruy_x86"`` (ruy's x86 SIMD kernels, AVX / AVX2-FMA / AVX-512, which LiteRT's
  optimized int8 CONV_2D and FULLY_CONNECTED call on x86)::

      x = acc << max(shift, 0)             (int32, wraps)
      x = (x * multiplier + 2**30) >> 31   (int64: the doubling high multiply, ties upward)
      r = max(-shift, 0)
      x = (x + (2**r >> 1)) >> r           (rounding right shift, ties upward)

  The high multiply equals ``SaturatingRoundingDoublingHighMul`` for a non-negative
  multiplier (its nudge also rounds a negative half up); only the final shift differs from
  "double", whose ``RoundingDivideByPOT`` breaks ties away from zero.

then ``y = clamp(x + output_zero_point, act_min, act_max)`` as int8 (the addition is exact;
in C it could only overflow where the C code is undefined; ruy's SIMD add wraps there,
which takes a scaled ``x`` within ``|output_zero_point|`` of the int32 limits).

``multiplier`` is a non-negative int32 (TFLite: Q0.31 in [2^30, 2^31)); ``shift`` is in
[-31, 30], positive meaning a left shift, as TFLite's ``QuantizeMultiplier`` returns it.
"""

import numpy as np

__all__ = ["gemm", "requantize", "ROUNDINGS", "saturating_rounding_doubling_high_mul",
           "rounding_divide_by_pot", "accumulate", "INT32_MIN", "INT32_MAX"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: The requantization rounding paths :func:`requantize` implements.
ROUNDINGS = ("double", "single", "ruy_x86")


def _wrap32(x):
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 arrays (as int64)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero.
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: divide by 2^exponent, round half away from 0."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(acc, multiplier, shift, output_zero_point=0, act_min=-128, act_max=127,
               rounding="double"):
    """Requantize int32 accumulators ``acc`` (…, N) with per-channel parameters (N,)."""
    acc = _wrap32(acc)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(multiplier < 0) or np.any(multiplier > INT32_MAX):
        raise ValueError("multiplier must be a non-negative int32")
    if np.any(shift < -31) or np.any(shift > 30):
        raise ValueError("shift must be in [-31, 30]")
    if not -128 <= act_min <= act_max <= 127:
        raise ValueError(f"need -128 <= act_min <= act_max <= 127, got {act_min}, {act_max}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r}: use one of {', '.join(ROUNDINGS)}")
    if rounding == "double":
        left = np.maximum(shift, 0)
        right = np.maximum(-shift, 0)
        x = _wrap32(acc << left)
        x = saturating_rounding_doubling_high_mul(x, multiplier)
        x = rounding_divide_by_pot(x, right)
    elif rounding == "single":
        total = 31 - shift
        # acc * multiplier < 2^62 and the rounding term <= 2^61: exact in int64.
        x = (acc * multiplier + (np.int64(1) << (total - 1))) >> total
        x = np.clip(x, INT32_MIN, INT32_MAX)
    else:
        left = np.maximum(shift, 0)
        right = np.maximum(-shift, 0)
        x = _wrap32(acc << left)
        # |x * multiplier| < 2^62: exact in int64; the high part fits int32.
        x = (x * multiplier + (1 << 30)) >> 31
        x = (x + ((np.int64(1) << right) >> 1)) >> right
    y = np.clip(x + int(output_zero_point), act_min, act_max)
    return y.astype(np.int8)


def accumulate(a, w, bias, input_zero_point=0):
    """int32 accumulators: ``sum_k (a - zp) * w + bias``, the sum exact, the bias add wrapped."""
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"gemm needs a (M, K) and w (K, N); got {a.shape} and {w.shape}")
    acc = (a - int(input_zero_point)) @ w
    return _wrap32(acc + np.asarray(bias, dtype=np.int64))


def gemm(a, w, bias, multiplier, shift, input_zero_point=0, output_zero_point=0,
         act_min=-128, act_max=127, rounding="double", lut=None):
    """int8[M, N] = requantize(sum_k (a[M, K] - zp_in) * w[K, N] + bias[N]), clamped to
    ``[act_min, act_max]``; then, given ``lut`` (256 int8), each code ``q`` becomes
    ``lut[q + 128]``."""
    acc = accumulate(a, w, bias, input_zero_point)
    y = requantize(acc, multiplier, shift, output_zero_point, act_min, act_max, rounding)
    if lut is None:
        return y
    table = np.asarray(lut, dtype=np.int64)
    if table.shape != (256,) or table.min() < -128 or table.max() > 127:
        raise ValueError(f"lut must be 256 int8 values, got shape {table.shape}")
    return table[y.astype(np.int64) + 128].astype(np.int8)
