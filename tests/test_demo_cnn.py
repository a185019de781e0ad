"""The CNN part of ``make demo`` through its pipeline functions: the compressed, ONNX
round-tripped, int8 digits CNN loses at most half a point of accuracy against the float
CNN on the 360 test images (golden model), and the 8×8 systolic RTL equals the golden
model on every output word of a subset."""

import numpy as np
import pytest

from quantize.digits import load_digits_split
from quantize.train_cnn import accuracy
from sim import demo

#: The largest accuracy loss allowed, as a fraction (half a percentage point).
MAX_LOSS = 0.005


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    xtr, ytr, xte, yte = load_digits_split()
    graph = demo.cnn_train(xtr, ytr)
    c = demo.cnn_compress(graph, xtr, ytr)
    path = tmp_path_factory.mktemp("cnn") / "digits_cnn.onnx"
    qg = demo.cnn_quantize(demo.cnn_onnx_round_trip(c.graph, path), xtr)
    cfg = demo.cnn_config(qg, len(xte))
    golden = demo.cnn_run(qg, xte, "golden", cfg)
    return {"graph": graph, "compressed": c, "qgraph": qg, "config": cfg, "golden": golden,
            "x": xte, "y": yte}


def top1(run, y) -> float:
    return float(np.mean(run.output.argmax(axis=1) == y))


def test_int8_golden_loses_at_most_half_a_point(pipeline):
    p = pipeline
    assert len(p["y"]) == 360
    float_acc = accuracy(p["graph"], p["x"], p["y"])
    compressed_acc = accuracy(p["compressed"].graph, p["x"], p["y"])
    golden_acc = top1(p["golden"], p["y"])
    print(f"float {float_acc:.4f}, compressed {compressed_acc:.4f}, int8 golden "
          f"{golden_acc:.4f}, {p['compressed'].totals()['ratio_huffman']:.1f}x")
    assert golden_acc >= float_acc - MAX_LOSS
    assert golden_acc >= compressed_acc - MAX_LOSS
    assert p["compressed"].totals()["ratio_huffman"] > 10


@pytest.mark.slow
@pytest.mark.rtl
def test_rtl_equals_golden_word_for_word_on_a_subset(pipeline):
    p = pipeline
    n = 48
    rtl = demo.cnn_run(p["qgraph"], p["x"][:n], "rtl", p["config"])
    golden = demo.cnn_run(p["qgraph"], p["x"][:n], "golden", p["config"])
    np.testing.assert_array_equal(golden.output, p["golden"].output[:n])
    np.testing.assert_array_equal(rtl.output, golden.output)
    assert top1(rtl, p["y"][:n]) >= accuracy(p["graph"], p["x"][:n], p["y"][:n]) - 1 / n
    cycles = [r["cycles"] for r in rtl.layers if r["where"] == "engine"]
    assert all(c > 0 for c in cycles)
