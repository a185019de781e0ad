"""quantize/tflite_import.py: what it refuses (one line naming the op and the tensor), the
raw int8 input/output helpers, and one-op models against LiteRT."""

import numpy as np
import pytest

from quantize.graph_quant import QParams
from quantize.graph_run import run_graph
from quantize.tflite_import import load_tflite, raw_inputs, raw_outputs
from tests.quantize.test_host_ops import _INT32, _t, _tfl_model, _tfl_run

_FLOAT32, _INT16 = 0, 7
P_IN, P_OUT = QParams(0.05, 3), QParams(0.1, -7)
FC = (9, (8, "FullyConnectedOptions", {}))


def _fc(tmp_path, x=None, w=None, out=None, w_scale=(0.01, 0.02, 0.03), qdim=0, w_zp=None,
        opcode=FC):
    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 128, (3, 4)).astype(np.int8)
    ws = np.asarray(w_scale, float)
    tensors = [x or _t((1, 4), P_IN),
               w or _t((3, 4), scale=ws, zp=np.zeros(len(ws), int) if w_zp is None else w_zp,
                       qdim=qdim, data=wq.tobytes()),
               {"shape": (3,), "type": _INT32, "scale": P_IN.scale * np.resize(ws, 3),
                "zp": np.zeros(3, int), "data": np.array([5, -90, 300], np.int32).tobytes()},
               out or _t((1, 3), P_OUT)]
    content = _tfl_model(opcode[0], opcode[1], tensors, [0, 1, 2], [3])
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    return path, content


def test_one_fully_connected_matches_litert(tmp_path):
    for scales in ((0.01, 0.02, 0.03), (0.02,)):        # per channel and per tensor
        path, content = _fc(tmp_path, w_scale=scales)
        qg = load_tflite(path)
        x = np.random.default_rng(1).integers(-128, 128, (64, 4)).astype(np.int8)
        x[:3] = [[-128] * 4, [127] * 4, [3] * 4]
        want = np.concatenate([_tfl_run(content, row[None]) for row in x])
        got = raw_outputs(run_graph(qg, raw_inputs(qg, x)).output)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case,message", [
    ("float", r"model input \(read by op 0 \(FULLY_CONNECTED\)\): tensor 't0' is FLOAT32, "
              r"not INT8; convert fully integer"),
    ("int16", r"model input \(read by op 0 \(FULLY_CONNECTED\)\): tensor 't0' is INT16, not "
              r"INT8; int16 activations"),
    ("int16out", r"op 0 \(FULLY_CONNECTED\): tensor 't3' is INT16, not INT8"),
    ("op", r"op 0 \(MUL\): not supported \(output tensor 't2'\)"),
    ("axis", r"op 0 \(FULLY_CONNECTED\): weights 't1' have 3 scales on axis 1; the engine "),
    ("count", r"op 0 \(FULLY_CONNECTED\): weights 't1' have 2 scales on axis 0"),
    ("zp", r"op 0 \(FULLY_CONNECTED\): weights 't1' have nonzero zero points"),
])
def test_refusals_name_the_op_and_tensor(tmp_path, case, message):
    pytest.importorskip("tflite")
    if case == "float":
        path, _ = _fc(tmp_path, x={"shape": (1, 4), "type": _FLOAT32})
    elif case == "int16":
        path, _ = _fc(tmp_path, x=_t((1, 4), P_IN, type=_INT16))
    elif case == "int16out":
        path, _ = _fc(tmp_path, out=_t((1, 3), P_OUT, type=_INT16))
    elif case == "op":
        content = _tfl_model(18, (11, "MulOptions", {}),
                             [_t((1, 4), P_IN), _t((1, 4), P_IN, data=bytes(4)),
                              _t((1, 4), P_OUT)], [0, 1], [2])
        path = tmp_path / "m.tflite"
        path.write_bytes(content)
    elif case == "axis":
        path, _ = _fc(tmp_path, qdim=1)
    elif case == "count":
        path, _ = _fc(tmp_path, w_scale=(0.01, 0.02))
    else:
        path, _ = _fc(tmp_path, w_zp=np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=message) as err:
        load_tflite(path)
    assert "\n" not in str(err.value)


def test_unreadable_files_and_paths(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable .tflite model"):
        load_tflite(bad)
    with pytest.raises(FileNotFoundError):
        load_tflite(tmp_path / "missing.tflite")
    path, _ = _fc(tmp_path)
    with pytest.raises(ValueError, match="path='fast'"):
        load_tflite(path, path="fast")


def test_raw_inputs_round_trip_and_layouts(tmp_path):
    path, _ = _fc(tmp_path)
    qg = load_tflite(path)
    x = np.arange(-128, 128, dtype=np.int8).reshape(64, 4)
    np.testing.assert_array_equal(qg.quantize_input(raw_inputs(qg, x)), x)
    with pytest.raises(ValueError, match=r"raw inputs must have shape N x 4, got \[2, 5\]"):
        raw_inputs(qg, np.zeros((2, 5), np.int8))
    with pytest.raises(ValueError, match="int8 codes"):
        raw_inputs(qg, np.full((2, 4), 300))
    y = np.arange(24).reshape(1, 2, 3, 4)               # N C H W -> N H W C
    assert raw_outputs(y).shape == (1, 3, 4, 2)
    assert raw_outputs(y, nhwc=False).shape == (1, 2, 3, 4)


def test_corrupt_files_are_refused_in_one_line_or_load(tmp_path):
    """Random byte edits of the CNN fixture: a ValueError of one line, or a model that
    loads (weights or scales edited) and runs."""
    from tests.quantize.test_tflite_conformance import FIXTURES
    buf = (FIXTURES / "cnn.tflite").read_bytes()
    rng = np.random.default_rng(7)
    outcomes = {"refused": 0, "ran": 0}
    for _ in range(120):
        b = bytearray(buf)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        path = tmp_path / "c.tflite"
        path.write_bytes(bytes(b))
        try:
            qg = load_tflite(path)
        except ValueError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
            continue
        try:
            run_graph(qg, raw_inputs(qg, np.zeros((1, *qg.graph.input_shape), np.int8)))
        except ValueError as e:
            assert "\n" not in str(e)
        outcomes["ran"] += 1
    assert outcomes["refused"] > 10 and outcomes["ran"] > 10


@pytest.mark.parametrize("path", ["reference", "optimized"])
@pytest.mark.parametrize("opcode,out", [(14, QParams(1 / 256, -128)), (28, QParams(1 / 128, 0))])
def test_logistic_and_tanh_tables_equal_litert_on_all_256_codes(tmp_path, path, opcode, out):
    """The imported table against LiteRT's int8 LOGISTIC (14) and TANH (28) kernels of
    either resolver, every input code, several input quantizations."""
    it = pytest.importorskip("ai_edge_litert.interpreter")
    resolver = getattr(it.OpResolverType, "BUILTIN_REF" if path == "reference"
                       else "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    rng = np.random.default_rng(opcode)
    codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for _ in range(6):
        p_in = QParams(float(rng.uniform(0.005, 0.2)), int(rng.integers(-100, 100)))
        content = _tfl_model(opcode, None, [_t((1, 256), p_in), _t((1, 256), out)], [0], [1])
        path_file = tmp_path / "a.tflite"
        path_file.write_bytes(content)
        qg = load_tflite(path_file, path)
        interp = it.Interpreter(model_content=content, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], codes)
        interp.invoke()
        want = interp.get_tensor(interp.get_output_details()[0]["index"])
        got = raw_outputs(run_graph(qg, raw_inputs(qg, codes)).output)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("path", ["reference", "optimized"])
def test_int8_softmax_equals_litert(tmp_path, path):
    """sim/golden/softmax.py through the importer against LiteRT's int8 SOFTMAX (fixed point
    on the reference resolver, float table on the optimized one): rows of equal codes,
    extremes, random; input scales 0.005..0.3, beta 1 and 0.5."""
    it = pytest.importorskip("ai_edge_litert.interpreter")
    resolver = getattr(it.OpResolverType, "BUILTIN_REF" if path == "reference"
                       else "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    rng = np.random.default_rng(11)
    for trial in range(12):
        depth = int(rng.integers(2, 40))
        p_in = QParams(float(rng.uniform(0.005, 0.3)), int(rng.integers(-100, 100)))
        beta = 1.0 if trial % 3 else 0.5
        content = _tfl_model(25, (9, "SoftmaxOptions", {"Beta": beta}),
                             [_t((1, depth), p_in), _t((1, depth), QParams(1 / 256, -128))],
                             [0], [1])
        (tmp_path / "s.tflite").write_bytes(content)
        qg = load_tflite(tmp_path / "s.tflite", path)
        x = rng.integers(-128, 128, (200, depth)).astype(np.int8)
        x[0], x[1], x[2] = 127, -128, p_in.zero_point
        x[3, :] = -128
        x[3, 0] = 127
        interp = it.Interpreter(model_content=content, experimental_op_resolver_type=resolver)
        interp.resize_tensor_input(0, list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        want = interp.get_tensor(interp.get_output_details()[0]["index"])
        got = raw_outputs(run_graph(qg, raw_inputs(qg, x)).output)
        np.testing.assert_array_equal(got, want)
