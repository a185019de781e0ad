"""Whole graphs in int8 on the systolic engine (quantize/graph_run.py): golden vs float, the
lowering checked against direct integer convolution, and golden == RTL."""

import dataclasses

import numpy as np
import pytest

from hw.systolic.config import PRESETS, SystolicConfig
from quantize.backends import Golden
from quantize.graph import Graph, Node
from quantize.graph_quant import quantize_graph
from quantize.graph_run import plan_config, run_graph
from sim.golden.systolic import accumulate, requantize

from .test_graph_blocks import RTL_CONFIG, STALL
from .test_graph_quant import GRAPHS, _conv, _linear, inputs, lenet


def _cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_int8_golden_tracks_the_float_graph(name):
    g = GRAPHS[name]()
    qg = quantize_graph(g, inputs(g, 64, seed=10))
    x = inputs(g, 16, seed=11)                 # same distribution, other samples
    run = run_graph(qg, x, "golden", rows=4, cols=4)
    want = g.forward(x)
    assert run.output.dtype == np.int8 and run.output.shape == want.shape
    cos = _cosine(run.float_output, want)
    print(f"{name}: cosine {cos:.5f}\n{run.table()}")
    assert cos >= 0.99
    # every engine layer's cycles come from the cost model, and utilization is in (0, 1]
    engine = [r for r in run.layers if r["where"] == "engine"]
    assert engine and all(0 < r["utilization"] <= 1 for r in engine)


def _lut_graph():
    rng = np.random.default_rng(90)
    return Graph("x", (3, 8, 8), [
        _conv(rng, "a", "x", "a0", 4, 3, 3, pads=(1, 1, 1, 1)),
        Node("silu", "Silu", ("a0",), "a1"),
        _conv(rng, "b", "x", "b0", 4, 3, 1),
        Node("tanh", "Tanh", ("b0",), "b1"),
        _conv(rng, "c", "x", "c0", 2, 3, 1),
        Node("sig", "Sigmoid", ("c0",), "c1"),
        Node("cat", "Concat", ("a1", "b1", "c1"), "m"),
        Node("avg", "AvgPool2d", ("m",), "p", {"kernel": (3, 3), "stride": (2, 2),
                                                "pads": (1, 1, 1, 1)}),
        Node("hswish", "HardSwish", ("p",), "s"),
        Node("gap", "GlobalAveragePool", ("s",), "gp"),
        Node("flat", "Reshape", ("gp",), "f", {"shape": (10,)}),
        _linear(rng, "fc", "f", "y", 6, 10),
    ])


def test_host_ops_inside_a_graph_track_float():
    """Concat of branches at other scales, LUT activations, average pools, Mean, Reshape."""
    g = _lut_graph()
    qg = quantize_graph(g, inputs(g, 64, 91))
    assert {la.kind for la in qg.layers} == {"gemm", "lut", "concat", "avgpool", "mean",
                                             "reshape"}
    x = inputs(g, 16, 92)
    run = run_graph(qg, x, "golden", rows=4, cols=4)
    want = g.forward(x)
    # the bias dominates after a Mean of sigmoids: compare what varies between inputs
    cos = _cosine(run.float_output - want.mean(0), want - want.mean(0))
    print(f"host-op graph: cosine about the mean output {cos:.5f}")
    assert cos >= 0.99


def _direct_conv(q, w, bias, zp, stride, pads, groups):
    """int32 accumulators of a convolution by its definition: real zero padding (taps
    outside the input are skipped), no im2col."""
    n, c, h, wd = q.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    pt, pl, pb, pr = pads
    oh, ow = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    acc = np.zeros((n, o, oh, ow), np.int64)
    for k in range(o):
        src = range(c) if groups == 1 else [k // (o // c)]
        for y in range(oh):
            for x in range(ow):
                for ci_w, ci in enumerate(src):
                    for i in range(kh):
                        for j in range(kw):
                            yy, xx = y * sh + i - pt, x * sw + j - pl
                            if 0 <= yy < h and 0 <= xx < wd:
                                acc[:, k, y, x] += (q[:, ci, yy, xx] - zp) * w[k, ci_w, i, j]
    return acc + bias[None, :, None, None]


@pytest.mark.parametrize("groups", [1, 3])
def test_engine_conv_equals_direct_integer_convolution(groups):
    """The lowering (im2col, weight matrices, M and N tiling, reassembly to NCHW) gives
    exactly the TFLite convolution: direct int32 sums, then the golden requantization."""
    rng = np.random.default_rng(20)
    o = 6 if groups == 3 else 5
    g = Graph("x", (3, 9, 8), [_conv(rng, "c", "x", "y", o, 3, 3, groups=groups,
                                     stride=(2, 1), pads=(1, 0, 2, 1))])
    qg = quantize_graph(g, inputs(g, 16, 21))
    x = inputs(g, 5, 22)
    # a small engine forces several M chunks and N groups
    cfg = SystolicConfig(rows=2, cols=2, act_depth=64, weight_depth=32, acc_depth=16,
                         param_depth=2)
    run = run_graph(qg, x, "golden", config=cfg)
    p = qg.layers[0].p
    w = np.concatenate(p["weights"], axis=1).T if groups == 1 else np.stack(
        [wm.T for wm in p["weights"]]).reshape(o, 9)
    w = w.reshape(o, 3 // groups, 3, 3)
    q = qg.quantize_input(x).astype(np.int64)
    acc = _direct_conv(q, w, p["bias"], p["input_zero_point"], (2, 1), (1, 0, 2, 1), groups)
    want = requantize(acc.transpose(0, 2, 3, 1), p["multiplier"], p["shift"],
                      p["output_zero_point"], p["act_min"], p["act_max"])
    np.testing.assert_array_equal(run.output, want.transpose(0, 3, 1, 2))
    assert run.layers[0]["jobs"] > 1


def test_linear_on_a_sequence_equals_the_golden_gemm():
    g = GRAPHS["ffn"]()
    qg = quantize_graph(g, inputs(g, 16, 30))
    x = inputs(g, 3, 31)
    run = run_graph(qg, x, "golden")
    fc1 = qg.layers[0].p
    a = qg.quantize_input(x).reshape(12, 64)
    h = requantize(accumulate(a, fc1["weights"][0], fc1["bias"], fc1["input_zero_point"]),
                   fc1["multiplier"], fc1["shift"], fc1["output_zero_point"])
    g_out = qg.layers[1].p["table"][h.astype(int) + 128]
    fc2 = qg.layers[2].p
    y = requantize(accumulate(g_out, fc2["weights"][0], fc2["bias"],
                              fc2["input_zero_point"]),
                   fc2["multiplier"], fc2["shift"], fc2["output_zero_point"])
    np.testing.assert_array_equal(run.output, y.reshape(3, 4, 64))


def test_depthwise_utilization_is_reported_honestly():
    g = GRAPHS["mobilenet_block"]()
    qg = quantize_graph(g, inputs(g, 16, 40))
    run = run_graph(qg, inputs(g, 2, 41), "golden", rows=4, cols=4)
    dw, pw = run.layers[0], run.layers[1]
    assert dw["shape"] == "8x 200x9x1" and dw["macs"] == 8 * 200 * 9
    # one of four columns, 9 of 12 rows at best: under 25 % of the array
    assert dw["utilization"] < 0.25 * 9 / 12
    assert pw["utilization"] > dw["utilization"]
    assert dw["expansion"] == pytest.approx(9.0)


def test_softmax_runs_in_float_on_the_host():
    rng = np.random.default_rng(0)
    g = Graph("x", (12,), [_linear(rng, "fc", "x", "z", 5, 12),
                           Node("sm", "Softmax", ("z",), "y")])
    qg = quantize_graph(g, inputs(g, 64, 50))
    x = inputs(g, 20, 51)
    run = run_graph(qg, x, "golden")
    np.testing.assert_allclose(run.float_output.sum(axis=1), 1.0)
    assert run.output.shape == (20, 5) and run.layers[-1]["op"] == "Softmax (float)"
    assert np.mean(run.float_output.argmax(1) == g.forward(x).argmax(1)) >= 0.9


def test_plan_config_fits_every_layer_and_keeps_a_preset_that_holds_them():
    g = lenet()
    qg = quantize_graph(g, inputs(g, 8, 60))
    cfg = plan_config(qg, 3, base=PRESETS["4x4"])
    assert cfg == PRESETS["4x4"]
    cfg = plan_config(qg, 100, rows=8, cols=8, max_m=128)
    assert cfg.acc_depth == 128 and (cfg.rows, cfg.cols) == (8, 8)


def test_bad_inputs_and_configs_are_refused():
    g = lenet()
    qg = quantize_graph(g, inputs(g, 8, 70))
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, 1, 14, 14\)"):
        run_graph(qg, np.zeros((2, 14, 14)))
    tiny = SystolicConfig(rows=2, cols=2, act_depth=8, weight_depth=16, acc_depth=4,
                          param_depth=4)
    with pytest.raises(ValueError, match=r"^node 'conv2' \(Conv2d\): K=36 does not fit"):
        run_graph(qg, inputs(g, 1, 71), config=tiny)


def test_table_activations_after_a_gemm_run_in_the_engine():
    """The FFN's GELU and the three convolutions' Silu/Tanh/Sigmoid go into the engine's
    output stage; a backend without the table runs them on the host, word for word the
    same; a table after a host op (HardSwish after AvgPool) stays on the host."""
    for g in (GRAPHS["ffn"](), _lut_graph()):
        qg = quantize_graph(g, inputs(g, 64, 93))
        x = inputs(g, 8, 94)
        cfg = plan_config(qg, len(x), rows=4, cols=4)
        fused = run_graph(qg, x, "golden", config=cfg)
        host = run_graph(qg, x, dataclasses.replace(Golden(), name="golden-host"),
                         config=cfg)
        np.testing.assert_array_equal(fused.output, host.output)
        where = {r["name"]: r["where"] for r in fused.layers}
        luts = [la.name for la in qg.layers if la.kind == "lut"]
        want = {"gelu"} if "gelu" in luts else {"silu", "tanh", "sig"}
        assert {n for n in luts if where[n] == "fused"} == want
        assert all(r["where"] != "fused" for r in host.layers)
        # The table's words on the parameter stream are in the fused layers' model cycles.
        assert fused.cycles >= host.cycles


def test_stalls_go_to_the_rtl_backend_only():
    g = lenet()
    qg = quantize_graph(g, inputs(g, 8, 75))
    with pytest.raises(ValueError, match=r"^stall=0.2: random stalls apply to the rtl "
                                         r"backend only, not golden$"):
        run_graph(qg, inputs(g, 1, 76), "golden", stall=0.2)
    with pytest.raises(ValueError, match=r"^stall probability 1.0: use 0 <= p < 1$"):
        run_graph(qg, inputs(g, 1, 76), "rtl", stall=1.0)


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(GRAPHS))
def test_rtl_equals_golden_on_the_4x4_preset(name):
    """Every output word, with random idle and backpressure cycles on every stream; the
    preset's buffers hold every layer in M chunks and N groups, so one (cached) Verilator
    build serves all graphs."""
    g = GRAPHS[name]()
    qg = quantize_graph(g, inputs(g, 64, 80))
    x = inputs(g, 3 if name == "lenet" else 2, 81)
    base = PRESETS["4x4"].replace(act_lut=True)
    cfg = plan_config(qg, len(x), base=base)
    assert cfg == base
    golden = run_graph(qg, x, "golden", config=cfg)
    rtl = run_graph(qg, x, "rtl", config=cfg, stall=STALL, seed=1)
    np.testing.assert_array_equal(rtl.output, golden.output)
    if name == "ffn":       # the GELU ran in the engine's output stage on both
        assert [r["where"] for r in rtl.layers] == ["engine", "fused", "engine"]
        assert [r["where"] for r in golden.layers] == ["engine", "fused", "engine"]
    measured = [r["cycles"] for r in rtl.layers if r["where"] == "engine"]
    model = [r["cycles"] for r in golden.layers if r["where"] == "engine"]
    print(f"{name}, stall {STALL}: rtl cycles {measured}, model (no stalls) {model}\n"
          f"{rtl.table()}")
    assert all(c > 0 for c in measured)


@pytest.fixture(scope="module")
def digits_cnn():
    from quantize.digits import load_digits_split
    from quantize.train_cnn import train_digits_cnn
    xtr, ytr, xte, yte = load_digits_split()
    graph = train_digits_cnn(xtr, ytr)
    return graph, xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8), yte


@pytest.mark.slow
def test_trained_digits_cnn_keeps_its_accuracy_in_int8(digits_cnn):
    g, xtr, xte, yte = digits_cnn
    qg = quantize_graph(g, xtr[:500])
    run = run_graph(qg, xte, "golden")
    float_acc = np.mean(g.forward(xte).argmax(1) == yte)
    int8_acc = np.mean(run.float_output.argmax(1) == yte)
    print(f"digits CNN: float {float_acc:.4f}, int8 {int8_acc:.4f}\n{run.table()}")
    assert int8_acc >= float_acc - 0.01


@pytest.mark.rtl
@pytest.mark.slow
def test_trained_digits_cnn_rtl_equals_golden_on_the_8x8_preset(digits_cnn):
    """Every output word of all the test images under random stalls, on the 8×8 engine
    the block tests build."""
    g, xtr, xte, _ = digits_cnn
    qg = quantize_graph(g, xtr[:500])
    cfg = plan_config(qg, len(xte), base=RTL_CONFIG)
    assert cfg == RTL_CONFIG
    golden = run_graph(qg, xte, "golden", config=cfg)
    rtl = run_graph(qg, xte, "rtl", config=cfg, stall=STALL, seed=2)
    np.testing.assert_array_equal(rtl.output, golden.output)
    print(f"digits CNN, {len(xte)} images, stall {STALL}:\n{rtl.table()}")
