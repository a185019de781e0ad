"""Winograd F(2×2, 3×3) convolutions inside graph images and the graph runtime
(quantize/graph_run.py add_winograd, quantize/graph_image.py, nnaccel compress --winograd):
the arithmetic's bound against the exact im2col sums, image round trips, golden == RTL
under random stalls, the digits CNN's accuracy on both schedules, one-line refusals."""

import json

import numpy as np
import pytest

from hw.systolic.config import PRESETS
from quantize.backends import backend
from quantize.compress_graph import compress_graph
from quantize.graph import Graph, Node
from quantize.graph_image import write_graph_image
from quantize.graph_quant import quantize_graph
from quantize.graph_run import _walk, add_winograd, plan_config, run_graph
from quantize.image import load_image
from quantize.manifest import digest, write_file
from quantize.onnx_export import save_onnx
from quantize.report import format_layers, layer_rows
from quantize.run import read_cycles, record_cycles
from quantize.winograd import im2col_acc
from sim.golden import host_ops
from sim.golden.systolic import gemm
from tests.cli import refused, run_cli

from .test_graph_blocks import STALL
from .test_graph_quant import _conv, _linear, inputs, lenet, resnet_block

#: The 4×4 preset the other graph RTL tests build (one cached Verilator model).
RTL_BASE = PRESETS["4x4"].replace(act_lut=True)


def _layer_inputs(qgraph, x) -> dict:
    """Every engine layer's int8 input on the golden run of ``qgraph``."""
    seen = {}
    _walk(qgraph, np.asarray(x, np.float64), plan_config(qgraph, len(x)), backend("golden"),
          None, {}, lambda layer, a: seen.setdefault(layer.name, a))
    return seen


def test_winograd_layers_stay_within_the_bound_of_the_exact_sums():
    """Calibrated on the inputs they then run (nothing clips), every accumulator of both
    Winograd layers lies within ``error_bound`` of the exact im2col sum; the run's records
    say which layers ran as the 16 GEMMs."""
    g = lenet()
    qg = quantize_graph(g, inputs(g, 32, 1))
    x = inputs(g, 6, 2)
    wq = add_winograd(qg, x)
    assert list(wq.winograd) == ["conv1", "conv2"] and not qg.winograd
    seen = _layer_inputs(wq, x)
    for name, wc in wq.winograd.items():
        a = seen[name]
        jobs, grid, out = wc.jobs(a)
        m = np.stack([gemm(j.a, j.w, j.bias, j.multiplier, j.shift, j.input_zero_point,
                           j.output_zero_point, rounding=wc.rounding) for j in jobs])
        acc = wc.accumulators(m, grid, out)
        exact = (im2col_acc(a, wc.input_zero_point, wc.g, wc.pads)
                 + np.asarray(wc.bias, np.int64)[:, None, None])
        err = np.abs(acc - exact)
        bound = wc.error_bound(a)
        print(f"{name}: max |acc - exact| {err.max()}, {np.max(err / bound):.3f} of the bound")
        assert np.all(err <= bound)
    run = run_graph(wq, x, "golden", config=RTL_BASE)
    ref = run_graph(qg, x, "golden", config=RTL_BASE)
    sched = [(r["name"], r.get("schedule"), r["shape"]) for r in run.layers
             if r["where"] == "engine"]
    assert sched == [("conv1", "winograd", "16x 294x1x4"), ("conv2", "winograd", "16x 54x4x8"),
                     ("fc", None, "6x32x10")]
    assert run.layers[-1]["cycles"] == ref.layers[-1]["cycles"]
    print(run.table())


def test_jobs_cut_to_the_config_give_the_words_of_one_job_per_gemm():
    """A graph that ends in a Winograd convolution (16 → 16 channels, 9×9, 5×5 tiles per
    sample): on the 4×4 preset its GEMMs are cut into M chunks and N groups; the words equal
    WinogradConv.run's (one job per GEMM on a config fitted to it)."""
    rng = np.random.default_rng(3)
    g = Graph("x", (16, 9, 9), [_conv(rng, "conv", "x", "c", 16, 16, 3, pads=(1, 1, 1, 1)),
                                Node("relu", "Relu", ("c",), "y")])
    qg = quantize_graph(g, inputs(g, 16, 6))
    x = inputs(g, 12, 7)
    wq = add_winograd(qg, x)
    run = run_graph(wq, x, "golden", config=RTL_BASE)
    assert run.layers[0]["shape"] == "16x 300x16x16" and run.layers[0]["jobs"] > 16
    y, _ = wq.winograd["conv"].run(qg.quantize_input(x))
    np.testing.assert_array_equal(run.output, y)
    print(run.table())


def test_named_layers_only_and_refusals():
    g = resnet_block()
    qg = quantize_graph(g, inputs(g, 16, 3))
    x = inputs(g, 4, 4)
    wq = add_winograd(qg, x)            # conv1 is stride 2, proj 1x1: only conv2
    assert list(wq.winograd) == ["conv2"]
    for names, pattern in (
            (["conv1"], r"^Winograd F\(2x2,3x3\): node 'conv1' is a 3x3 stride-2,2 "
                        r"convolution; it runs 3x3 stride-1 convolutions \(the graph's 3x3 "
                        r"stride-1 convolutions: conv2\)$"),
            (["proj"], r"node 'proj' is a 1x1 stride-2,2 convolution"),
            (["nope"], r"^Winograd: node 'nope' is not a layer of the graph; the graph's 3x3 "
                       r"stride-1 convolutions: conv2$"),
            (["relu1"], r"node 'relu1' is an activation fused into a layer"),
            (["conv2", "conv2"], r"give distinct layer names")):
        with pytest.raises(ValueError, match=pattern):
            add_winograd(qg, x, names)
    mlp = Graph("x", (8,), [_linear(np.random.default_rng(0), "fc", "x", "y", 4, 8)])
    with pytest.raises(ValueError, match=r"the graph has none$"):
        add_winograd(quantize_graph(mlp, inputs(mlp, 8, 5)), inputs(mlp, 8, 5))


def test_image_round_trip_and_a_tampered_transform(tmp_path):
    g = lenet()
    cg = compress_graph(g, bits=8)
    qg = quantize_graph(cg.graph, inputs(g, 32, 1))
    wq = add_winograd(qg, inputs(g, 32, 1), ["conv2"])
    out = tmp_path / "img"
    manifest = write_graph_image(cg, wq, plan_config(wq, 256), out)
    nodes = {n["name"]: n for n in manifest["graph"]["nodes"]}
    assert nodes["conv2"]["params"]["winograd"] == {"schedule": "F(2x2,3x3)", "gemms": 16}
    assert "winograd" not in nodes["conv1"]["params"]
    assert nodes["conv2"]["files"]["winograd_u"]["shape"] == [16, 4, 8]
    # The engine holds u, not the im2col weights, for a Winograd layer.
    assert not nodes["conv2"]["files"]["weight"]["memory"]
    image = load_image(out)
    assert list(image.qgraph.winograd) == ["conv2"]
    x = inputs(g, 5, 9)
    a = run_graph(wq, x, "golden", config=image.config)
    b = run_graph(image.qgraph, x, "golden", config=image.config)
    np.testing.assert_array_equal(a.output, b.output)
    rows = {r["name"]: r for r in layer_rows(image, 5)}
    assert rows["conv2"]["shape"] == "16x 45x4x8" and rows["conv2"]["op"].endswith(" wino")
    assert rows["conv2"]["cycles"] == b.layers[2]["cycles"]
    # u must be the transform of the node's own weights: a changed u (its digest
    # recomputed) is refused.
    m = json.loads((out / "manifest.json").read_text())
    e = next(n for n in m["graph"]["nodes"] if n["name"] == "conv2")
    u = np.fromfile(out / e["files"]["winograd_u"]["path"], np.int8).reshape(16, 4, 8).copy()
    u[5, 0, 0] = u[5, 0, 0] // 2 + 1
    e["files"]["winograd_u"] = write_file(out, e["files"]["winograd_u"]["path"], u, "|i1")
    m["digest"] = digest(m)
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"'winograd_u' and 'winograd_u_scale' are not the "
                                         r"Winograd transform of the node's weights"):
        load_image(out)


@pytest.mark.rtl
def test_rtl_equals_golden_under_random_stalls(tmp_path):
    """Every output word of a CNN image with both 3×3 convolutions on Winograd, RTL under
    random idle and backpressure cycles against golden; the measured cycles go through the
    sidecar into the report."""
    g = lenet()
    cg = compress_graph(g, bits=8)
    qg = quantize_graph(cg.graph, inputs(g, 64, 80))
    wq = add_winograd(qg, inputs(g, 64, 80))
    x = inputs(g, 3, 81)
    assert plan_config(wq, len(x), base=RTL_BASE) == RTL_BASE
    out = tmp_path / "img"
    write_graph_image(cg, wq, RTL_BASE, out)
    image = load_image(out)
    golden = run_graph(image.qgraph, x, "golden", config=image.config)
    rtl = run_graph(image.qgraph, x, "rtl", config=image.config, stall=STALL, seed=7)
    np.testing.assert_array_equal(rtl.output, golden.output)
    assert [r.get("schedule") for r in rtl.layers if r["where"] == "engine"] == [
        "winograd", "winograd", None]
    cycles = [r["cycles"] for r in rtl.layers if r["where"] == "engine"]
    model = [r["cycles"] for r in golden.layers if r["where"] == "engine"]
    assert all(c > m for c, m in zip(cycles, model, strict=True))   # stalls cost cycles
    y = tmp_path / "y.npy"
    side = record_cycles(y, image, "rtl", len(x), rtl.cycles, cycles)
    table = format_layers(image, len(x), read_cycles(side, image))
    print(f"lenet, Winograd conv1+conv2, 4x4, stall {STALL}: rtl {cycles}, model {model}\n"
          f"{rtl.table()}\n{table}")
    conv1 = next(ln for ln in table.splitlines() if ln.startswith("conv1"))
    assert "wino" in conv1 and str(cycles[0]) in conv1 and str(model[0]) in conv1


@pytest.fixture(scope="module")
def digits_cnn():
    from quantize.digits import load_digits_split
    from quantize.train_cnn import train_digits_cnn
    xtr, ytr, xte, yte = load_digits_split()
    graph = train_digits_cnn(xtr, ytr)
    return graph, xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8), yte


@pytest.mark.slow
def test_digits_cnn_image_accuracy_both_schedules(digits_cnn, tmp_path, capsys):
    """The digits CNN through nnaccel compress (with and without --winograd) and
    nnaccel run on all 360 test images, golden: both accuracies measured and printed; the
    CLI's outputs equal run_graph on the loaded image (no claim that the schedules agree)."""
    g, xtr, xte, yte = digits_cnn
    model = save_onnx(g, tmp_path / "cnn.onnx")
    np.save(tmp_path / "cal.npy", xtr[:500].astype(np.float32))
    np.save(tmp_path / "x.npy", xte.astype(np.float32))
    acc, cycles = {}, {}
    for flag in ("", "--winograd"):
        img = tmp_path / f"img{flag}"
        status, cap = run_cli(f"compress {model} --engine systolic --bits 8 --calibration "
                              f"{tmp_path / 'cal.npy'} {flag} -o {img}", capsys)
        assert status == 0, cap.err
        y = tmp_path / f"y{flag}.npy"
        status, cap = run_cli(f"run {img} --input {tmp_path / 'x.npy'} -o {y}", capsys)
        assert status == 0, cap.err
        image = load_image(img)
        run = run_graph(image.qgraph, xte, "golden", config=image.config)
        np.testing.assert_array_equal(np.load(y), run.float_output)
        acc[flag or "im2col"] = float(np.mean(run.float_output.argmax(1) == yte))
        cycles[flag or "im2col"] = run.cycles
        assert list(image.qgraph.winograd) == (["conv1", "conv2"] if flag else [])
    print(f"digits CNN image, 360 test images, golden: accuracy {acc}, model cycles {cycles}")


def _onnx(tmp_path, name, graph):
    return save_onnx(graph, tmp_path / f"{name}.onnx")


def test_cli_refusals(tmp_path, capsys):
    rng = np.random.default_rng(0)
    conv5 = Graph("x", (1, 8, 8), [
        _conv(rng, "c5", "x", "a", 4, 1, 5, pads=(2, 2, 2, 2)),
        Node("relu", "Relu", ("a",), "r"),
        _conv(rng, "c3", "r", "b", 4, 4, 3, stride=(2, 2)),
        Node("flat", "Flatten", ("b",), "f"),
        _linear(rng, "fc", "f", "y", 3, 36)])
    mlp = Graph("x", (8,), [_linear(rng, "fc1", "x", "h", 6, 8),
                            Node("relu", "Relu", ("h",), "r"),
                            _linear(rng, "fc2", "r", "y", 3, 6)])
    cnn, dense = _onnx(tmp_path, "cnn", conv5), _onnx(tmp_path, "mlp", mlp)
    np.save(tmp_path / "c.npy", rng.normal(size=(8, 1, 8, 8)).astype(np.float32))
    np.save(tmp_path / "m.npy", rng.normal(size=(8, 8)).astype(np.float32))
    cal, out = f"--calibration {tmp_path / 'c.npy'}", f"-o {tmp_path / 'o'}"
    refused(f"compress {cnn} --engine eie --winograd {out}", capsys,
            r"--winograd: Winograd convolutions run on the systolic engine, not eie$")
    refused(f"compress {dense} --engine systolic --calibration {tmp_path / 'm.npy'} "
            f"--winograd {out}", capsys, r"--winograd: .*mlp\.onnx is an MLP")
    refused(f"compress {cnn} --engine systolic {cal} --winograd c5 {out}", capsys,
            r"--winograd c5: Winograd F\(2x2,3x3\): node 'c5' is a 5x5 stride-1,1 "
            r"convolution; it runs 3x3 stride-1 convolutions \(the graph has none\)$")
    refused(f"compress {cnn} --engine systolic {cal} --winograd c3 {out}", capsys,
            r"node 'c3' is a 3x3 stride-2,2 convolution")
    refused(f"compress {cnn} --engine systolic {cal} --winograd {out}", capsys,
            r"--winograd all: Winograd F\(2x2,3x3\) runs 3x3 stride-1 convolutions "
            r"\(groups=1\); the graph has none$")
    refused(f"compress {cnn} --engine systolic {cal} --winograd conv9 {out}", capsys,
            r"--winograd conv9: Winograd: node 'conv9' is not a layer of the graph")
    assert not (tmp_path / "o").exists()


def test_a_table_activation_after_a_winograd_layer_runs_on_the_host():
    """The output transform sits between the engine and a GELU after a Winograd layer: the
    table runs on the host (an im2col layer's runs in the engine's output stage)."""
    rng = np.random.default_rng(4)
    g = Graph("x", (4, 6, 6), [_conv(rng, "conv", "x", "c", 8, 4, 3, pads=(1, 1, 1, 1)),
                               Node("gelu", "Gelu", ("c",), "g"),
                               Node("flat", "Flatten", ("g",), "f"),
                               _linear(rng, "fc", "f", "y", 5, 288)])
    qg = quantize_graph(g, inputs(g, 16, 8))
    x = inputs(g, 3, 9)
    wq = add_winograd(qg, x)
    im2col = run_graph(qg, x, "golden", config=RTL_BASE)
    wino = run_graph(wq, x, "golden", config=RTL_BASE)
    assert [r["where"] for r in im2col.layers] == ["engine", "fused", "host", "engine"]
    assert [r["where"] for r in wino.layers] == ["engine", "host", "host", "engine"]
    y, _ = wq.winograd["conv"].run(qg.quantize_input(x))
    fc_input = _layer_inputs(wq, x)["fc"]
    np.testing.assert_array_equal(fc_input,
                                  host_ops.lut(y, qg.layers[1].p["table"]).reshape(3, -1))
