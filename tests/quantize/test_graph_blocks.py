"""The blocks small vision and language models are made of, whole, on the systolic engine:
a ResNet basic block (stride 2, 1×1 projection), a MobileNet depthwise-separable block
(ReLU6) and MiniLM's feed-forward block (384 → 1536 → GELU → 384, the GELU in the
engine's activation table).

* int8 golden against onnxruntime's float run of the exported ONNX file (for the
  convolution blocks with every batch normalization a real ``BatchNormalization`` node
  that the importer folds);
* RTL == golden, every output word, with random idle and backpressure cycles on every
  engine stream, on one 8×8 configuration with the table (one Verilator build).
"""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from hw.systolic.config import PRESETS
from quantize.graph_quant import quantize_graph
from quantize.graph_run import plan_config, run_graph
from quantize.onnx_export import save_onnx
from quantize.onnx_import import load_onnx_graph

from .test_graph_quant import inputs, minilm_ffn, mobilenet_block, resnet_block

#: One engine for every RTL graph test here and in test_graph_run.py: the 8×8 preset holds
#: each layer (K up to 1536) in M chunks and N groups, with the activation table.
RTL_CONFIG = PRESETS["8x8"].replace(act_lut=True)
#: The probability of an idle or not-ready cycle on every stream, as the engine tests use.
STALL = 0.25

#: name: (graph, inputs per RTL run)
BLOCKS = {"resnet_block": (resnet_block, 2), "mobilenet_block": (mobilenet_block, 2),
          "minilm_ffn": (minilm_ffn, 1)}


def _cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _unfold_batchnorm(path, rng) -> int:
    """Give every Conv of the ONNX file at ``path`` a BatchNormalization of random
    statistics after it, with the Conv's weights divided back so that the pair computes
    what the Conv did; returns how many were added."""
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    nodes, added = [], 0
    for node in g.node:
        nodes.append(node)
        if node.op_type != "Conv":
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        o, eps = w.shape[0], 1e-5
        gamma, beta = rng.uniform(0.5, 1.5, o), rng.normal(0, 0.2, o)
        mean, var = rng.normal(0, 0.2, o), rng.uniform(0.5, 2.0, o)
        s = gamma / np.sqrt(var + eps)
        # BN(conv'(x)) = s·(w'·x + b' − mean) + beta = w·x + b
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(
            (w / s[:, None, None, None]).astype(np.float32), node.input[1]))
        inits[node.input[2]].CopyFrom(numpy_helper.from_array(
            ((b - beta) / s + mean).astype(np.float32), node.input[2]))
        stats = []
        for kind, value in (("scale", gamma), ("bias", beta), ("mean", mean), ("var", var)):
            name = f"{node.name}.bn_{kind}"
            g.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
            stats.append(name)
        out = node.output[0]
        node.output[0] = f"{out}.conv"
        nodes.append(helper.make_node("BatchNormalization", [node.output[0], *stats], [out],
                                      name=f"{node.name}.bn", epsilon=eps))
        added += 1
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return added


@pytest.mark.parametrize("name", list(BLOCKS))
def test_int8_golden_tracks_onnxruntime(name, tmp_path):
    """Export, run the file on onnxruntime in float32, import it back (batch
    normalizations folded), quantize from 64 calibration inputs and run 16 others."""
    ort = pytest.importorskip("onnxruntime")
    g = BLOCKS[name][0]()
    path = save_onnx(g, tmp_path / f"{name}.onnx")
    convs = sum(n.op == "Conv2d" for n in g.nodes)
    assert _unfold_batchnorm(path, np.random.default_rng(7)) == convs
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = inputs(g, 16, 11)
    (want,) = session.run(None, {g.input_name: x.astype(np.float32)})
    imported = load_onnx_graph(path)
    assert [n.op for n in imported.nodes] == [n.op for n in g.nodes]   # no BN left
    qg = quantize_graph(imported, inputs(g, 64, 10))
    run = run_graph(qg, x, "golden", config=RTL_CONFIG)
    cos = _cosine(run.float_output, want)
    print(f"{name}: int8 golden vs onnxruntime float32 cosine {cos:.5f} "
          f"({convs} BatchNormalization folded at import)\n{run.table()}")
    assert cos >= 0.99


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(BLOCKS))
def test_rtl_equals_golden_under_random_stalls(name):
    g, batch = BLOCKS[name]
    g = g()
    qg = quantize_graph(g, inputs(g, 64, 80))
    x = inputs(g, batch, 81)
    cfg = plan_config(qg, len(x), base=RTL_CONFIG)
    assert cfg == RTL_CONFIG
    golden = run_graph(qg, x, "golden", config=cfg)
    rtl = run_graph(qg, x, "rtl", config=cfg, stall=STALL, seed=3)
    steady = run_graph(qg, x, "rtl", config=cfg)
    np.testing.assert_array_equal(rtl.output, golden.output)
    np.testing.assert_array_equal(steady.output, golden.output)
    if name == "minilm_ffn":        # the GELU ran in the engine's output stage
        assert [r["where"] for r in rtl.layers] == ["engine", "fused", "engine"]
    lines = [f"{name}, {len(x)} input(s), 8x8 with table: cycles per layer"]
    for r, s, m in zip(rtl.layers, steady.layers, golden.layers, strict=True):
        if r["where"] != "engine":
            continue
        lines.append(f"  {r['name']:<6} {r['shape']:<14} {r['jobs']:>3} jobs  stall {STALL} "
                     f"{r['cycles']:>7}  no stalls {s['cycles']:>7}  model {m['cycles']:>7}")
        # A quarter of the cycles idle on every stream: every layer takes longer.
        assert r["cycles"] > s["cycles"] > 0
    print("\n".join(lines))
