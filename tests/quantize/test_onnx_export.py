"""ONNX export: save_onnx -> load_onnx_graph gives back the same graph (ops, names,
attributes, weights bit for bit), whose forward equals the original's and onnxruntime's on
the exported file; unsupported ops are refused in one line; the write is atomic."""

import math

import numpy as np
import onnx
import pytest

from quantize.digits import load_digits_split
from quantize.graph import Graph, Node
from quantize.onnx_export import OPSET, save_onnx
from quantize.onnx_import import load_onnx_graph
from quantize.train_cnn import train_digits_cnn

ort = pytest.importorskip("onnxruntime")


def onnxruntime_forward(path, x):
    """onnxruntime on the file, every op as the standard defines it (no fusions)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in sess.get_inputs()]
    return sess.run(None, {name: x})[0]


def close(got, want):
    """Equal to 1e-5 relative to the output's scale; returns the largest relative error."""
    scale = float(np.abs(want).max())
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert got.shape == want.shape and err <= 1e-5, err
    return err


def round_trip(graph, path, x, batch="N"):
    save_onnx(graph, path, batch=batch)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    back = load_onnx_graph(path)
    assert [(n.name, n.op, n.inputs, n.output, n.shape) for n in back.nodes] == \
        [(n.name, n.op, n.inputs, n.output, n.shape) for n in graph.nodes]
    for a, b in zip(back.nodes, graph.nodes, strict=True):
        assert a.attrs == b.attrs, a.name
        for k in b.params:
            np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=f"{a.name}.{k}")
    want = graph.forward(x)
    return close(back.forward(x), want), close(onnxruntime_forward(path, x), want)


def test_trained_digits_cnn_round_trip(tmp_path):
    x_tr, y_tr, x_te, _ = load_digits_split()
    graph = train_digits_cnn(x_tr, y_tr, epochs=3)
    x = x_te.reshape(-1, 1, 8, 8)
    round_trip(graph, tmp_path / "cnn.onnx", x)
    model = onnx.load(str(tmp_path / "cnn.onnx"))
    assert [o.version for o in model.opset_import] == [OPSET]
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Relu",
                                                     "MaxPool", "Flatten", "Gemm"]
    dim = model.graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param == "N" and [d.dim_value for d in dim[1:]] == [1, 8, 8]
    round_trip(graph, tmp_path / "one.onnx", x[:1], batch=1)
    dim = onnx.load(str(tmp_path / "one.onnx")).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dim] == [1, 10]


def every_op(seed=0) -> Graph:
    """Every exportable op: convs (strided, uneven pads, depthwise), both Clip forms and
    Relu6, pools with pads, a residual Add, Concat on channels and on features, Reshape to
    a sequence and a per-token Linear (MatMul), Gelu, Tanh, Sigmoid, Silu, Softmax."""
    rng = np.random.default_rng(seed)

    def p(*shape):
        n = math.prod(shape[1:])
        return {"weight": rng.standard_normal(shape) / math.sqrt(n),
                "bias": 0.1 * rng.standard_normal(shape[0])}

    pool = {"kernel": (3, 3), "stride": (1, 1), "pads": (1, 1, 1, 1)}
    return Graph("image", (3, 8, 8), [
        Node("c1", "Conv2d", "image", "c1", {"pads": (1, 1, 1, 1)}, p(6, 3, 3, 3)),
        Node("r6", "Relu6", "c1", "r6"),
        Node("dw", "Conv2d", "r6", "dw", {"stride": (2, 2), "pads": (1, 0, 1, 1), "groups": 6},
             p(12, 1, 3, 3)),
        Node("lo", "Clip", "dw", "lo", {"max": 0.5}),
        Node("hi", "Clip", "lo", "hi", {"min": -0.25}),
        Node("mp", "MaxPool2d", "hi", "mp", {"kernel": (2, 2), "pads": (1, 1, 0, 0)}),
        Node("c2", "Conv2d", "image", "c2", {"stride": (2, 2)}, p(12, 3, 1, 1)),
        Node("add", "Add", ("mp", "c2"), "add"),
        Node("relu", "Relu", "add", "relu"),
        Node("ap", "AvgPool2d", "relu", "ap", pool),
        Node("ap_pad", "AvgPool2d", "relu", "ap_pad", {**pool, "count_include_pad": True}),
        Node("cat", "Concat", ("ap", "ap_pad"), "cat"),
        Node("tokens", "Reshape", "cat", "tokens", {"shape": (24, 16)}),
        Node("tok", "Linear", "tokens", "tok", {}, p(8, 16)),
        Node("gelu", "Gelu", "tok", "gelu"),
        Node("tanh", "Tanh", "gelu", "tanh"),
        Node("flat", "Flatten", "tanh", "flat"),
        Node("gap", "GlobalAveragePool", "cat", "gap"),
        Node("flat2", "Flatten", "gap", "flat2"),
        Node("sig", "Sigmoid", "flat2", "sig"),
        Node("join", "Concat", ("flat", "sig"), "join"),
        Node("fc1", "Linear", "join", "fc1", {}, p(32, 216)),
        Node("silu", "Silu", "fc1", "silu"),
        Node("fc2", "Linear", "silu", "fc2", {}, p(10, 32)),
        Node("prob", "Softmax", "fc2", "prob"),
    ])


def test_every_exportable_op_round_trips(tmp_path):
    graph = every_op()
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32) * 2
    round_trip(graph, tmp_path / "all.onnx", x)
    # the logits too (Softmax flattens differences): the graph without its last node
    logits = Graph(graph.input_name, graph.input_shape, graph.nodes[:-1])
    round_trip(logits, tmp_path / "logits.onnx", x)


def test_unsupported_op_refused_in_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    w = {"weight": np.ones((2, 4)), "bias": np.zeros(2)}
    for op, attrs, say in (("HardSwish", {}, "HardSwish is an opset-14 op"),
                           ("Gelu", {"approximate": "tanh"}, "the tanh approximation of Gelu")):
        g = Graph("x", (4,), [Node("fc", "Linear", "x", "fc", {}, w),
                              Node("act", op, "fc", "act", attrs)])
        with pytest.raises(ValueError) as e:
            save_onnx(g, path)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"node 'act' ({op}): {say}"), msg
        assert "exportable ops: Linear, Conv2d" in msg
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    for bad in (0, True, "", 1.5):
        with pytest.raises(ValueError, match="batch must be"):
            save_onnx(g, path, batch=bad)


def test_write_replaces_atomically(tmp_path):
    graph = every_op()
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    assert save_onnx(graph, path) == path
    assert load_onnx_graph(path).describe() == graph.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(IsADirectoryError):
        save_onnx(graph, tmp_path)


def test_value_names_that_collide_with_weight_names(tmp_path):
    """A value called like a weight initializer: the exporter picks another initializer
    name, and node names still come back."""
    w = {"weight": np.arange(12.0).reshape(3, 4) / 10, "bias": np.ones(3)}
    g = Graph("fc.weight", (4,), [Node("fc", "Linear", "fc.weight", "fc.bias", {}, w),
                                  Node("r", "Relu6", "fc.bias", "r.min")])
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32) * 5
    round_trip(g, tmp_path / "c.onnx", x)


def test_clip_bounds_are_float32(tmp_path):
    """ONNX Clip bounds have the input's type, so -0.2 comes back as float32(-0.2)."""
    g = Graph("x", (4,), [Node("c", "Clip", "x", "c", {"min": -0.2, "max": 0.5})])
    save_onnx(g, tmp_path / "c.onnx")
    back = load_onnx_graph(tmp_path / "c.onnx").node("c").attrs
    assert back == {"min": float(np.float32(-0.2)), "max": 0.5} and back["min"] != -0.2
