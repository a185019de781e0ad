"""Golden int8 host ops between the engine's GEMMs, in TFLite's integer arithmetic.

Each op is written from the arithmetic of TFLite's reference kernels
(``tensorflow/lite/kernels/internal/reference/``: ``integer_ops/pooling.h``,
``integer_ops/add.h``, ``reduce.h``, ``requantize.h``, ``integer_ops/lut.h``),
in NumPy int64 with the int32 wrap-around made explicit where C would wrap. Tensors are
NCHW with the batch first (TFLite is NHWC; the per-element arithmetic is the same).

Every op takes integers only: the multipliers and shifts are TFLite's
(``QuantizeMultiplier``: Q0.31 multiplier, ``shift`` positive to the left), worked out from
the float scales by the quantizer (:mod:`quantize.graph_quant`).

``MultiplyByQuantizedMultiplier(x, m, s)`` below is TFLite's double-rounding one:
``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << max(s, 0), m), max(-s, 0))``.
"""

import numpy as np

from .systolic import rounding_divide_by_pot, saturating_rounding_doubling_high_mul

__all__ = ["multiply_by_quantized_multiplier", "im2col", "max_pool", "avg_pool",
           "global_avg_pool", "add", "requantize", "concat", "clamp", "lut"]


def _wrap32(x):
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _int8(q, what="input") -> np.ndarray:
    q = np.asarray(q)
    if q.size and not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"{what} must hold integers, got {q.dtype}")
    q = q.astype(np.int64)
    if q.size and (q.min() < -128 or q.max() > 127):
        raise ValueError(f"{what} must be int8 (-128..127)")
    return q


def _nchw(q, what="input") -> np.ndarray:
    q = _int8(q, what)
    if q.ndim != 4:
        raise ValueError(f"{what} must be N x C x H x W, got shape {q.shape}")
    return q


def _check_clamp(act_min, act_max):
    if not -128 <= act_min <= act_max <= 127:
        raise ValueError(f"need -128 <= act_min <= act_max <= 127, got {act_min}, {act_max}")


def _window(shape, kernel, stride, pads):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, pads
    h, w = shape[2:]
    if h + pt + pb < kh or w + pl + pr < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input "
                         f"{h + pt + pb}x{w + pl + pr}")
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1


def _patches(q, kernel, stride, pads, fill):
    """``(N, C, kh, kw, OH, OW)``: the input under every kernel offset, padding = ``fill``."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, pads
    oh, ow = _window(q.shape, kernel, stride, pads)
    xp = np.pad(q, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    # int16 holds every int8 code and the pad fills (-129 for max pooling) at a quarter
    # of int64's memory: im2col of a large layer is the host's biggest array.
    out = np.empty((q.shape[0], q.shape[1], kh, kw, oh, ow), dtype=np.int16)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return out


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier`` on int32 ``x`` (double rounding).

    ``x << max(shift, 0)`` wraps to int32 (C's overflow, which valid parameters never
    reach), then ``SaturatingRoundingDoublingHighMul`` by ``multiplier`` and a rounding
    (half away from zero) right shift by ``max(-shift, 0)``.
    """
    shift = np.asarray(shift, dtype=np.int64)
    x = _wrap32(_wrap32(x) << np.maximum(shift, 0))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier),
                                  np.maximum(-shift, 0))


def im2col(q, kernel, stride=(1, 1), pads=(0, 0, 0, 0), zero_point=0) -> np.ndarray:
    """Convolution patches as GEMM activations: ``(N·OH·OW, C·kh·kw)`` int8.

    Row ``(n·OH + oy)·OW + ox`` holds the window of output pixel ``(oy, ox)`` of sample
    ``n``; column ``(c·kh + i)·kw + j`` its input ``x[n, c, oy·sh + i − top, ox·sw + j −
    left]``, the order of a PyTorch weight ``O × C × kh × kw`` reshaped to ``O × C·kh·kw``.
    Padded positions take ``zero_point``, the int8 code of real 0, so that
    ``sum (a − zero_point)·w`` over a padded window is exactly the zero-padded convolution
    (TFLite's convolution skips padded taps, which is the same sum).
    """
    q = _nchw(q)
    if not -128 <= zero_point <= 127:
        raise ValueError(f"zero_point={zero_point}: must be an int8")
    p = _patches(q, kernel, stride, pads, int(zero_point))
    n, c, kh, kw, oh, ow = p.shape
    return p.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw).astype(np.int8)


def max_pool(q, kernel, stride=(1, 1), pads=(0, 0, 0, 0), act_min=-128,
             act_max=127) -> np.ndarray:
    """int8 max pooling (``reference_integer_ops::MaxPool``).

    ``y = clamp(max over the window's real (non-pad) elements, act_min, act_max)``: the
    window is clipped to the input, so padding never wins; output scale and zero point
    are the input's (TFLite requires it), so no rescaling.
    """
    q = _nchw(q)
    _check_clamp(act_min, act_max)
    # -129 is below every int8, so a padded tap never is the maximum; pads < kernel
    # guarantee every window holds a real element.
    y = _patches(q, kernel, stride, pads, -129).max(axis=(2, 3)).astype(np.int64)
    if y.size and y.min() < -128:
        raise ValueError("a pooling window holds padding only: pads must be smaller than "
                         "the kernel")
    return np.clip(y, act_min, act_max).astype(np.int8)


def avg_pool(q, kernel, stride=(1, 1), pads=(0, 0, 0, 0), count_include_pad=False,
             zero_point=0, act_min=-128, act_max=127) -> np.ndarray:
    """int8 average pooling (``reference_integer_ops::AveragePool``).

    Over the window's real elements: ``acc = sum q`` (the raw int8 codes), ``count`` their
    number, then ``acc > 0 ? (acc + count/2) / count : (acc − count/2) / count`` with C's
    truncating division (halves away from zero, on the codes, not on ``q − zero_point``),
    then the clamp. Output scale and zero point are the input's. With
    ``count_include_pad`` (ONNX's option; TFLite never counts padding) padded taps add
    ``zero_point`` (real 0) and ``count`` is ``kh·kw``.
    """
    q = _nchw(q)
    _check_clamp(act_min, act_max)
    kh, kw = kernel
    fill = int(zero_point) if count_include_pad else 0
    acc = _patches(q, kernel, stride, pads, fill).sum(axis=(2, 3), dtype=np.int64)
    if count_include_pad:
        count = np.full(acc.shape[-2:], kh * kw, dtype=np.int64)
    else:
        ones = np.ones((1, 1, *q.shape[2:]), dtype=np.int64)
        count = _patches(ones, kernel, stride, pads, 0).sum(axis=(2, 3), dtype=np.int64)[0, 0]
    if count.min() < 1:
        raise ValueError("a pooling window holds padding only: pads must be smaller than "
                         "the kernel")
    half = count // 2
    num = np.where(acc > 0, acc + half, acc - half)
    y = np.sign(num) * (np.abs(num) // count)       # C division truncates toward zero
    return np.clip(y, act_min, act_max).astype(np.int8)


def global_avg_pool(q, input_zero_point, output_zero_point, multiplier,
                    shift) -> np.ndarray:
    """int8 mean over H and W, ``(N, C, 1, 1)``: TFLite's int8 MEAN
    (``reference_ops::QuantizedMeanOrSum``, which folds ``1/count`` into the multiplier).

    With ``multiplier · 2^(shift−31) ≈ s_in / s_out`` and ``count = H·W``:
    ``e = min(floor(log2 count), 32, 31 + shift)``, ``m' = (multiplier << e) // count``,
    ``s' = shift − e``, then
    ``y = clamp(MultiplyByQuantizedMultiplier(sum(q − zp_in), m', s') + zp_out, −128, 127)``
    (one rounding; TFLite's older ``reference_integer_ops::Mean`` rounded twice).
    """
    q = _nchw(q)
    count = q.shape[2] * q.shape[3]
    e = min(count.bit_length() - 1, 32, 31 + int(shift))
    m = (int(multiplier) << e) // count
    acc = _wrap32((q - int(input_zero_point)).sum(axis=(2, 3), keepdims=True))
    acc = multiply_by_quantized_multiplier(acc, m, int(shift) - e)
    return np.clip(acc + int(output_zero_point), -128, 127).astype(np.int8)


def add(q1, q2, zp1, zp2, zp_out, m1, s1, m2, s2, m_out, s_out, left_shift=20,
        act_min=-128, act_max=127) -> np.ndarray:
    """int8 elementwise add with two input rescales (``reference_integer_ops::AddFunc``).

    ``v_i = (q_i − zp_i) · 2^left_shift`` (``left_shift`` 20 for int8), each rescaled
    ``r_i = MultiplyByQuantizedMultiplier(v_i, m_i, s_i)`` to the common scale
    ``2·max(s_1, s_2) / 2^left_shift`` (``m_i · 2^(s_i−31) ≈ s_i / (2·max)``), then
    ``y = clamp(MultiplyByQuantizedMultiplier(r_1 + r_2, m_out, s_out) + zp_out,
    act_min, act_max)`` with ``m_out · 2^(s_out−31) ≈ 2·max / (2^left_shift · s_y)``.
    """
    a, b = _int8(q1, "first input"), _int8(q2, "second input")
    if a.shape != b.shape:
        raise ValueError(f"add needs equal shapes, got {a.shape} and {b.shape}")
    _check_clamp(act_min, act_max)
    r1 = multiply_by_quantized_multiplier((a - int(zp1)) << left_shift, m1, s1)
    r2 = multiply_by_quantized_multiplier((b - int(zp2)) << left_shift, m2, s2)
    y = multiply_by_quantized_multiplier(_wrap32(r1 + r2), m_out, s_out) + int(zp_out)
    return np.clip(y, act_min, act_max).astype(np.int8)


def requantize(q, zp_in, zp_out, multiplier, shift) -> np.ndarray:
    """int8 → int8 at another scale (``reference_ops::Requantize``, TFLite's QUANTIZE op).

    ``y = clamp(MultiplyByQuantizedMultiplier(q − zp_in, multiplier, shift) + zp_out,
    −128, 127)`` with ``multiplier · 2^(shift−31) ≈ s_in / s_out``.
    """
    q = _int8(q)
    y = multiply_by_quantized_multiplier(q - int(zp_in), multiplier, shift) + int(zp_out)
    return np.clip(y, -128, 127).astype(np.int8)


def concat(qs, zps_in, zp_out, multipliers, shifts) -> np.ndarray:
    """int8 concatenation on the channel axis (axis 1).

    TFLite's int8 CONCATENATION requires every input at the output's scale and zero
    point (the converter inserts QUANTIZE ops where they differ). Here an input whose
    ``multiplier`` is ``None`` is copied as is (same parameters); every other input is
    first requantized (:func:`requantize`, TFLite's int8 → int8 QUANTIZE).
    """
    qs = [_int8(q, f"input {i}") for i, q in enumerate(qs)]
    if not len(qs) == len(zps_in) == len(multipliers) == len(shifts) >= 1:
        raise ValueError("concat needs one zero point, multiplier and shift per input")
    parts = [q if m is None else requantize(q, zp, zp_out, m, s)
             for q, zp, m, s in zip(qs, zps_in, multipliers, shifts, strict=True)]
    return np.concatenate([np.asarray(p, np.int64) for p in parts], axis=1).astype(np.int8)


def clamp(q, act_min, act_max) -> np.ndarray:
    """``min(max(q, act_min), act_max)``: ReLU, ReLU6 and Clip at an unchanged scale and
    zero point (``act_min`` the code of the lower bound, e.g. the zero point for ReLU)."""
    _check_clamp(act_min, act_max)
    return np.clip(_int8(q), act_min, act_max).astype(np.int8)


def lut(q, table) -> np.ndarray:
    """``table[q + 128]``: a 256-entry int8 → int8 lookup (TFLite's int8 ``LookupTable``;
    its int8 Gelu kernel, and the optimized int8 Logistic and Tanh, build the table from
    the float function)."""
    table = _int8(table, "table")
    if table.shape != (256,):
        raise ValueError(f"the lookup table needs 256 entries, got shape {table.shape}")
    return table[_int8(q) + 128].astype(np.int8)
