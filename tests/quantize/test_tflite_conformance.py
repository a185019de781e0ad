"""Conformance with LiteRT: the committed fully-integer .tflite fixtures
(tests/fixtures/tflite, ``make tflite-fixtures``) imported by :mod:`quantize.tflite_import`
and run by the int8 runtime give every output byte LiteRT gives, on 10,000+ input vectors
per model and kernel path (reference op resolver; optimized builtin kernels without the
XNNPACK delegate), and on the systolic RTL for a small batch."""


import numpy as np
import pytest

from quantize.graph_run import run_graph
from quantize.tflite_import import load_tflite, raw_inputs, raw_outputs
from sim.bench.tflite import FIXTURES, PATHS, litert, vectors

MODELS = ("mlp", "cnn")
VECTORS = 10_000


def _interpreter():
    return pytest.importorskip("ai_edge_litert.interpreter")


def _litert(model: str, x: np.ndarray, path: str) -> np.ndarray:
    """LiteRT's int8 outputs for a batch ``x`` on kernel ``path`` (the bench's runner)."""
    _interpreter()
    return litert(model, x, PATHS[path])


def _vectors(model: str, qgraph, n: int, seed: int = 0):
    """The bench's ``n`` int8 inputs (extremes and the zero point everywhere, the digits at
    the input's own quantization, elements from {-128, zp, 127}, uniform random codes) and
    the digits' labels."""
    from sklearn.datasets import load_digits
    return vectors(model, qgraph, n, seed), load_digits().target


@pytest.fixture(scope="module")
def qgraphs():
    return {(m, path): load_tflite(FIXTURES / f"{m}.tflite", path)
            for m in MODELS for path in ("reference", "optimized")}


@pytest.mark.parametrize("path", ["reference", "optimized"])
@pytest.mark.parametrize("model", MODELS)
def test_golden_equals_litert_on_every_byte(model, path, qgraphs):
    qgraph = qgraphs[model, path]
    x, labels = _vectors(model, qgraph, VECTORS)
    assert len(x) >= VECTORS
    want = _litert(model, x, path)
    got = raw_outputs(run_graph(qgraph, raw_inputs(qgraph, x), "golden").output)
    assert got.shape == want.shape == (len(x), 10)
    differ = int((got != want).sum())
    assert differ == 0, f"{differ} of {want.size} output bytes differ from LiteRT"
    # the vectors exercise the model: many distinct outputs, and the digits are classified
    assert len(np.unique(want)) > 100
    digits = got[3:3 + len(labels)]     # after the three constant vectors
    assert np.mean(digits.argmax(axis=1) == labels) > 0.9


def test_import_keeps_the_model_arithmetic(qgraphs):
    """Per-layer rounding of the kernel each path runs; the int8 softmax last."""
    kinds = {(m, path): [(la.kind, la.p.get("rounding")) for la in qg.layers]
             for (m, path), qg in qgraphs.items()}
    assert kinds["mlp", "reference"] == [("gemm", "single"), ("gemm", "single"),
                                         ("int8_softmax", None)]
    assert kinds["mlp", "optimized"][:2] == [("gemm", "ruy_x86")] * 2
    cnn = kinds["cnn", "reference"]
    assert cnn[:2] == [("gemm", "double")] * 2
    assert [k for k, _ in cnn[2:]] == ["add", "avgpool", "maxpool", "concat", "reshape", "gemm",
                                       "lut", "gemm", "lut", "gemm", "int8_softmax"]
    qg = qgraphs["cnn", "reference"]
    assert qg.output_params.scale == 1 / 256 and qg.output_params.zero_point == -128
    conv = qg.layers[0].p
    assert conv["act_min"] == conv["output_zero_point"]       # the fused RELU
    assert len(set(conv["multiplier"].tolist())) > 1          # per-channel weights


@pytest.mark.rtl
@pytest.mark.parametrize("path", ["reference", "optimized"])
@pytest.mark.parametrize("model", MODELS)
def test_rtl_equals_litert(model, path, qgraphs):
    qgraph = qgraphs[model, path]
    x, _ = _vectors(model, qgraph, VECTORS)
    x = np.concatenate([x[:4], x[4:5], x[-3:]])         # extremes, zero point, a digit, random
    want = _litert(model, x, path)
    run = run_graph(qgraph, raw_inputs(qgraph, x), "rtl", rows=4, cols=4)
    np.testing.assert_array_equal(raw_outputs(run.output), want)
    assert run.cycles > 0
