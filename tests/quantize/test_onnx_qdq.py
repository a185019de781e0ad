"""ONNX models quantized by onnxruntime (QDQ and QOperator) imported with their own
quantization, against onnxruntime itself.

The float models are built and trained here (an MLP 64-32-10 and a CNN on the digits, a
residual CNN with a depthwise convolution, Add and GlobalAveragePool, a bias-free MatMul
MLP), quantized by ``onnxruntime.quantization.quantize_static`` (int8 activations and
weights, calibrated on digits) in both formats, per tensor and per channel. onnxruntime
requantizes in float, the engine in fixed point: the claims are the bounds measured on
2,797 inputs per model (docs/onnx-qdq.md), not bit equality.
"""

import re

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from hw.systolic.config import PRESETS, ROUNDING_MODES  # noqa: E402
from quantize.digits import load_digits_split  # noqa: E402
from quantize.graph import Graph, Node  # noqa: E402
from quantize.graph_run import run_graph  # noqa: E402
from quantize.image import load_image  # noqa: E402
from quantize.onnx_export import save_onnx  # noqa: E402
from quantize.onnx_qdq_import import ROUNDING, is_quantized_onnx, load_onnx_qdq  # noqa: E402
from quantize.tflite_import import raw_inputs  # noqa: E402
from quantize.train import init_mlp, train  # noqa: E402
from quantize.train_cnn import train as train_cnn  # noqa: E402
from quantize.weight_only import mlp_graph  # noqa: E402
from tests.cli import run_cli as _run

MODELS = ("mlp", "cnn", "res", "matmul")
FORMATS = ("QDQ", "QOperator")
#: The claim: no output byte more than one step from onnxruntime's, and at most this
#: fraction of them off by one (measured: at most 2 of 27,970 per model, 0.0072 %;
#: docs/onnx-qdq.md).
MAX_MISMATCH = 1e-4
RANDOM = 1000


@pytest.fixture(scope="module")
def digits():
    x_tr, y_tr, x_te, _ = load_digits_split()
    return x_tr, y_tr, np.concatenate([x_tr, x_te])


def _conv(rng, name, c, o, v):
    w = rng.standard_normal((o, c, 3, 3)) * np.sqrt(2 / (c * 9))
    return Node(name, "Conv2d", v, name, {"pads": (1, 1, 1, 1)},
                {"weight": w, "bias": rng.standard_normal(o) * 0.1})


def _float_models(x_tr, y_tr) -> dict:
    rng = np.random.default_rng(0)
    mlp = train(init_mlp([64, 32, 10], seed=0), x_tr, y_tr, epochs=10, lr=3e-3, seed=0)
    cnn = Graph("x", (1, 8, 8), [
        _conv(rng, "conv1", 1, 8, "x"), Node("relu1", "Relu", "conv1", "relu1"),
        Node("pool1", "MaxPool2d", "relu1", "pool1", {"kernel": (2, 2), "stride": (2, 2)}),
        _conv(rng, "conv2", 8, 16, "pool1"), Node("relu2", "Relu", "conv2", "relu2"),
        Node("flatten", "Flatten", "relu2", "flatten"),
        Node("fc", "Linear", "flatten", "fc", {},
             {"weight": rng.standard_normal((10, 256)) / 16, "bias": np.zeros(10)})])
    cnn = train_cnn(cnn, x_tr.reshape(-1, 1, 8, 8), y_tr, epochs=3, seed=0)
    res = Graph("x", (1, 8, 8), [
        _conv(rng, "conv1", 1, 8, "x"), Node("relu1", "Relu", "conv1", "relu1"),
        Node("conv2", "Conv2d", "relu1", "conv2", {"pads": (1, 1, 1, 1), "groups": 8},
             {"weight": rng.standard_normal((8, 1, 3, 3)) / 3,
              "bias": rng.standard_normal(8) * 0.1}),                  # depthwise
        Node("relu2", "Relu", "conv2", "relu2"),
        Node("add", "Add", ("relu1", "relu2"), "add"),
        Node("pool", "MaxPool2d", "add", "pool", {"kernel": (2, 2), "stride": (2, 2)}),
        _conv(rng, "conv3", 8, 16, "pool"), Node("relu3", "Relu", "conv3", "relu3"),
        Node("gap", "GlobalAveragePool", "relu3", "gap"),
        Node("flatten", "Flatten", "gap", "flatten"),
        Node("fc", "Linear", "flatten", "fc", {},
             {"weight": rng.standard_normal((10, 16)) / 4, "bias": np.zeros(10)})])
    return {"mlp": mlp_graph(mlp, "relu"), "cnn": cnn, "res": res}


def _matmul_model(path, rng) -> None:
    """x @ W1 -> Relu -> @ W2, no biases: QLinearMatMul in the QOperator format."""
    w1 = (rng.standard_normal((64, 32)) / 4).astype(np.float32)
    w2 = (rng.standard_normal((32, 10)) / 4).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


class _Digits(CalibrationDataReader):
    def __init__(self, name, x):
        self.rows = iter([{name: r[None].astype(np.float32)} for r in x])

    def get_next(self):
        return next(self.rows, None)


def _quantize(src, dst, x, fmt, per_channel, activation=QuantType.QInt8):
    name = onnx.load(str(src)).graph.input[0].name
    quantize_static(str(src), str(dst), _Digits(name, x), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel, activation_type=activation,
                    weight_type=QuantType.QInt8)
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory, digits):
    """``{(model, format, per_channel): path}`` of the quantized models."""
    x_tr, y_tr, _ = digits
    d = tmp_path_factory.mktemp("onnx_qdq")
    floats = {name: save_onnx(g, d / f"{name}.onnx")
              for name, g in _float_models(x_tr, y_tr).items()}
    floats["matmul"] = d / "matmul.onnx"
    _matmul_model(floats["matmul"], np.random.default_rng(1))
    out = {}
    for name, src in floats.items():
        x = x_tr[:200].reshape(-1, 64) if name in ("mlp", "matmul") else \
            x_tr[:200].reshape(-1, 1, 8, 8)
        for fmt in FORMATS:
            for pc in (False, True):
                out[name, fmt, pc] = _quantize(src, d / f"{name}_{fmt}_{int(pc)}.onnx", x,
                                               fmt, pc)
    out["float", "cnn"] = floats["cnn"]
    return out


def _vectors(qg, all_digits, n_random=RANDOM) -> np.ndarray:
    """int8 inputs: the 1,797 digits at the input's quantization, then uniform codes."""
    p, shape = qg.input_params, qg.graph.input_shape
    dig = np.clip(np.round(all_digits / p.scale) + p.zero_point, -128, 127)
    rand = np.random.default_rng(7).integers(-128, 128, (n_random, *shape))
    return np.concatenate([dig.reshape(-1, *shape), rand]).astype(np.int8)


def _onnxruntime(path, qg, q) -> np.ndarray:
    """onnxruntime's int8 output codes for int8 inputs ``q``: the inputs dequantized in
    float32 (its QuantizeLinear gives ``q`` back), the float output divided back into
    steps of the output scale (its last DequantizeLinear is exact in float32)."""
    p, po = qg.input_params, qg.output_params
    x = (q.astype(np.float32) - np.float32(p.zero_point)) * np.float32(p.scale)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    # Exact int8 products in QDQ graphs on x86 CPUs without VNNI too (otherwise pairs of
    # u8*s8 products saturate at int16 there: up to 33 steps off on these models). The
    # QOperator kernels (QGemm, QLinearMatMul) have no such variant and stay as they are.
    exact = ort.SessionOptions()
    exact.intra_op_num_threads = 1
    exact.add_session_config_entry("session.x64quantprecision", "1")
    try:
        s = ort.InferenceSession(str(path), exact, providers=["CPUExecutionProvider"])
    except ort.capi.onnxruntime_pybind11_state.NotImplemented:
        s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    y = s.run(None, {s.get_inputs()[0].name: x})[0]
    return np.round(y / np.float32(po.scale)).astype(np.int64) + po.zero_point


def _golden(qg, q, rounding=None) -> np.ndarray:
    for layer in qg.layers:
        if layer.kind == "gemm" and rounding is not None:
            layer.p["rounding"] = rounding
    return run_graph(qg, raw_inputs(qg, q), "golden").output.astype(np.int64)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("model", MODELS)
def test_golden_within_one_step_of_onnxruntime(model, fmt, per_channel, models, digits):
    path = models[model, fmt, per_channel]
    qg = load_onnx_qdq(path)
    q = _vectors(qg, digits[2])
    assert len(q) >= 2000
    want = _onnxruntime(path, qg, q)
    diffs = {mode: np.abs(_golden(qg, q, mode) - want) for mode in ROUNDING_MODES}
    d = diffs[ROUNDING]
    rate = np.count_nonzero(d) / d.size
    print(f"{model} {fmt} per_channel={per_channel}: " + "; ".join(
        f"{m} {np.count_nonzero(v)}/{v.size} max {v.max()}" for m, v in diffs.items()))
    assert d.max() <= 1
    assert rate <= MAX_MISMATCH, f"{np.count_nonzero(d)} of {d.size} bytes differ"
    # the importer's rounding is the closest of the engine's modes
    assert all(np.count_nonzero(v) >= np.count_nonzero(d) for v in diffs.values())


def test_import_keeps_the_model_quantization(models):
    path = models["cnn", "QDQ", True]
    qg = load_onnx_qdq(path)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    gemms = [la for la in qg.layers if la.kind == "gemm"]
    assert [la.op for la in gemms] == ["Conv2d", "Conv2d", "Linear"]
    assert [la.kind for la in qg.layers] == ["gemm", "maxpool", "gemm", "reshape", "gemm"]
    for la, name in zip(gemms, ("conv1", "conv2", "fc"), strict=True):
        w = inits[f"{name}.weight_quantized"].reshape(len(la.p["bias"]), -1)
        np.testing.assert_array_equal(np.concatenate(la.p["weights"]).T, w)
        np.testing.assert_array_equal(la.p["bias"], inits[f"{name}.bias_quantized"])
        np.testing.assert_array_equal(la.p["weight_scale"], inits[f"{name}.weight_scale"])
        assert la.p["rounding"] == ROUNDING
        assert len(set(la.p["multiplier"].tolist())) > 1           # per-channel scales
    # the Relu that quantize_static folds into the output range: clamp at the int8 range,
    # the zero point being -128
    conv1 = gemms[0].p
    assert conv1["output_zero_point"] == -128 and conv1["act_min"] == -128
    assert qg.input_params.scale == pytest.approx(1 / 255) and qg.input_params.zero_point == -128
    assert qg.output_params.scale == float(inits["fc_scale"])


def test_qoperator_and_qdq_import_alike(models):
    a = load_onnx_qdq(models["res", "QDQ", True])
    b = load_onnx_qdq(models["res", "QOperator", True])
    assert [la.kind for la in a.layers] == [la.kind for la in b.layers] == [
        "gemm", "gemm", "add", "maxpool", "gemm", "mean", "reshape", "gemm"]
    for la, lb in zip(a.layers, b.layers, strict=True):
        if la.kind == "gemm":
            np.testing.assert_array_equal(la.p["multiplier"], lb.p["multiplier"])
            np.testing.assert_array_equal(la.p["bias"], lb.p["bias"])


def _refused(path, pattern):
    with pytest.raises(ValueError) as e:
        load_onnx_qdq(path)
    msg = str(e.value)
    assert "\n" not in msg and re.search(pattern, msg), msg


def test_refusals(models, digits, tmp_path):
    x = digits[0][:50].reshape(-1, 1, 8, 8)
    src = models["float", "cnn"]
    u8 = _quantize(src, tmp_path / "u8.onnx", x, "QDQ", True, QuantType.QUInt8)
    _refused(u8, r"node .*\(QuantizeLinear\): uint8 activations .*QuantType.QInt8")
    assert not is_quantized_onnx(src)
    _refused(src, r"\(Conv\): input 'x' is the float graph input.*not a quantized model")
    # an op outside the table, named with what is supported
    m = onnx.load(str(models["cnn", "QDQ", False]))
    for n in m.graph.node:
        if n.op_type == "MaxPool":
            del n.attribute[:]
            n.op_type = "Sigmoid"
    onnx.save(m, tmp_path / "sig.onnx")
    _refused(tmp_path / "sig.onnx", r"\(Sigmoid\): not supported; supported: "
                                     r"QuantizeLinear, .*QLinearConv")
    # AveragePool: onnxruntime's rounding is not the int8 runtime's
    for n in m.graph.node:
        if n.op_type == "Sigmoid":
            n.op_type = "AveragePool"
            n.attribute.extend([helper.make_attribute("kernel_shape", [2, 2]),
                                helper.make_attribute("strides", [2, 2])])
    onnx.save(m, tmp_path / "avg.onnx")
    _refused(tmp_path / "avg.onnx", r"\(AveragePool\): not supported: onnxruntime rounds .* "
                                     r"use MaxPool or GlobalAveragePool")
    # a float op whose output is never requantized
    m = onnx.load(str(models["mlp", "QDQ", False]))
    nodes = list(m.graph.node)
    last_q = [n for n in nodes if n.op_type == "QuantizeLinear"][-1]
    last_dq = nodes[-1]
    m.graph.node.remove(last_q)
    m.graph.node.remove(last_dq)
    m.graph.output[0].name = last_q.input[0]
    onnx.save(m, tmp_path / "float_out.onnx")
    _refused(tmp_path / "float_out.onnx", r"\(Gemm\): output .* is never requantized")


def test_compress_and_run_raw(models, digits, tmp_path, capsys):
    path = models["cnn", "QOperator", True]
    img = tmp_path / "img"
    status, cap = _run(f"compress {path} --engine systolic -o {img}", capsys)
    assert status == 0, cap.err
    assert "int8 in/out as the model's" in cap.out
    qg = load_image(img).qgraph
    q = _vectors(qg, digits[2][:40], 10)
    np.save(tmp_path / "x.npy", q)
    status, cap = _run(f"run {img} --input {tmp_path / 'x.npy'} --raw -o {tmp_path / 'y.npy'}",
                       capsys)
    assert status == 0, cap.err
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8 and y.shape == (len(q), 10)
    np.testing.assert_array_equal(y, _golden(load_onnx_qdq(path), q))
    assert np.abs(y.astype(np.int64) - _onnxruntime(path, qg, q)).max() <= 1
    status, cap = _run(f"compress {path} --engine systolic -o {tmp_path / 'i2'} "
                       f"--calibration {tmp_path / 'x.npy'}", capsys)
    assert status == 2 and "--calibration is not used with a quantized .onnx" in cap.err


@pytest.mark.rtl
@pytest.mark.parametrize("model", ["cnn", "res"])
def test_rtl_equals_golden(model, models, digits):
    qg = load_onnx_qdq(models[model, "QDQ", True])
    q = _vectors(qg, digits[2][:4], 4)
    run = run_graph(qg, raw_inputs(qg, q), "rtl", config=PRESETS["4x4"])
    np.testing.assert_array_equal(run.output, _golden(qg, q))
    assert run.cycles > 0
