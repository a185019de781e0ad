"""TFLite int8 conventions for the systolic engine.

real = scale · (q − zero_point). Weights: int8 in [−127, 127], zero point 0, one scale per
output channel. Activations: int8 in [−128, 127], one scale and zero point per tensor,
calibrated from min/max over calibration inputs (range widened to include 0). Bias: int32
with scale ``s_x · s_w``. Requantization factor ``s_x · s_w / s_y`` as a Q0.31 multiplier
and a shift (:func:`quantize_multiplier`, TFLite's ``QuantizeMultiplier``).
"""

import math

import numpy as np

__all__ = ["quantize_multiplier", "round_half_away", "quantize_weights_per_channel",
           "activation_params", "quantize_activations", "dequantize", "quantize_bias"]


def _check_finite(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} must be finite, found NaN or infinity")
    return x


def _check_scale(scale, what: str) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float64)
    bad = s[~(np.isfinite(s) & (s > 0))]
    if bad.size:
        raise ValueError(f"{what} scale must be finite and > 0, got {bad[0]}")
    return s


def round_half_away(x) -> np.ndarray:
    """``std::round``: halves away from zero (TFLite's TfLiteRound)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``real ≈ multiplier · 2**(shift − 31)``.

    ``multiplier`` is in ``[2**30, 2**31)`` (0 for ``real == 0``); a positive ``shift`` is a
    left shift. Mirrors TFLite's ``QuantizeMultiplier`` including its clamps for tiny
    (< 2**-32) and huge factors.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization factor must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2**shift, q in [0.5, 1)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def quantize_weights_per_channel(weight: np.ndarray):
    """Symmetric per-output-channel int8 weights: ``(q int8[out, in], scale float64[out])``.

    Raises ``ValueError`` for a NaN or infinite weight.
    """
    w = _check_finite(weight, "weights")
    amax = np.max(np.abs(w), axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(round_half_away(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """``(scale, zero_point)`` covering ``[min(lo, 0), max(hi, 0)]`` on int8 [−128, 127].

    Raises ``ValueError`` for a NaN or infinite bound.
    """
    _check_finite([lo, hi], "the calibrated activation range")
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, 0
    # A subnormal range would give a zero scale; the smallest normal one still covers it.
    scale = max((hi - lo) / 255.0, float(np.finfo(np.float64).tiny))
    zero_point = int(np.clip(round_half_away(-128 - lo / scale), -128, 127))
    return scale, zero_point


def quantize_activations(x, scale: float, zero_point: int) -> np.ndarray:
    """int8 of ``x`` (saturating); ``ValueError`` for a bad scale or a NaN in ``x``."""
    scale = float(_check_scale(scale, "activation"))
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("activations must not be NaN")
    with np.errstate(over="ignore"):          # beyond float range saturates like beyond int8
        q = round_half_away(x / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q, scale, zero_point) -> np.ndarray:
    return (np.asarray(q, dtype=np.float64) - zero_point) * scale


def quantize_bias(bias, input_scale: float, weight_scale: np.ndarray) -> np.ndarray:
    """int32 bias at scale ``s_x · s_w``; ``ValueError`` for bad scales, a NaN or infinite
    bias, or one that does not fit int32."""
    scale = _check_scale(input_scale, "input") * _check_scale(weight_scale, "weight")
    b = round_half_away(_check_finite(bias, "biases") / scale)
    if np.any(np.abs(b) > 2 ** 31 - 1):
        raise ValueError("a bias does not fit int32 at scale s_x * s_w")
    return b.astype(np.int32)
