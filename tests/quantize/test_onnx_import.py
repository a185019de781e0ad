"""ONNX importer: every supported network's IR forward equals onnxruntime on the same file;
BN folded exactly; unsupported ops and attributes refused in one line naming node and op."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from quantize.onnx_import import load_onnx_graph

ort = pytest.importorskip("onnxruntime")


class Net:
    """Builds an ONNX graph node by node, with seeded random initializers."""

    def __init__(self, shape, seed=0):
        self.shape, self.nodes, self.inits = shape, [], {}
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def init(self, name, a):
        self.inits[name] = np.asarray(a, np.float32) if np.asarray(a).dtype.kind == "f" \
            else np.asarray(a)
        return name

    def rand(self, name, shape, fan_in=None):
        a = self.rng.standard_normal(shape) / math.sqrt(fan_in or shape[-1])
        return self.init(name, a)

    def node(self, op, inputs, name=None, outputs=1, **attrs):
        self.count += 1
        name = name or f"{op.lower()}{self.count}"
        outs = [f"{name}_out"] + [f"{name}_out{k}" for k in range(1, outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def conv(self, x, c_in, c_out, k, name=None, group=1, bias=True, **attrs):
        name = name or f"conv{self.count + 1}"
        w = self.rand(f"{name}.weight", (c_out, c_in // group, k, k), c_in // group * k * k)
        ins = [x, w] + ([self.rand(f"{name}.bias", (c_out,), 1)] if bias else [])
        return self.node("Conv", ins, name=name, kernel_shape=[k, k], group=group, **attrs)

    def bn(self, x, c, name=None, eps=1e-5):
        name = name or f"bn{self.count + 1}"
        r = self.rng
        stats = [self.init(f"{name}.{s}", v) for s, v in (
            ("gamma", r.uniform(0.5, 1.5, c)), ("beta", r.normal(0, 0.3, c)),
            ("mean", r.normal(0, 0.3, c)), ("var", r.uniform(0.2, 2.0, c)))]
        return self.node("BatchNormalization", [x, *stats], name=name, epsilon=eps)

    def gemm(self, x, n_in, n_out, name=None):
        name = name or f"fc{self.count + 1}"
        w = self.rand(f"{name}.weight", (n_out, n_in))
        b = self.rand(f"{name}.bias", (n_out,), 1)
        return self.node("Gemm", [x, w, b], name=name, transB=1)

    def linear(self, x, n_in, n_out, name):
        """MatMul with an initializer + Add bias, as PyTorch exports nn.Linear on 3-D input."""
        m = self.node("MatMul", [x, self.rand(f"{name}.weight", (n_in, n_out), n_in)],
                      name=f"{name}/MatMul")
        return self.node("Add", [self.rand(f"{name}.bias", (n_out,), 1), m],
                         name=f"{name}/Add")

    def save(self, path, out, opset=17, batch="N", ir_version=9):
        graph = helper.make_graph(
            self.nodes, "net",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *self.shape])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = ir_version
        onnx.save(model, str(path))
        return path


def reference(path, x):
    """onnxruntime on the file, every op evaluated as the standard defines it (no fusions)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def check(path, x):
    """The IR's forward equals onnxruntime to 1e-5 relative (to the output's scale)."""
    graph = load_onnx_graph(path)
    ref = reference(path, x)
    got = graph.forward(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert graph.output_shape == ref.shape[1:]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    return graph


def ops(graph):
    return [n.op for n in graph.nodes]


def images(shape, n=3, seed=1):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def test_lenet(tmp_path):
    net = Net((1, 28, 28))
    h = net.node("Relu", [net.conv("x", 1, 6, 5, name="conv1", pads=[2, 2, 2, 2])])
    h = net.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = net.node("Relu", [net.conv(h, 6, 16, 5, name="conv2")])
    h = net.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = net.node("Flatten", [h])
    h = net.node("Relu", [net.gemm(h, 400, 120, "fc1")])
    h = net.node("Relu", [net.gemm(h, 120, 84, "fc2")])
    out = net.gemm(h, 84, 10, "fc3")
    g = check(net.save(tmp_path / "lenet.onnx", out), images((1, 28, 28)))
    assert ops(g) == ["Conv2d", "Relu", "MaxPool2d", "Conv2d", "Relu", "MaxPool2d", "Flatten",
                      "Linear", "Relu", "Linear", "Relu", "Linear"]
    assert [n.shape for n in g.nodes][:7] == [(6, 28, 28), (6, 28, 28), (6, 14, 14),
                                              (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,)]
    assert [n.name for n in g.nodes if n.op in ("Conv2d", "Linear")] == \
        ["conv1", "conv2", "fc1", "fc2", "fc3"]
    np.testing.assert_array_equal(g.node("fc1").weight, net.inits["fc1.weight"])


def test_resnet_basic_block_with_projection(tmp_path):
    net = Net((16, 8, 8))
    h = net.bn(net.conv("x", 16, 32, 3, strides=[2, 2], pads=[1, 1, 1, 1], bias=False), 32,
               eps=1e-3)
    h = net.node("Relu", [h])
    h = net.bn(net.conv(h, 32, 32, 3, pads=[1, 1, 1, 1], bias=False), 32, eps=1e-3)
    skip = net.bn(net.conv("x", 16, 32, 1, strides=[2, 2], bias=False), 32, eps=1e-3)
    h = net.node("Relu", [net.node("Add", [h, skip])])
    h = net.node("Flatten", [net.node("GlobalAveragePool", [h])])
    out = net.node("Softmax", [net.gemm(h, 32, 10)], axis=-1)
    g = check(net.save(tmp_path / "resnet.onnx", out), images((16, 8, 8)))
    assert ops(g) == ["Conv2d", "Relu", "Conv2d", "Conv2d", "Add", "Relu",
                      "GlobalAveragePool", "Flatten", "Linear", "Softmax"]
    assert g.shapes[g.nodes[4].output] == (32, 4, 4)


def test_batchnorm_folding_is_exact(tmp_path):
    """The folded conv equals conv followed by BN (both in onnxruntime), epsilon honoured."""
    x = images((3, 6, 6))
    for eps in (1e-5, 0.5):
        net = Net((3, 6, 6), seed=int(eps * 10))
        c = net.conv("x", 3, 4, 3, name="conv", pads=[1, 1, 1, 1])
        out = net.bn(c, 4, name="bn", eps=eps)
        path = net.save(tmp_path / "bn.onnx", out)
        g = check(path, x)
        assert ops(g) == ["Conv2d"]
        s = net.inits["bn.gamma"] / np.sqrt(net.inits["bn.var"].astype(np.float64) + eps)
        np.testing.assert_allclose(g.node("conv").weight,
                                   net.inits["conv.weight"] * s[:, None, None, None],
                                   rtol=1e-6)
        conv_only = Net((3, 6, 6))
        conv_only.nodes, conv_only.inits = net.nodes[:1], net.inits
        y = reference(conv_only.save(tmp_path / "c.onnx", c), x).astype(np.float64)
        m, v = net.inits["bn.mean"][:, None, None], net.inits["bn.var"][:, None, None]
        bn = (net.inits["bn.gamma"][:, None, None] * (y - m) / np.sqrt(v + eps)
              + net.inits["bn.beta"][:, None, None])
        np.testing.assert_allclose(g.forward(x), bn, rtol=1e-5, atol=1e-5)


def test_batchnorm_after_gemm_folds(tmp_path):
    net = Net((12,))
    out = net.bn(net.gemm("x", 12, 5, "fc"), 5)
    g = check(net.save(tmp_path / "m.onnx", out), images((12,), n=4))
    assert ops(g) == ["Linear"]


@pytest.mark.parametrize("opset", [10, 13])
def test_mobilenet_block_relu6(tmp_path, opset):
    """Expand 1x1 -> BN -> Clip(0,6) -> depthwise 3x3 stride 2 -> BN -> Clip -> project 1x1
    -> BN; Clip's bounds are attributes before opset 11 and inputs from 11 on."""
    net = Net((8, 32, 32))

    def relu6(h):
        if opset < 11:
            return net.node("Clip", [h], min=0.0, max=6.0)
        return net.node("Clip", [h, net.init("zero", 0.0), net.init("six", 6.0)])

    h = relu6(net.bn(net.conv("x", 8, 16, 1, bias=False), 16))
    h = relu6(net.bn(net.conv(h, 16, 16, 3, group=16, strides=[2, 2], pads=[1, 1, 1, 1],
                              bias=False), 16))
    out = net.bn(net.conv(h, 16, 8, 1, bias=False), 8)
    g = check(net.save(tmp_path / "mb.onnx", out, opset=opset, ir_version=5 + (opset > 10)),
              images((8, 32, 32), n=2) * 3)
    assert ops(g) == ["Conv2d", "Relu6", "Conv2d", "Relu6", "Conv2d"]
    assert g.nodes[2].attrs["groups"] == 16 and g.nodes[2].shape == (16, 16, 16)


def test_depthwise_multiplier_clip_and_same_padding(tmp_path):
    net = Net((4, 9, 9))
    h = net.conv("x", 4, 8, 3, group=4, strides=[2, 2], auto_pad="SAME_UPPER")
    h = net.node("Clip", [h, net.init("lo", -0.5), net.init("hi", 0.75)])
    h = net.conv(h, 8, 6, 2, strides=[2, 2], auto_pad="SAME_LOWER")
    out = net.conv(h, 6, 3, 3, auto_pad="VALID")
    g = check(net.save(tmp_path / "m.onnx", out), images((4, 9, 9)))
    assert ops(g) == ["Conv2d", "Clip", "Conv2d", "Conv2d"]
    assert g.nodes[0].attrs["pads"] == (1, 1, 1, 1) and g.nodes[2].attrs["pads"] == (1, 1, 0, 0)
    assert [n.shape for n in g.nodes] == [(8, 5, 5), (8, 5, 5), (6, 3, 3), (3, 1, 1)]


def _ffn_gelu(net, h, form):
    if form == "op":
        return net.node("Gelu", [h])
    if form == "tanh":
        return net.node("Gelu", [h], approximate="tanh")
    if form == "torch":  # ((x * (1 + erf(x / sqrt2))) * 0.5
        e = net.node("Erf", [net.node("Div", [h, net.init("sqrt2", math.sqrt(2))])])
        a = net.node("Add", [e, net.init("one", 1.0)])
        return net.node("Mul", [net.node("Mul", [h, a]), net.init("half", 0.5)])
    half = net.node("Mul", [net.init("half", 0.5), h])  # hf: (0.5 * x) * (1 + erf(x * 1/sqrt2))
    e = net.node("Erf", [net.node("Mul", [h, net.init("rsqrt2", 1 / math.sqrt(2))])])
    return net.node("Mul", [half, net.node("Add", [net.init("one", 1.0), e])])


@pytest.mark.parametrize("form", ["op", "tanh", "torch", "hf"])
def test_transformer_ffn(tmp_path, form):
    net = Net((6, 384))
    h = _ffn_gelu(net, net.linear("x", 384, 1536, "ffn.fc1"), form)
    out = net.linear(h, 1536, 384, "ffn.fc2")
    opset = 20 if form in ("op", "tanh") else 17
    g = check(net.save(tmp_path / "ffn.onnx", out, opset=opset, ir_version=9 + (opset > 19)),
              images((6, 384), n=2))
    assert ops(g) == ["Linear", "Gelu", "Linear"]
    assert g.nodes[1].attrs["approximate"] == ("tanh" if form == "tanh" else "none")
    assert [n.name for n in g.nodes if n.op == "Linear"] == ["ffn.fc1", "ffn.fc2"]
    assert g.output_shape == (6, 384)
    np.testing.assert_array_equal(g.node("ffn.fc1").bias, net.inits["ffn.fc1.bias"])


def test_activations_and_softmax(tmp_path):
    net = Net((32,))
    h = net.node("Sigmoid", [net.gemm("x", 32, 24)])
    h = net.node("Tanh", [net.gemm(h, 24, 24)])
    h = net.node("HardSwish", [net.gemm(h, 24, 16)])
    h = net.gemm(h, 16, 16)
    h = net.node("Mul", [net.node("Sigmoid", [h]), h])
    out = net.node("Softmax", [net.gemm(h, 16, 10)])
    g = check(net.save(tmp_path / "act.onnx", out, opset=14), images((32,), n=5) * 4)
    assert ops(g) == ["Linear", "Sigmoid", "Linear", "Tanh", "Linear", "HardSwish", "Linear",
                      "Silu", "Linear", "Softmax"]
    np.testing.assert_allclose(g.forward(images((32,))).sum(axis=1), 1.0, rtol=1e-6)


def test_concat_pools(tmp_path):
    net = Net((4, 8, 8))
    a = net.node("Relu", [net.conv("x", 4, 6, 3, pads=[1, 1, 1, 1])])
    b = net.conv("x", 4, 5, 1)
    h = net.node("Concat", [a, b], axis=1)
    h = net.node("AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    h2 = net.node("AveragePool", [h], kernel_shape=[2, 3], pads=[1, 1, 0, 1],
                  count_include_pad=1)
    h3 = net.node("MaxPool", [h], kernel_shape=[2, 2], pads=[1, 1, 0, 0])
    h = net.node("Concat", [h2, h3, h2], axis=-3)
    h = net.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    out = net.gemm(net.node("Flatten", [net.node("GlobalAveragePool", [h])]), 33, 7)
    g = check(net.save(tmp_path / "cat.onnx", out), images((4, 8, 8)))
    assert ops(g) == ["Conv2d", "Relu", "Conv2d", "Concat", "AvgPool2d", "AvgPool2d",
                      "MaxPool2d", "Concat", "MaxPool2d", "GlobalAveragePool", "Flatten",
                      "Linear"]
    assert g.nodes[4].shape == (11, 4, 4) and g.nodes[7].shape == (33, 4, 4)


def test_reshape_identity_dropout_constant(tmp_path):
    net = Net((8, 4, 4))
    h = net.node("Identity", [net.node("Relu", [net.conv("x", 8, 8, 3, pads=[1, 1, 1, 1])])])
    shape = net.node("Constant", [], value=numpy_helper.from_array(
        np.array([0, 4, -1], np.int64)))
    h = net.node("Reshape", [h, shape])                    # (8, 4, 4) -> (4, 32)
    h = net.linear(h, 32, 16, "tok")                       # per-row Linear on 3-D values
    h = net.node("Dropout", [h, net.init("ratio", 0.5)])
    h = net.node("Reshape", [h, net.init("flat", np.array([-1, 64], np.int64))])
    out = net.node("Gemm", [h, net.rand("w", (64, 10)), net.rand("c", (1, 10), 1)],
                   alpha=0.5, beta=2.0)
    g = check(net.save(tmp_path / "m.onnx", out, opset=13), images((8, 4, 4)))
    assert ops(g) == ["Conv2d", "Relu", "Reshape", "Linear", "Flatten", "Linear"]
    assert g.nodes[2].attrs["shape"] == (4, 32)
    np.testing.assert_allclose(g.nodes[-1].weight, 0.5 * net.inits["w"].T)


def test_clip_forms_and_batch_one_reshape(tmp_path):
    """Clip with only a lower bound of 0 is Relu, with only an upper bound a one-sided Clip;
    a Reshape that fixes the batch at 1 is read only when the input's batch is fixed at 1."""
    net = Net((3, 4, 4))
    h = net.node("Clip", [net.conv("x", 3, 4, 3, pads=[1, 1, 1, 1]), net.init("zero", 0.0)])
    h = net.node("Clip", [net.conv(h, 4, 4, 1), "", net.init("hi", 0.5)])
    out = net.node("Reshape", [h, net.init("s", np.array([1, -1], np.int64))], name="flat")
    g = check(net.save(tmp_path / "one.onnx", out, batch=1), images((3, 4, 4), n=1))
    assert ops(g) == ["Conv2d", "Relu", "Conv2d", "Clip", "Flatten"]
    assert (g.nodes[3].attrs["min"], g.nodes[3].attrs["max"]) == (-np.inf, 0.5)
    net.save(tmp_path / "n.onnx", out, batch="N")
    with pytest.raises(ValueError, match=r"node 'flat' \(Reshape\): target shape \[1, -1\] "
                                         r"fixes the batch at 1; use 0 or -1 first"):
        load_onnx_graph(tmp_path / "n.onnx")


def test_external_data_beside_the_model(tmp_path):
    net = Net((10,))
    out = net.gemm(net.node("Relu", [net.gemm("x", 10, 8, "fc1")]), 8, 3, "fc2")
    path = net.save(tmp_path / "plain.onnx", out)
    (tmp_path / "m").mkdir()
    onnx.save_model(onnx.load(str(path)), str(tmp_path / "m" / "model.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="data.bin", size_threshold=0)
    check(tmp_path / "m" / "model.onnx", images((10,)))
    evil = onnx.load(str(tmp_path / "m" / "model.onnx"), load_external_data=False)
    for t in evil.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../plain.onnx"
    onnx.save(evil, str(tmp_path / "m" / "evil.onnx"))
    with pytest.raises(ValueError, match="outside the model's folder"):
        load_onnx_graph(tmp_path / "m" / "evil.onnx")


def _dynamic_input(tmp_path):
    net = Net((3, 8, 8))
    path = net.save(tmp_path / "d.onnx", net.conv("x", 3, 4, 3, name="c"))
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    onnx.save(model, str(path))
    return path


REFUSALS = {
    "dilated conv": lambda net: (net.conv("x", 4, 4, 3, name="dil", dilations=[2, 2]),
                                 "dil", "Conv", "dilations=[2, 2] are not supported"),
    "grouped conv": lambda net: (net.conv("x", 4, 4, 3, name="grp", group=2), "grp", "Conv",
                                 "group=2 with 4 input channels is a grouped convolution"),
    "ceil_mode": lambda net: (net.node("MaxPool", ["x"], name="mp", kernel_shape=[3, 3],
                                       strides=[2, 2], ceil_mode=1),
                              "mp", "MaxPool", "ceil_mode=1 is not supported"),
    "einsum": lambda net: (net.node("Einsum", ["x", net.rand("e", (4, 4))], name="ein",
                                    equation="nchw,cd->ndhw"),
                           "ein", "Einsum", "unsupported op; supported: Gemm, MatMul"),
    "resize": lambda net: (net.node("Resize", ["x", "", net.init("sc", [1, 1, 2, 2])],
                                    name="up"), "up", "Resize", "unsupported op"),
    "lstm": lambda net: (net.node("LSTM", [net.node("Flatten", ["x"]),
                                           net.rand("W", (1, 16, 256)),
                                           net.rand("R", (1, 16, 4))], name="rnn",
                                  hidden_size=4, outputs=1),
                         "rnn", "LSTM", "unsupported op"),
    "softmax mid-graph": lambda net: (
        net.node("Relu", [net.node("Softmax", ["x"], name="sm", axis=-1)]),
        "sm", "Softmax", "supported only as the graph's last node"),
    "shape op": lambda net: (net.node("Reshape", ["x", net.node("Shape", ["x"], name="shp")]),
                             "shp", "Shape", "dynamic shapes, which are not supported"),
    "bn not after conv": lambda net: (net.bn("x", 4, name="bn0"), "bn0", "BatchNormalization",
                                      "only directly after a Conv/Gemm/MatMul"),
    "broadcast add": lambda net: (
        net.node("Add", [net.node("Relu", ["x"]),
                         net.node("GlobalAveragePool", ["x"])], name="badd"),
        "badd", "Add", "only same-shape (residual) Add"),
    "stray erf": lambda net: (net.node("Erf", ["x"], name="erf"), "erf", "Erf",
                              "only inside GELU"),
    "conv without weight": lambda net: (net.node("Conv", ["x"], name="c0"), "c0", "Conv",
                                        "needs 2 input(s) and an output, got 1"),
    "identity cycle": lambda net: (net.node("Identity", ["id_out"], name="id"), "id", "Identity",
                                   "reads its own output"),
    "softmax not last axis": lambda net: (net.node("Softmax", ["x"], name="sm1", axis=1),
                                          "sm1", "Softmax", "only the last axis"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_name_node_and_op(tmp_path, case):
    net = Net((4, 8, 8))
    out, node, op, say = REFUSALS[case](net)
    net.save(tmp_path / "r.onnx", out, opset=17)
    with pytest.raises(ValueError) as e:
        load_onnx_graph(tmp_path / "r.onnx")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"node '{node}' ({op}): " in msg and say in msg, msg


def test_dynamic_input_and_old_opset_refused(tmp_path):
    path = _dynamic_input(tmp_path)
    with pytest.raises(ValueError, match=r"graph input 'x' has a dynamic dimension 2 \(H\)"):
        load_onnx_graph(path)
    net = Net((4,))
    net.save(tmp_path / "old.onnx", net.node("Relu", ["x"]), opset=6, ir_version=3)
    with pytest.raises(ValueError, match="opset 6; re-export with opset 7 or later"):
        load_onnx_graph(tmp_path / "old.onnx")
    with pytest.raises(FileNotFoundError):
        load_onnx_graph(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        load_onnx_graph(tmp_path / "junk.onnx")


def _mutate(model, rng):
    """One random edit of a node: an input dropped or rewired, an attribute or op changed,
    the node removed."""
    g = model.graph
    n = g.node[int(rng.integers(len(g.node)))]
    kind = int(rng.integers(5))
    values = [g.input[0].name] + [v for m in g.node for v in m.output]
    if kind == 0 and n.input:
        del n.input[int(rng.integers(len(n.input)))]
    elif kind == 1 and n.input:
        n.input[int(rng.integers(len(n.input)))] = values[int(rng.integers(len(values)))]
    elif kind == 2 and n.attribute:
        a = n.attribute[int(rng.integers(len(n.attribute)))]
        if a.type == onnx.AttributeProto.INTS and a.ints:
            a.ints[int(rng.integers(len(a.ints)))] = int(rng.choice([-1, 0, 7]))
        elif a.type == onnx.AttributeProto.INT:
            a.i = int(rng.choice([-1, 0, 2, 5]))
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = float(rng.choice([np.nan, -1.0, 0.0]))
    elif kind == 3:
        n.op_type = str(rng.choice(["Relu", "Add", "Mul", "Conv", "Gemm", "Softmax", "Concat",
                                    "Reshape", "MaxPool", "BatchNormalization"]))
    else:
        g.node.remove(n)


def test_mutated_models_load_or_fail_in_one_line(tmp_path):
    """Seeded random edits of a CNN and a GELU FFN: each either imports to a graph whose
    forward runs, or is refused with a one-line ValueError (never another exception)."""
    cnn = Net((3, 6, 6))
    r = cnn.node("Relu", [cnn.bn(cnn.conv("x", 3, 4, 3, pads=[1, 1, 1, 1]), 4)])
    h = cnn.node("MaxPool", [cnn.node("Add", [r, cnn.conv(r, 4, 4, 1)])],
                 kernel_shape=[2, 2], strides=[2, 2])
    h = cnn.node("Concat", [h, cnn.node("AveragePool", [h], kernel_shape=[1, 1])], axis=1)
    cnn_out = cnn.node("Softmax", [cnn.gemm(cnn.node("Flatten", [h]), 72, 5)])
    ffn = Net((3, 8))
    ffn_out = ffn.linear(_ffn_gelu(ffn, ffn.linear("x", 8, 16, "fc1"), "torch"), 16, 8, "fc2")
    bases = [cnn.save(tmp_path / "cnn.onnx", cnn_out), ffn.save(tmp_path / "ffn.onnx", ffn_out)]
    rng = np.random.default_rng(7)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(60):
        model = onnx.load(str(bases[i % 2]))
        _mutate(model, rng)
        path = tmp_path / f"m{i}.onnx"
        onnx.save(model, str(path))
        try:
            graph = load_onnx_graph(path)
        except ValueError as e:
            assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
            outcomes["refused"] += 1
            continue
        y = graph.forward(np.ones((2, *graph.input_shape), np.float32))
        assert y.shape == (2, *graph.output_shape)
        outcomes["loaded"] += 1
    assert outcomes["loaded"] >= 3 and outcomes["refused"] >= 30, outcomes  # both paths ran
