"""Graph IR: the float forward against each op written out as loops, shape inference, BN
folding, and one-line errors for graphs that break the IR's rules."""

import math

import numpy as np
import pytest

from quantize.graph import Graph, Node, fold_batchnorm


def _rng(seed=0):
    return np.random.default_rng(seed)


def _padded(x, pads, fill):
    pt, pl, pb, pr = pads
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)


def conv_loops(x, w, b, stride, pads, groups):
    """Direct definition: out[n, o, y, x] = b[o] + sum over the channels of o's group."""
    xp = _padded(x.astype(np.float64), pads, 0.0)
    n, _, hp, wp = xp.shape
    o, i_g, kh, kw = w.shape
    oh, ow = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for oc in range(o):
        first = (oc // per_group) * i_g
        for y in range(oh):
            for xx in range(ow):
                win = xp[:, first:first + i_g, y * stride[0]:y * stride[0] + kh,
                         xx * stride[1]:xx * stride[1] + kw]
                out[:, oc, y, xx] = (win * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
    return out


def pool_loops(x, kernel, stride, pads, kind, count_include_pad=False):
    xp = _padded(x.astype(np.float64), pads, np.nan)
    kh, kw = kernel
    oh, ow = (xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for y in range(oh):
        for xx in range(ow):
            win = xp[:, :, y * stride[0]:y * stride[0] + kh, xx * stride[1]:xx * stride[1] + kw]
            if kind == "max":
                out[:, :, y, xx] = np.nanmax(win, axis=(2, 3))
            elif count_include_pad:
                out[:, :, y, xx] = np.nansum(win, axis=(2, 3)) / (kh * kw)
            else:
                out[:, :, y, xx] = np.nanmean(win, axis=(2, 3))
    return out


@pytest.mark.parametrize("stride, pads, groups, c, o", [
    ((1, 1), (0, 0, 0, 0), 1, 3, 4),
    ((2, 1), (1, 2, 0, 1), 1, 3, 5),
    ((2, 2), (1, 1, 1, 1), 3, 3, 3),      # depthwise
    ((1, 2), (0, 1, 2, 0), 3, 3, 6),      # depthwise, channel multiplier 2
])
def test_conv2d_matches_its_definition(stride, pads, groups, c, o):
    rng = _rng(1)
    x = rng.standard_normal((2, c, 7, 6)).astype(np.float32)
    w = rng.standard_normal((o, c // groups, 3, 2)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    g = Graph("x", (c, 7, 6), [Node("conv", "Conv2d", ("x",), "y",
                                    {"stride": stride, "pads": pads, "groups": groups},
                                    {"weight": w, "bias": b})])
    ref = conv_loops(x, w, b, stride, pads, groups)
    assert g.output_shape == ref.shape[1:]
    np.testing.assert_allclose(g.forward(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, include", [("max", False), ("avg", False), ("avg", True)])
@pytest.mark.parametrize("kernel, stride, pads", [
    ((2, 2), (2, 2), (0, 0, 0, 0)),
    ((3, 2), (2, 1), (1, 1, 2, 0)),
    ((3, 3), (1, 3), (2, 0, 1, 2)),
])
def test_pools_match_their_definition(kind, include, kernel, stride, pads):
    x = _rng(2).standard_normal((2, 3, 7, 8)).astype(np.float32) - 1.0  # max of pads != 0
    attrs = {"kernel": kernel, "stride": stride, "pads": pads}
    if kind == "avg":
        attrs["count_include_pad"] = include
    op = "MaxPool2d" if kind == "max" else "AvgPool2d"
    g = Graph("x", (3, 7, 8), [Node("pool", op, ("x",), "y", attrs)])
    np.testing.assert_allclose(g.forward(x), pool_loops(x, kernel, stride, pads, kind, include),
                               rtol=1e-6, atol=1e-6)


def _erf_gelu(v):
    return 0.5 * v * math.erfc(-v / math.sqrt(2))      # = 0.5 v (1 + erf(v / sqrt 2))


def _tanh_gelu(v):
    u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)   # 0.5 v (1 + tanh u), written
    return v / (1 + math.exp(-2 * u)) if u > -350 else 0.0   # without tanh's cancellation


@pytest.mark.parametrize("op, attrs, scalar", [
    ("Relu", {}, lambda v: max(v, 0.0)),
    ("Relu6", {}, lambda v: min(max(v, 0.0), 6.0)),
    ("Clip", {"min": -1.5, "max": 0.25}, lambda v: min(max(v, -1.5), 0.25)),
    ("Gelu", {}, _erf_gelu),
    ("Gelu", {"approximate": "tanh"}, _tanh_gelu),
    ("Sigmoid", {}, lambda v: 1 / (1 + math.exp(-v)) if v > -700 else 0.0),
    ("Tanh", {}, math.tanh),
    ("HardSwish", {}, lambda v: v * min(max(v + 3, 0), 6) / 6),
    ("Silu", {}, lambda v: v / (1 + math.exp(-v)) if v > -700 else 0.0),
])
def test_pointwise_match_their_definition(op, attrs, scalar):
    x = np.concatenate([np.linspace(-8, 8, 161), [-1000.0, 1000.0, -3.0, 3.0]])[None]
    g = Graph("x", x.shape[1:], [Node("act", op, ("x",), "y", attrs)])
    ref = np.array([[scalar(float(v)) for v in x[0]]])
    np.testing.assert_allclose(g.forward(x), ref, rtol=1e-6, atol=1e-30)


def test_softmax_global_pool_flatten_reshape_concat_add():
    x = _rng(3).standard_normal((4, 2, 3, 5))
    nodes = [
        Node("gap", "GlobalAveragePool", ("x",), "g"),
        Node("cat", "Concat", ("x", "x"), "c"),
        Node("add", "Add", ("c", "c"), "a"),
        Node("r", "Reshape", ("a",), "r", {"shape": (4, 15)}),
        Node("f", "Flatten", ("r",), "f"),
        Node("sm", "Softmax", ("f",), "y"),
    ]
    with pytest.raises(ValueError, match=r"node 'gap' \(GlobalAveragePool\): its output 'g' "
                                         r"is never read; remove the node"):
        Graph("x", (2, 3, 5), nodes)
    g = Graph("x", (2, 3, 5), nodes[1:])
    assert [n.shape for n in g.nodes] == [(4, 3, 5), (4, 3, 5), (4, 15), (60,), (60,)]
    acts = g.activations(x)
    assert set(acts) == {"x", "c", "a", "r", "f", "y"}
    flat = (2 * np.concatenate([x, x], axis=1)).reshape(4, -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    np.testing.assert_allclose(g.forward(x), e / e.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(g.forward(x), acts["y"])
    gp = Graph("x", (2, 3, 5), [Node("gap", "GlobalAveragePool", ("x",), "y")])
    np.testing.assert_allclose(gp.forward(x)[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-6)


def test_linear_on_rows_and_batchnorm_folding():
    rng = _rng(4)
    w, b = rng.standard_normal((5, 7)), rng.standard_normal(5)
    gamma, beta = rng.uniform(0.5, 2, 5), rng.standard_normal(5)
    mean, var, eps = rng.standard_normal(5), rng.uniform(0.1, 2, 5), 1e-3
    x = rng.standard_normal((3, 4, 7))           # Linear acts on the last axis
    g = Graph("x", (4, 7), [Node("fc", "Linear", ("x",), "y", params={"weight": w, "bias": b})])
    y = x @ w.astype(np.float32).T + b.astype(np.float32)
    np.testing.assert_allclose(g.forward(x), y, rtol=1e-5)
    wf, bf = fold_batchnorm(w, b, gamma, beta, mean, var, eps)
    folded = Graph("x", (4, 7), [Node("fc", "Linear", ("x",), "y",
                                      params={"weight": wf, "bias": bf})])
    np.testing.assert_allclose(folded.forward(x), gamma * (y - mean) / np.sqrt(var + eps) + beta,
                               rtol=1e-5, atol=1e-5)
    cw, cb = rng.standard_normal((5, 2, 3, 3)), rng.standard_normal(5)
    conv = Node("c", "Conv2d", ("x",), "y", params={"weight": cw, "bias": cb})
    xi = rng.standard_normal((2, 2, 6, 6))
    yc = Graph("x", (2, 6, 6), [conv]).forward(xi).astype(np.float64)
    cwf, cbf = fold_batchnorm(cw, cb, gamma, beta, mean, var, eps)
    fc = Graph("x", (2, 6, 6), [Node("c", "Conv2d", ("x",), "y",
                                     params={"weight": cwf, "bias": cbf})])
    bn = gamma[:, None, None] * (yc - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps)
    np.testing.assert_allclose(fc.forward(xi), bn + beta[:, None, None], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected 5 each"):
        fold_batchnorm(w, b, gamma[:4], beta, mean, var, eps)
    with pytest.raises(ValueError, match="var \\+ epsilon <= 0"):
        fold_batchnorm(w, b, gamma, beta, mean, -var, 0.0)


def _w(o, i):
    return {"weight": np.ones((o, i)), "bias": np.zeros(o)}


BAD = {
    "unknown op": (lambda: [Node("n", "Einsum", ("x",), "y")], "unknown op 'Einsum'"),
    "arity": (lambda: [Node("n", "Add", ("x",), "y")], r"\(Add\): takes 2 input"),
    "attribute": (lambda: [Node("n", "Relu", ("x",), "y", {"alpha": 1})],
                  "unknown attribute 'alpha'"),
    "pads": (lambda: [Node("n", "MaxPool2d", ("x",), "y", {"kernel": (2, 2), "pads": (1, 1)})],
             "pads .* must be 4 integers"),
    "kernel required": (lambda: [Node("n", "AvgPool2d", ("x",), "y")], "'kernel' is required"),
    "clip": (lambda: [Node("n", "Clip", ("x",), "y", {"min": 2.0, "max": 1.0})],
             "needs min <= max"),
    "nan weight": (lambda: [Node("n", "Linear", ("x",), "y",
                                 params={"weight": [[np.nan] * 12], "bias": [0.0]})],
                   "weight contains NaN or Inf"),
    "bias shape": (lambda: [Node("n", "Linear", ("x",), "y",
                                 params={"weight": np.ones((2, 12)), "bias": np.ones(3)})],
                   r"bias has shape \(3,\), expected \(2,\)"),
    "linear width": (lambda: [Node("f", "Flatten", ("x",), "f"),
                              Node("n", "Linear", ("f",), "y", params=_w(2, 5))],
                     r"\(Linear\): weight takes 5 inputs but the input has shape \(12,\)"),
    "order": (lambda: [Node("a", "Relu", ("b",), "a"), Node("b", "Relu", ("a",), "b")],
              "reads 'b' before any node writes it"),
    "duplicate": (lambda: [Node("a", "Relu", ("x",), "a"), Node("a", "Relu", ("a",), "b")],
                  "two nodes are named 'a'"),
    "rewrite": (lambda: [Node("a", "Relu", ("x",), "x")], "writes value 'x'"),
    "softmax": (lambda: [Node("s", "Softmax", ("x",), "s"), Node("r", "Relu", ("s",), "y")],
                r"node 's' \(Softmax\): only allowed as the graph's last node"),
    "grouped": (lambda: [Node("c4", "Conv2d", ("x",), "c4", params={
                             "weight": np.ones((4, 3, 1, 1)), "bias": np.zeros(4)}),
                         Node("c", "Conv2d", ("c4",), "y", {"groups": 2},
                              {"weight": np.ones((4, 2, 1, 1)), "bias": np.zeros(4)})],
                "groups=2 with 4 input.*only groups=1 and depthwise"),
    "grouped 2": (lambda: [Node("c", "Conv2d", ("x",), "y", {"groups": 1},
                                {"weight": np.ones((3, 2, 1, 1)), "bias": np.zeros(3)})],
                  "weight takes 2 channels but the input has 3"),
    "pool pads": (lambda: [Node("p", "MaxPool2d", ("x",), "y",
                                {"kernel": (2, 2), "pads": (2, 0, 0, 0)})],
                  "must be smaller than the kernel"),
    "too big": (lambda: [Node("p", "AvgPool2d", ("x",), "y", {"kernel": (3, 3)})],
                "kernel 3x3 is larger than the padded input 1x4"),
    "add": (lambda: [Node("g", "GlobalAveragePool", ("x",), "g"),
                     Node("a", "Add", ("x", "g"), "y")], "adds shapes"),
    "reshape": (lambda: [Node("r", "Reshape", ("x",), "y", {"shape": (5, 2)})],
                r"cannot reshape \(3, 1, 4\) to \(5, 2\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_graphs_refused_in_one_line(case):
    make, pattern = BAD[case]
    with pytest.raises(ValueError, match=pattern) as e:
        Graph("x", (3, 1, 4), make())
    assert "\n" not in str(e.value)


def test_bad_inputs_and_graph_level_errors():
    g = Graph("x", (3,), [Node("r", "Relu", ("x",), "y")])
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, 3\), got \(3,\)"):
        g.forward(np.ones(3))
    with pytest.raises(ValueError, match="real numbers"):
        g.forward(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="no nodes"):
        Graph("x", (3,), [])
    with pytest.raises(ValueError, match="1 to 3 dimensions"):
        Graph("x", (1, 2, 3, 4), [Node("r", "Relu", ("x",), "y")])
    with pytest.raises(ValueError, match="shape must be one or more integers >= 1"):
        Graph("x", (0,), [Node("r", "Relu", ("x",), "y")])
    assert "r: Relu(x) -> y (3,)" in g.describe()
    assert g.node("r").op == "Relu"
    with pytest.raises(KeyError):
        g.node("q")
