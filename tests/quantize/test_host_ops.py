"""int8 host ops (sim/golden/host_ops.py) against float references and hand-computed cases."""

import numpy as np
import pytest

from quantize.graph import Graph, Node
from quantize.graph_kernels import KERNELS
from quantize.graph_quant import QParams, add_params, lut_table, requant_params
from quantize.int8 import dequantize, quantize_activations, quantize_multiplier
from sim.golden import host_ops


def _node(op, shape, **attrs):
    """A pooling node with its shape filled in, for the float kernels."""
    node = Node("n", op, ("x",), "y", attrs)
    return Graph("x", shape, [node]).nodes[0]


def _q(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


# --- MultiplyByQuantizedMultiplier ------------------------------------------------------------

def test_multiply_by_quantized_multiplier_hand_cases():
    half = 1 << 30                       # 0.5 in Q0.31
    # 3 * 0.5 = 1.5 -> 2; -3 * 0.5 = -1.5 -> -1 (gemmlowp's nudge rounds a negative half up)
    assert host_ops.multiply_by_quantized_multiplier(3, half, 0) == 2
    assert host_ops.multiply_by_quantized_multiplier(-3, half, 0) == -1
    # shift -1 then divides by 2, rounding half away from zero. Two roundings: 5 * 0.25 =
    # 1.25, but 5 * 0.5 = 2.5 -> 3 first, then 1.5 -> 2 (TFLite's double rounding)
    assert host_ops.multiply_by_quantized_multiplier(5, half, -1) == 2
    assert host_ops.multiply_by_quantized_multiplier(-6, half, -1) == -2   # -1.5 -> -2
    # factor 1.0 = (2**30, 1) is exact
    m, s = quantize_multiplier(1.0)
    x = np.arange(-1000, 1000)
    np.testing.assert_array_equal(host_ops.multiply_by_quantized_multiplier(x, m, s), x)


# --- im2col ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride,pads", [((1, 1), (0, 0, 0, 0)), ((2, 2), (1, 1, 1, 1)),
                                         ((2, 1), (0, 2, 1, 0))])
def test_im2col_gemm_is_the_zero_padded_convolution(stride, pads):
    rng = np.random.default_rng(1)
    q = _q(rng, (2, 3, 7, 6))
    zp = -37
    w = rng.integers(-127, 128, (5, 3, 3, 2))
    node = Graph("x", (3, 7, 6), [Node("c", "Conv2d", ("x",), "y",
                                        {"stride": stride, "pads": pads},
                                        {"weight": w, "bias": np.zeros(5)})]).nodes[0]
    a = host_ops.im2col(q, (3, 2), stride, pads, zp).astype(np.int64)
    acc = (a - zp) @ w.reshape(5, -1).T
    oh, ow = node.shape[1:]
    got = acc.reshape(2, oh, ow, 5).transpose(0, 3, 1, 2)
    # Integer data: the float64 reference is exact.
    want = KERNELS["Conv2d"](node, q.astype(np.float64) - zp)
    np.testing.assert_array_equal(got, want)


def test_im2col_pads_with_the_zero_point():
    q = np.full((1, 1, 2, 2), 5, np.int8)
    a = host_ops.im2col(q, (3, 3), (1, 1), (1, 1, 1, 1), zero_point=-9)
    assert a.shape == (4, 9)
    # top-left output pixel: the window's first row and column are padding
    np.testing.assert_array_equal(a[0], [-9, -9, -9, -9, 5, 5, -9, 5, 5])


# --- max pool ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel,stride,pads", [((2, 2), (2, 2), (0, 0, 0, 0)),
                                                ((3, 3), (2, 2), (1, 1, 1, 1)),
                                                ((3, 2), (1, 2), (2, 0, 0, 1))])
def test_max_pool_equals_float_max(kernel, stride, pads):
    rng = np.random.default_rng(2)
    q = _q(rng, (2, 3, 7, 8))
    node = _node("MaxPool2d", (3, 7, 8), kernel=kernel, stride=stride, pads=pads)
    want = KERNELS["MaxPool2d"](node, q.astype(np.float64))   # max is exact on codes
    np.testing.assert_array_equal(host_ops.max_pool(q, kernel, stride, pads), want)


def test_max_pool_padding_never_wins():
    q = np.full((1, 2, 3, 3), -128, np.int8)
    y = host_ops.max_pool(q, (3, 3), (1, 1), (2, 2, 2, 2))
    assert y.shape == (1, 2, 5, 5)
    assert (y == -128).all()


def test_max_pool_clamp():
    q = np.array([[[[-5, 100], [3, 7]]]], np.int8)
    assert host_ops.max_pool(q, (2, 2), (2, 2), act_min=0, act_max=50)[0, 0, 0, 0] == 50


# --- average pool ------------------------------------------------------------------------------

@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_within_one_lsb_of_float(count_include_pad):
    rng = np.random.default_rng(3)
    q = _q(rng, (2, 4, 9, 9))
    zp, kernel, stride, pads = 11, (3, 3), (2, 2), (1, 1, 1, 1)
    node = _node("AvgPool2d", (4, 9, 9), kernel=kernel, stride=stride, pads=pads,
                 count_include_pad=count_include_pad)
    real = KERNELS["AvgPool2d"](node, q.astype(np.float64) - zp)   # scale 1
    y = host_ops.avg_pool(q, kernel, stride, pads, count_include_pad, zero_point=zp)
    assert np.abs(y - zp - real).max() <= 0.5 + 1e-9   # round to nearest (ties away)


def test_avg_pool_hand_cases():
    def pool(values, **kw):
        q = np.array(values, np.int8).reshape(1, 1, 1, -1)
        return int(host_ops.avg_pool(q, (1, q.shape[-1]), **kw)[0, 0, 0, 0])

    assert pool([-1, -2]) == -2                  # -1.5: away from zero
    assert pool([1, 2]) == 2                     # 1.5
    assert pool([-1, -2, -2, -2]) == -2          # -1.75
    assert pool([-1, 0, 0, 0]) == 0              # -0.25
    assert pool([-1, -1, 0]) == -1               # -2/3
    assert pool([77, 77, 77]) == 77              # all equal
    assert pool([-128, -128]) == -128
    assert pool([127, 127]) == 127
    assert pool([120, 100], act_max=100) == 100  # clamp
    # The rounding is on the codes, not on q - zp: real -0.5 at zp=1 rounds to code 1 (0.0)
    # while zero-point-relative rounding would give 0 (-1.0).
    assert pool([0, 1], zero_point=1) == 1


def test_avg_pool_corner_counts_only_real_elements():
    q = np.array([[[[10, 20], [30, 40]]]], np.int8)
    y = host_ops.avg_pool(q, (2, 2), (1, 1), (1, 1, 0, 0))
    np.testing.assert_array_equal(y[0, 0], [[10, 15], [20, 25]])
    y = host_ops.avg_pool(q, (2, 2), (1, 1), (1, 1, 0, 0), count_include_pad=True,
                          zero_point=0)
    np.testing.assert_array_equal(y[0, 0], [[3, 8], [10, 25]])   # 2.5 -> 3, 7.5 -> 8


# --- global average pool (Mean) ----------------------------------------------------------------

def test_global_avg_pool_within_one_lsb_of_float():
    rng = np.random.default_rng(4)
    q = _q(rng, (3, 6, 5, 7))
    p_in, p_out = QParams(0.05, -20), QParams(0.013, 9)
    m, s = requant_params(p_in.scale, p_out.scale)
    y = host_ops.global_avg_pool(q, p_in.zero_point, p_out.zero_point, m, s)
    assert y.shape == (3, 6, 1, 1)
    real = dequantize(q, p_in.scale, p_in.zero_point).mean(axis=(2, 3), keepdims=True)
    want = quantize_activations(real, p_out.scale, p_out.zero_point)
    assert np.abs(y.astype(int) - want).max() <= 1


def test_global_avg_pool_hand_cases():
    m, s = quantize_multiplier(1.0)
    gap = host_ops.global_avg_pool
    assert gap(np.full((1, 1, 3, 3), 42, np.int8), 0, 0, m, s)[0, 0, 0, 0] == 42
    # q - zp = [-1, -2]: the sum -3 times 1/2 folded into the multiplier (2**30, shift 0)
    # is gemmlowp's high multiply, which rounds the negative half -1.5 up to -1; + zp_out
    assert gap(np.array([[[[4, 3]]]], np.int8), 5, 7, m, s)[0, 0, 0, 0] == 6
    assert gap(np.array([[[[6, 7]]]], np.int8), 5, 7, m, s)[0, 0, 0, 0] == 7 + 2   # 1.5 -> 2
    # saturation: mean 127 - (-128) = 255 at s_in/s_out = 1 saturates at 127
    assert gap(np.full((1, 1, 2, 2), 127, np.int8), -128, 0, m, s)[0, 0, 0, 0] == 127


# --- Add ---------------------------------------------------------------------------------------

def test_add_within_one_lsb_of_float():
    rng = np.random.default_rng(5)
    q1, q2 = _q(rng, (4, 3, 5, 5)), _q(rng, (4, 3, 5, 5))
    p1, p2, out = QParams(0.031, 12), QParams(0.017, -40), QParams(0.045, -3)
    y = host_ops.add(q1, q2, **add_params(p1, p2, out))
    real = dequantize(q1, p1.scale, p1.zero_point) + dequantize(q2, p2.scale, p2.zero_point)
    want = quantize_activations(real, out.scale, out.zero_point)
    assert np.abs(y.astype(int) - want).max() <= 1
    assert np.mean(y == want) > 0.95


def test_add_hand_cases():
    p1, p2, out = QParams(0.02, 3), QParams(0.05, -7), QParams(0.04, 10)
    prm = add_params(p1, p2, out)
    assert prm["left_shift"] == 20
    # real 0 + real 0 is the output zero point exactly
    assert host_ops.add(np.int8([3]), np.int8([-7]), **prm)[0] == 10
    # saturation both ways
    assert host_ops.add(np.int8([127]), np.int8([127]), **prm)[0] == 127
    assert host_ops.add(np.int8([-128]), np.int8([-128]), **prm)[0] == -128
    # a fused ReLU clamps at the zero point
    assert host_ops.add(np.int8([-128]), np.int8([-7]), **prm, act_min=10)[0] == 10
    # equal scales: (q1 - zp) + (q2 - zp) at the same scale is exact
    same = add_params(QParams(0.1, 0), QParams(0.1, 0), QParams(0.1, 0))
    q = np.arange(-60, 60, dtype=np.int8)
    r = np.random.default_rng(0).permutation(q)
    np.testing.assert_array_equal(host_ops.add(q, r, **same), q.astype(int) + r)


# --- requantize, concat, clamp, lut ------------------------------------------------------------

def test_concat_requantizes_inputs_at_other_scales():
    rng = np.random.default_rng(6)
    a, b = _q(rng, (2, 3, 4, 4)), _q(rng, (2, 5, 4, 4))
    pa, pb, out = QParams(0.02, -5), QParams(0.05, 17), QParams(0.05, 17)
    m, s = requant_params(pa.scale, out.scale)
    y = host_ops.concat([a, b], [pa.zero_point, pb.zero_point], out.zero_point, [m, None],
                        [s, None])
    assert y.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(y[:, 3:], b)                   # same parameters: copied
    want = quantize_activations(dequantize(a, pa.scale, pa.zero_point), out.scale,
                                out.zero_point)
    assert np.abs(y[:, :3].astype(int) - want).max() <= 1


def test_requantize_hand_cases():
    m, s = requant_params(1.0, 2.0)                              # halve
    got = host_ops.requantize(np.int8([0, 3, -3, 127, -128]), 0, 0, m, s)
    np.testing.assert_array_equal(got, [0, 2, -1, 64, -64])      # 1.5 -> 2, -1.5 -> -1
    m, s = requant_params(1.0, 0.25)                             # times 4: saturates
    np.testing.assert_array_equal(host_ops.requantize(np.int8([40, -40]), 0, 0, m, s),
                                  [127, -128])


def test_clamp_and_lut():
    q = np.arange(-128, 128, dtype=np.int8)
    np.testing.assert_array_equal(host_ops.clamp(q, -3, 4), np.clip(q, -3, 4))
    node = Graph("x", (4,), [Node("s", "Sigmoid", ("x",), "y")]).nodes[0]
    p_in, p_out = QParams(0.05, 3), QParams(1 / 256, -128)
    y = host_ops.lut(q, lut_table(node, p_in, p_out))
    real = 1 / (1 + np.exp(-dequantize(q, p_in.scale, p_in.zero_point)))
    want = quantize_activations(real, p_out.scale, p_out.zero_point)
    np.testing.assert_array_equal(y, want)          # a table is exact by construction
    assert (np.diff(y.astype(int)) >= 0).all()       # and sigmoid's stays monotone


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="int8"):
        host_ops.max_pool(np.full((1, 1, 2, 2), 300), (2, 2))
    with pytest.raises(ValueError, match="N x C x H x W"):
        host_ops.avg_pool(np.zeros((2, 2), np.int8), (1, 1))
    with pytest.raises(ValueError, match="equal shapes"):
        host_ops.add(np.zeros(3, np.int8), np.zeros(4, np.int8), 0, 0, 0, 1, 0, 1, 0, 1, 0)
    with pytest.raises(ValueError, match="256 entries"):
        host_ops.lut(np.zeros(3, np.int8), np.zeros(10, np.int8))


# --- cross-check against TFLite's own reference kernels ----------------------------------------
# One-op int8 .tflite models built with the flatbuffer schema (the ``tflite`` package) and run
# by the LiteRT interpreter with its reference kernels (``ai-edge-litert``). Neither package is
# a project dependency: these tests run where both are installed and are skipped elsewhere.

_INT8, _INT32 = 9, 2


def _litert():
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    pytest.importorskip("tflite")
    import flatbuffers
    return interpreter, flatbuffers


def _tfl_model(opcode, options, tensors, inputs, outputs):
    """A .tflite model of one operator. ``options``: (type id, table name, fields) or None;
    ``tensors``: dicts of ``shape``, ``type`` and optionally ``scale``, ``zp``, ``qdim``,
    ``data`` (bytes of a constant)."""
    import importlib
    _, flatbuffers = _litert()
    b = flatbuffers.Builder(1024)

    def table(name, **fields):
        mod = importlib.import_module(f"tflite.{name}")
        getattr(mod, f"{name}Start")(b)
        for key, value in fields.items():
            getattr(mod, f"{name}Add{key}")(b, value)
        return getattr(mod, f"{name}End")(b)

    def vector(items, kind):
        b.StartVector(4 if kind != "Int64" else 8, len(items), 4 if kind != "Int64" else 8)
        for item in reversed(items):
            getattr(b, f"Prepend{kind}")(item)
        return b.EndVector()

    buffers, offsets = [table("Buffer")], []
    for t in tensors:
        buffer = 0
        if t.get("data") is not None:
            buffers.append(table("Buffer", Data=b.CreateByteVector(t["data"])))
            buffer = len(buffers) - 1
        fields = {}
        if "scale" in t:
            scale = vector([float(s) for s in np.atleast_1d(t["scale"])], "Float32")
            zp = vector([int(z) for z in np.atleast_1d(t["zp"])], "Int64")
            fields["Quantization"] = table("QuantizationParameters", Scale=scale, ZeroPoint=zp,
                                           QuantizedDimension=t.get("qdim", 0))
        shape = vector(list(t["shape"]), "Int32")
        offsets.append(table("Tensor", Shape=shape, Type=t["type"], Buffer=buffer,
                             Name=b.CreateString(f"t{len(offsets)}"), **fields))
    op_fields = {}
    if options:
        op_fields = {"BuiltinOptionsType": options[0],
                     "BuiltinOptions": table(options[1], **options[2])}
    op = table("Operator", OpcodeIndex=0, Inputs=vector(inputs, "Int32"),
               Outputs=vector(outputs, "Int32"), **op_fields)
    graph_inputs = [i for i in inputs if tensors[i].get("data") is None]
    subgraph = table("SubGraph", Tensors=vector(offsets, "UOffsetTRelative"),
                     Inputs=vector(graph_inputs, "Int32"), Outputs=vector(outputs, "Int32"),
                     Operators=vector([op], "UOffsetTRelative"))
    code = table("OperatorCode", DeprecatedBuiltinCode=min(opcode, 127), BuiltinCode=opcode,
                 Version=1)
    model = table("Model", Version=3, OperatorCodes=vector([code], "UOffsetTRelative"),
                  Subgraphs=vector([subgraph], "UOffsetTRelative"),
                  Buffers=vector(buffers, "UOffsetTRelative"))
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _tfl_run(content, *xs):
    interpreter, _ = _litert()
    it = interpreter.Interpreter(
        model_content=content,
        experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for detail, x in zip(it.get_input_details(), xs, strict=True):
        it.set_tensor(detail["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def _nchw(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2))


def _t(shape, p=None, **kw):
    extra = {"scale": p.scale, "zp": p.zero_point} if p is not None else {}
    return {"shape": shape, "type": _INT8, **extra, **kw}


def _rand_params(rng, lo=0.005, hi=0.1):
    return QParams(float(rng.uniform(lo, hi)), int(rng.integers(-128, 128)))


def _same_pads(h, w, k, s):
    """TFLite's SAME padding as (top, left, bottom, right) and the output size."""
    oh, ow = -(-h // s[0]), -(-w // s[1])
    ph, pw = max((oh - 1) * s[0] + k[0] - h, 0), max((ow - 1) * s[1] + k[1] - w, 0)
    return (oh, ow), (ph // 2, pw // 2, ph - ph // 2, pw - pw // 2)


@pytest.mark.parametrize("relu", [False, True])
def test_add_is_bit_exact_with_tflite(relu):
    _litert()
    rng = np.random.default_rng(100 + relu)
    for _ in range(10):
        p1, p2, out = _rand_params(rng), _rand_params(rng), _rand_params(rng, 0.01, 0.2)
        shape = (2, 5, 6, 7)
        model = _tfl_model(0, (11, "AddOptions", {"FusedActivationFunction": int(relu)}),
                           [_t(shape, p1), _t(shape, p2), _t(shape, out)], [0, 1], [2])
        a, b = _q(rng, shape), _q(rng, shape)
        want = _tfl_run(model, a, b)
        lo = out.zero_point if relu else -128
        got = host_ops.add(_nchw(a), _nchw(b), **add_params(p1, p2, out), act_min=lo)
        np.testing.assert_array_equal(_nhwc(got), want)


def test_requantize_and_mean_are_bit_exact_with_tflite():
    _litert()
    rng = np.random.default_rng(110)
    for trial in range(12):
        p_in, out = _rand_params(rng), _rand_params(rng, 0.002, 0.1)
        model = _tfl_model(114, (89, "QuantizeOptions", {}),
                           [_t((1, 4, 4, 16), p_in), _t((1, 4, 4, 16), out)], [0], [1])
        a = _q(rng, (1, 4, 4, 16))
        got = host_ops.requantize(a, p_in.zero_point, out.zero_point,
                                  *requant_params(p_in.scale, out.scale))
        np.testing.assert_array_equal(got, _tfl_run(model, a))
        hw = [(3, 3), (5, 7), (8, 8), (1, 4)][trial % 4]
        axes = {"shape": (2,), "type": _INT32, "data": np.array([1, 2], np.int32).tobytes()}
        model = _tfl_model(40, (27, "ReducerOptions", {"KeepDims": True}),
                           [_t((2, *hw, 6), p_in), axes, _t((2, 1, 1, 6), out)], [0, 1], [2])
        a = _q(rng, (2, *hw, 6))
        got = host_ops.global_avg_pool(_nchw(a), p_in.zero_point, out.zero_point,
                                       *requant_params(p_in.scale, out.scale))
        np.testing.assert_array_equal(_nhwc(got), _tfl_run(model, a))


@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("same", [False, True])
def test_pools_are_bit_exact_with_tflite(op, same):
    _litert()
    rng = np.random.default_rng(120)
    for k, s in (((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 2)), ((4, 4), (3, 3))):
        shape = (2, 7, 9, 5)
        p = _rand_params(rng)
        if same:
            (oh, ow), pads = _same_pads(7, 9, k, s)
        else:
            (oh, ow), pads = ((7 - k[0]) // s[0] + 1, (9 - k[1]) // s[1] + 1), (0, 0, 0, 0)
        fields = {"Padding": 0 if same else 1, "StrideW": s[1], "StrideH": s[0],
                  "FilterWidth": k[1], "FilterHeight": k[0]}
        model = _tfl_model(1 if op == "avg" else 17, (5, "Pool2DOptions", fields),
                           [_t(shape, p), _t((2, oh, ow, 5), p)], [0], [1])
        a = _q(rng, shape)
        pool = host_ops.avg_pool if op == "avg" else host_ops.max_pool
        np.testing.assert_array_equal(_nhwc(pool(_nchw(a), k, s, pads)), _tfl_run(model, a))


@pytest.mark.parametrize("kind,mult,stride", [("conv", 1, 1), ("conv", 1, 2),
                                              ("depthwise", 1, 2), ("depthwise", 3, 1)])
def test_convolution_lowering_is_bit_exact_with_tflite(kind, mult, stride):
    """im2col with zero-point padding (SAME) and the golden GEMM, per-channel weights,
    against TFLite's CONV_2D / DEPTHWISE_CONV_2D."""
    from sim.golden.systolic import gemm
    _litert()
    rng = np.random.default_rng(130 + stride + mult)
    n, h, w, c, k = 2, 7, 6, 3, 3
    o = 5 if kind == "conv" else c * mult
    p_in, out = _rand_params(rng, 0.02, 0.04), _rand_params(rng, 0.04, 0.06)
    w_shape = (o, k, k, c) if kind == "conv" else (1, k, k, o)
    wq = rng.integers(-127, 128, w_shape).astype(np.int8)
    ws = rng.uniform(0.005, 0.02, o)
    bias = rng.integers(-5000, 5000, o).astype(np.int32)
    (oh, ow), pads = _same_pads(h, w, (k, k), (stride, stride))
    zeros = np.zeros(o, int)
    tensors = [_t((n, h, w, c), p_in),
               _t(w_shape, scale=ws, zp=zeros, qdim=0 if kind == "conv" else 3,
                  data=wq.tobytes()),
               {"shape": (o,), "type": _INT32, "scale": p_in.scale * ws, "zp": zeros,
                "data": bias.tobytes()},
               _t((n, oh, ow, o), out)]
    fields = {"Padding": 0, "StrideW": stride, "StrideH": stride, "DilationWFactor": 1,
              "DilationHFactor": 1}
    if kind == "conv":
        model = _tfl_model(3, (1, "Conv2DOptions", fields), tensors, [0, 1, 2], [3])
    else:
        model = _tfl_model(4, (2, "DepthwiseConv2DOptions", {**fields, "DepthMultiplier": mult}),
                           tensors, [0, 1, 2], [3])
    a = _q(rng, (n, h, w, c))
    want = _tfl_run(model, a)
    # TFLite keeps scales in float32 and derives each channel's multiplier from them
    f32 = [float(np.float32(v)) for v in (p_in.scale, out.scale)]
    rq = [quantize_multiplier(f32[0] * float(np.float32(s)) / f32[1]) for s in ws]
    mult_, shift = np.array([m for m, _ in rq]), np.array([s for _, s in rq])
    patches = host_ops.im2col(_nchw(a), (k, k), (stride, stride), pads, p_in.zero_point)
    if kind == "conv":
        y = gemm(patches, wq.transpose(0, 3, 1, 2).reshape(o, -1).T, bias, mult_, shift,
                 p_in.zero_point, out.zero_point)
    else:
        wm, y = wq[0].reshape(k * k, o), np.zeros((len(patches), o), np.int64)
        for ch in range(c):
            cols = slice(ch * mult, (ch + 1) * mult)
            y[:, cols] = gemm(patches[:, ch * k * k:(ch + 1) * k * k], wm[:, cols], bias[cols],
                              mult_[cols], shift[cols], p_in.zero_point, out.zero_point)
    np.testing.assert_array_equal(y.reshape(n, oh, ow, o), want)


@pytest.mark.parametrize("op,opcode,options,attrs,fixed_out", [
    ("Gelu", 150, (116, "GeluOptions", {"Approximate": False}), {}, None),
    ("Gelu", 150, (116, "GeluOptions", {"Approximate": True}), {"approximate": "tanh"}, None),
    ("Sigmoid", 14, None, {}, QParams(1 / 256, -128)),
    ("Tanh", 28, None, {}, QParams(1 / 128, 0)),
    ("HardSwish", 117, (91, "HardSwishOptions", {}), {}, None)])
def test_activation_tables_match_tflite(op, opcode, options, attrs, fixed_out):
    """Every one of the 256 codes: GELU, LOGISTIC and TANH exactly (TFLite's int8 kernels
    evaluate a table built the same way); HARD_SWISH, which TFLite computes in fixed point,
    within one step."""
    _litert()
    rng = np.random.default_rng(140)
    node = Graph("x", (4,), [Node("n", op, ("x",), "y", attrs)]).nodes[0]
    codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for _ in range(5):
        p_in = QParams(float(rng.uniform(0.01, 0.06)), int(rng.integers(-40, 40)))
        out = fixed_out or QParams(float(rng.uniform(0.01, 0.05)), int(rng.integers(-100, -20)))
        model = _tfl_model(opcode, options, [_t((1, 256), p_in), _t((1, 256), out)], [0], [1])
        f32 = [QParams(float(np.float32(p.scale)), p.zero_point) for p in (p_in, out)]
        got = host_ops.lut(codes, lut_table(node, *f32)).astype(int)
        want = _tfl_run(model, codes)
        if op == "HardSwish":
            assert np.abs(got - want).max() <= 1 and np.mean(got == want) >= 0.97
        else:
            np.testing.assert_array_equal(got, want)
