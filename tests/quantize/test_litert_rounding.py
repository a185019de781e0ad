"""The golden GEMM against LiteRT's own int8 FULLY_CONNECTED and CONV_2D, every output byte,
in the rounding mode that names each kernel path (docs/systolic.md):

* reference kernels (``OpResolverType.BUILTIN_REF``): FULLY_CONNECTED rounds once
  (``"single"``), CONV_2D twice (``"double"``);
* optimized kernels without the default delegate (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``):
  ruy's x86 SIMD kernels for both (``"ruy_x86"``);
* the default resolver (``AUTO``) hands both to XNNPACK, which requantizes in float32: no
  mode is bit-exact; the test bounds how far ``"single"`` is from it.

One-op models built with the flatbuffer schema as in test_host_ops.py; skipped where
``ai-edge-litert`` or ``tflite`` is missing.
"""

import platform
from pathlib import Path

import numpy as np
import pytest

from quantize.graph_quant import QParams
from quantize.int8 import quantize_multiplier
from sim.golden import host_ops
from sim.golden.systolic import ROUNDINGS, accumulate, requantize

from .test_host_ops import _INT32, _litert, _nchw, _same_pads, _t, _tfl_model

_FULLY_CONNECTED, _CONV_2D = 9, 3


def _run(content, x, resolver):
    interpreter, _ = _litert()
    it = interpreter.Interpreter(model_content=content, experimental_op_resolver_type=getattr(
        interpreter.OpResolverType, resolver))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _ruy_x86_cpu() -> bool:
    """Whether ruy runs its AVX (or later) kernels here: x86-64 Linux with AVX."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx" in flags


def _layer(rng, k, n):
    """Quantization of one layer: float32-representable scales, per-channel int8 weights
    (N, K), int32 bias at the accumulator's scale; and TFLite's multipliers for them."""
    p_in = QParams(float(np.float32(rng.uniform(0.005, 0.05))), int(rng.integers(-128, 128)))
    out = QParams(float(np.float32(rng.uniform(0.02, 0.5))), int(rng.integers(-128, 128)))
    w_scale = rng.uniform(0.001, 0.02, n).astype(np.float32).astype(np.float64)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-30_000, 30_000, n).astype(np.int32)
    rq = [quantize_multiplier(p_in.scale * s / out.scale) for s in w_scale]
    mult = np.array([m for m, _ in rq], np.int64)
    shift = np.array([s for _, s in rq], np.int64)
    return p_in, out, w, w_scale, bias, mult, shift


def _weights_and_bias(w_shape, w, w_scale, bias, p_in):
    n = len(bias)
    zeros = np.zeros(n, int)
    return [_t(w_shape, scale=w_scale, zp=zeros, qdim=0, data=w.tobytes()),
            {"shape": (n,), "type": _INT32, "scale": p_in.scale * w_scale, "zp": zeros,
             "data": bias.tobytes()}]


def _inputs(rng, shape, zp):
    """int8 inputs with whole vectors of -128, of 127, of the zero point and of a mix of
    the three among the random ones."""
    x = rng.integers(-128, 128, shape).astype(np.int8)
    flat = x.reshape(-1, shape[-1])
    flat[0::97] = -128
    flat[1::97] = 127
    flat[2::97] = zp
    flat[3::97] = rng.choice(np.array([-128, 127, zp], np.int8), flat[3::97].shape)
    return x


_PATHS = {  # resolver: (FULLY_CONNECTED mode, CONV_2D mode)
    "BUILTIN_REF": ("single", "double"),
    "BUILTIN_WITHOUT_DEFAULT_DELEGATES": ("ruy_x86", "ruy_x86"),
}


def _check_path(resolver):
    if resolver == "BUILTIN_WITHOUT_DEFAULT_DELEGATES" and not _ruy_x86_cpu():
        pytest.skip("ruy's x86 SIMD kernels run only on x86-64 with AVX")


def _fc_case(rng, m=10_000, k=40, n=16):
    """A FULLY_CONNECTED model, its input (m, k), the golden accumulators and the layer."""
    layer = p_in, out, w, w_scale, bias, _, _ = _layer(rng, k, n)
    model = _tfl_model(_FULLY_CONNECTED, (8, "FullyConnectedOptions", {}),
                       [_t((m, k), p_in), *_weights_and_bias((n, k), w, w_scale, bias, p_in),
                        _t((m, n), out)], [0, 1, 2], [3])
    a = _inputs(rng, (m, k), p_in.zero_point)
    return model, a, accumulate(a, w.T, bias, p_in.zero_point), layer


def _conv_case(rng, nb=4, h=50, wd=50, c=3, kk=3, o=8):
    """A 3x3 SAME CONV_2D, stride 1 (nb * h * wd output pixels, each an input patch): the
    model, its NHWC input, the golden accumulators (pixels, o) and the layer."""
    layer = p_in, out, w, w_scale, bias, _, _ = _layer(rng, kk * kk * c, o)
    w_ohwc = w.reshape(o, kk, kk, c)
    (oh, ow), pads = _same_pads(h, wd, (kk, kk), (1, 1))
    model = _tfl_model(_CONV_2D, (1, "Conv2DOptions", {
        "Padding": 0, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}),
        [_t((nb, h, wd, c), p_in),
         *_weights_and_bias((o, kk, kk, c), w_ohwc, w_scale, bias, p_in),
         _t((nb, oh, ow, o), out)], [0, 1, 2], [3])
    x = _inputs(rng, (nb, h, wd, c), p_in.zero_point)
    patches = host_ops.im2col(_nchw(x), (kk, kk), (1, 1), pads, p_in.zero_point)
    # im2col orders a patch (c, kh, kw); the weights are (o, kh, kw, c)
    w_kn = w_ohwc.transpose(0, 3, 1, 2).reshape(o, -1).T
    return model, x, accumulate(patches, w_kn, bias, p_in.zero_point), layer


def _compare(acc, mult, shift, zp, want, mode, wrong):
    """Every byte of ``want`` equals the golden requantization in ``mode``; count in
    ``wrong`` the bytes each mode gets wrong."""
    for r in ROUNDINGS:
        got = requantize(acc, mult, shift, zp, rounding=r)
        wrong[r] += int((got != want).sum())
        if r == mode:
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"{mode}: {len(bad)} of {want.size} bytes differ, first at "
                                   f"{bad[0].tolist()}: golden {got[tuple(bad[0])]}, LiteRT "
                                   f"{want[tuple(bad[0])]}, acc {acc[tuple(bad[0])]}")


@pytest.mark.parametrize("resolver", list(_PATHS))
def test_fully_connected_every_byte(resolver):
    _litert()
    _check_path(resolver)
    mode = _PATHS[resolver][0]
    rng = np.random.default_rng(300)
    wrong = dict.fromkeys(ROUNDINGS, 0)
    for _ in range(3):
        model, a, acc, (*_, out, _, _, _, mult, shift) = _fc_case(rng)
        _compare(acc, mult, shift, out.zero_point, _run(model, a, resolver), mode, wrong)
    # the path's rounding shows: each other mode gets some of these bytes wrong
    assert all(wrong[r] > 0 for r in ROUNDINGS if r != mode), wrong


@pytest.mark.parametrize("resolver", list(_PATHS))
def test_fully_connected_one_row_at_a_time(resolver):
    """Batch 1: a matrix-vector product, which LiteRT may route to a GEMV kernel."""
    _litert()
    _check_path(resolver)
    mode = _PATHS[resolver][0]
    rng = np.random.default_rng(310)
    k, n = 64, 32
    p_in, out, w, w_scale, bias, mult, shift = _layer(rng, k, n)
    model = _tfl_model(_FULLY_CONNECTED, (8, "FullyConnectedOptions", {}),
                       [_t((1, k), p_in), *_weights_and_bias((n, k), w, w_scale, bias, p_in),
                        _t((1, n), out)], [0, 1, 2], [3])
    a = _inputs(rng, (300, k), p_in.zero_point)
    want = np.concatenate([_run(model, row[None], resolver) for row in a])
    acc = accumulate(a, w.T, bias, p_in.zero_point)
    got = requantize(acc, mult, shift, out.zero_point, rounding=mode)
    assert (got == want).all(), f"{mode}: {(got != want).sum()} of {want.size} bytes differ"


@pytest.mark.parametrize("resolver", list(_PATHS))
def test_conv_2d_every_byte(resolver):
    """A 3x3 SAME convolution, stride 1, on 10,000 output pixels (each an input patch)."""
    _litert()
    _check_path(resolver)
    mode = _PATHS[resolver][1]
    rng = np.random.default_rng(320)
    wrong = dict.fromkeys(ROUNDINGS, 0)
    for _ in range(2):
        model, x, acc, (_, out, _, _, _, mult, shift) = _conv_case(rng)
        want = _run(model, x, resolver).reshape(acc.shape)
        assert len(acc) >= 10_000
        _compare(acc, mult, shift, out.zero_point, want, mode, wrong)
    assert all(wrong[r] > 0 for r in ROUNDINGS if r != mode), wrong


def _float32_requantize(acc, in_scale, w_scale, out_scale, zp):
    """XNNPACK's fp32 requantization: the float32 scale ``in * w / out``, the accumulator
    as float32 times it (float32), rounded to nearest even, plus the zero point."""
    f = np.float32
    scale = (f(in_scale) * np.asarray(w_scale, f)) / f(out_scale)
    return np.clip(np.rint(np.asarray(acc).astype(f) * scale).astype(np.int64) + zp, -128, 127)


def test_default_resolver_requantizes_in_float32():
    """``AUTO`` (XNNPACK) on FULLY_CONNECTED and CONV_2D: every byte is the float32
    requantization, which no integer mode reproduces; "single" is the nearest (within one
    step, on a few bytes)."""
    _litert()
    rng = np.random.default_rng(330)
    wrong, total = dict.fromkeys(ROUNDINGS, 0), 0
    for case in (_fc_case, _conv_case, _fc_case, _conv_case):
        model, x, acc, (p_in, out, _, w_scale, _, mult, shift) = case(rng)
        want = _run(model, x, "AUTO").reshape(acc.shape).astype(np.int64)
        fp32 = _float32_requantize(acc, p_in.scale, w_scale, out.scale, out.zero_point)
        assert (fp32 == want).all(), f"{(fp32 != want).sum()} of {want.size} bytes differ"
        for r in ROUNDINGS:
            got = requantize(acc, mult, shift, out.zero_point, rounding=r).astype(np.int64)
            wrong[r] += int((got != want).sum())
            if r == "single":
                assert np.abs(got - want).max() <= 1
        total += want.size
    assert wrong["single"] <= total // 10_000, wrong
    assert wrong["double"] > wrong["single"] and wrong["ruy_x86"] > wrong["single"], wrong
