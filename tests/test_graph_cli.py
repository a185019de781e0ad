"""Whole graphs through the command line: an ONNX CNN (or residual block) compressed into a
graph image, run on the golden model and the RTL, reported; weight-only files with a stated
activation; every refusal one line, exit 2."""

import json
import re

import numpy as np
import pytest

from quantize.compress_graph import compress_graph
from quantize.graph import Graph, Node
from quantize.graph_image import graph_config
from quantize.graph_quant import quantize_graph
from quantize.graph_run import run_graph
from quantize.image import GRAPH_FORMAT_VERSION, is_graph, load_image
from quantize.loaders import load_model
from quantize.manifest import digest
from quantize.onnx_export import save_onnx
from quantize.onnx_import import load_onnx_graph
from quantize.train_cnn import init_cnn
from quantize.weight_only import mlp_graph
from tests.cli import refused as _refused
from tests.cli import run_cli as _run


def _resblock() -> Graph:
    """conv -> relu -> conv -> Add(residual) -> relu -> global pool -> flatten -> fc ->
    gelu -> concat with a sigmoid branch -> fc -> softmax: every host kind but avg pool."""
    rng = np.random.default_rng(5)

    def p(*shape):
        return {"weight": rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:])),
                "bias": 0.1 * rng.standard_normal(shape[0])}
    nodes = [
        Node("stem", "Conv2d", "x", "stem", {"pads": (1, 1, 1, 1)}, p(6, 2, 3, 3)),
        Node("stem_relu", "Relu", "stem", "stem_relu"),
        Node("conv", "Conv2d", "stem_relu", "conv", {"pads": (1, 1, 1, 1)}, p(6, 6, 3, 3)),
        Node("add", "Add", ("conv", "stem_relu"), "add"),
        Node("add_relu", "Relu", "add", "add_relu"),
        Node("pool", "MaxPool2d", "add_relu", "pool", {"kernel": (2, 2), "stride": (2, 2)}),
        Node("gap", "GlobalAveragePool", "pool", "gap"),
        Node("flat", "Flatten", "gap", "flat"),
        Node("fc1", "Linear", "flat", "fc1", {}, p(12, 6)),
        Node("gelu", "Gelu", "fc1", "gelu"),
        Node("sig", "Sigmoid", "fc1", "sig"),
        Node("cat", "Concat", ("gelu", "sig"), "cat"),
        Node("fc2", "Linear", "cat", "fc2", {}, p(5, 24)),
        Node("softmax", "Softmax", "fc2", "softmax"),
    ]
    return Graph("x", (2, 6, 6), nodes)


GRAPHS = {"cnn": lambda: init_cnn((1, 8, 8), (4, 8), 10, seed=1), "resblock": _resblock}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("graph_cli")
    rng = np.random.default_rng(0)
    for name, make in GRAPHS.items():
        g = make()
        save_onnx(g, d / f"{name}.onnx")
        np.save(d / f"{name}_cal.npy", rng.standard_normal((48, *g.input_shape)))
        np.save(d / f"{name}_x.npy", rng.standard_normal((6, *g.input_shape)))
    return d


def _compress(d, name, capsys, extra="") -> dict:
    line = (f"compress {d}/{name}.onnx --engine systolic --calibration {d}/{name}_cal.npy "
            f"--sparsity 0.5 -o {d}/{name}_img {extra}")
    status, cap = _run(line, capsys)
    assert status == 0, cap.err
    return json.loads((d / f"{name}_img" / "manifest.json").read_text())


@pytest.mark.parametrize("name", list(GRAPHS))
def test_compress_run_golden_equals_run_graph(work, capsys, name):
    """The CLI's output is run_graph's on the same compressed, quantized graph, word for
    word; the image's config is the one sized for it; report has a row per layer whose
    cycles are the run's."""
    m = _compress(work, name, capsys)
    assert m["format_version"] == GRAPH_FORMAT_VERSION and m["engine"] == "systolic"
    image = load_image(work / f"{name}_img")
    assert is_graph(image)
    status, cap = _run(f"run {work}/{name}_img --input {work}/{name}_x.npy "
                       f"-o {work}/{name}_y.npy", capsys)
    assert status == 0, cap.err
    y = np.load(work / f"{name}_y.npy")

    graph = load_onnx_graph(work / f"{name}.onnx")
    cg = compress_graph(graph, 0.5, 4)
    qg = quantize_graph(cg.graph, np.load(work / f"{name}_cal.npy"))
    assert image.config == graph_config(qg, 8, 8)
    x = np.load(work / f"{name}_x.npy")
    ref = run_graph(qg, x, "golden", config=image.config)
    np.testing.assert_array_equal(y, ref.float_output)
    again = run_graph(image.qgraph, x, "golden", config=image.config)
    np.testing.assert_array_equal(again.output, ref.output)
    # The printed table: one row per int8 layer and the total of the cost model.
    for r in ref.layers:
        assert re.search(rf"^{re.escape(r['name'])}\s", cap.out, re.M), r["name"]
    assert f"{ref.cycles} engine cycles" in cap.out

    status, cap = _run(f"report {work}/{name}_img --batch {len(x)}", capsys)
    assert status == 0, cap.err
    table = cap.out.split("per layer, ", 1)[1]
    for layer in qg.layers:
        assert re.search(rf"^{re.escape(layer.name[:15])}\s", table, re.M), layer.name
    status, cap = _run(f"report {work}/{name}_img --json --batch {len(x)}", capsys)
    rows = json.loads(cap.out)["per_layer"]
    assert [r["name"] for r in rows] == [layer.name for layer in qg.layers]
    assert [r["cycles"] for r in rows] == [r["cycles"] for r in ref.layers
                                           if r["name"] in {x["name"] for x in rows}]
    engine = [r for r in rows if r["where"] == "engine"]
    assert all(0 < r["utilization"] <= 1 and r["kept"] <= r["weights"] for r in engine)


@pytest.mark.rtl
def test_rtl_equals_golden_on_two_graph_images(work, capsys):
    for name in GRAPHS:
        _compress(work, name, capsys, "--rows 4 --cols 4")
        outs = {}
        for engine in ("golden", "rtl"):
            status, cap = _run(f"run {work}/{name}_img --input {work}/{name}_x.npy -o "
                               f"{work}/{name}_{engine}.npy --engine {engine}", capsys)
            assert status == 0, cap.err
            outs[engine] = np.load(work / f"{name}_{engine}.npy")
            assert "measured" in cap.out if engine == "rtl" else "cost model" in cap.out
        np.testing.assert_array_equal(outs["rtl"], outs["golden"])


def test_ffn_safetensors_with_gelu(tmp_path, capsys):
    """A 384-1536-384 FFN (safetensors fc1/fc2) with GELU between compresses for the
    systolic engine (a config its own accumulator check accepts, K up to 1536) and runs;
    int8 output close to float."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(1)
    save_file({"fc1.weight": (rng.standard_normal((1536, 384)) / 20).astype(np.float32),
               "fc1.bias": (0.1 * rng.standard_normal(1536)).astype(np.float32),
               "fc2.weight": (rng.standard_normal((384, 1536)) / 40).astype(np.float32),
               "fc2.bias": np.zeros(384, np.float32)}, tmp_path / "ffn.safetensors")
    x = rng.standard_normal((64, 384)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    status, cap = _run(f"compress {tmp_path}/ffn.safetensors --engine systolic --activation "
                       f"gelu --bits 6 --calibration {tmp_path}/x.npy -o {tmp_path}/img", capsys)
    assert status == 0, cap.err
    assert "activation between layers: gelu" in cap.out
    m = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert m["graph"]["activation"] == "gelu"
    assert [n["op"] for n in m["graph"]["nodes"]] == ["Linear", "Gelu", "Linear"]
    assert load_image(tmp_path / "img").config.max_k >= 1536
    status, cap = _run(f"run {tmp_path}/img --input {tmp_path}/x.npy -o {tmp_path}/y.npy",
                       capsys)
    assert status == 0, cap.err
    y = np.load(tmp_path / "y.npy").reshape(-1)
    ref = mlp_graph(load_model(tmp_path / "ffn.safetensors"), "gelu").forward(x).reshape(-1)
    cosine = y @ ref / np.linalg.norm(y) / np.linalg.norm(ref)
    print(f"FFN 384-1536-384 GELU int8 vs float: cosine {cosine:.5f}")
    assert cosine >= 0.99


def test_weight_only_defaults_to_relu_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "m.npz", **{"fc1.weight": rng.standard_normal((8, 16)),
                                    "fc2.weight": rng.standard_normal((4, 8))})
    np.save(tmp_path / "x.npy", rng.standard_normal((20, 16)))
    for engine, act, layers in (("eie", None, [True, False]), ("eie", "none", [False, False]),
                                ("systolic", None, [True, False])):
        flag = f"--activation {act}" if act else ""
        cal = "" if engine == "eie" else f"--calibration {tmp_path}/x.npy"
        status, cap = _run(f"compress {tmp_path}/m.npz --engine {engine} {flag} {cal} "
                           f"-o {tmp_path}/{engine}{act}", capsys)
        assert status == 0, cap.err
        want = "none" if act else "relu (default; give --activation to change)"
        assert f"activation between layers: {want}\n" in cap.out
        m = json.loads((tmp_path / f"{engine}{act}" / "manifest.json").read_text())
        assert [layer["relu"] for layer in m["layers"]] == layers
    # none on EIE: the engine's fixed-point output is the compressed float chain's, which
    # has no ReLU (negative outputs of the hidden layer carry through).
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.run import run_image
    from quantize.weight_only import LinearChain
    chain = LinearChain(load_model(tmp_path / "m.npz").layers)
    c, _ = compress_to_image(chain, "eie", CompressSpec(bits=4), tmp_path / "api", pes=4)
    x = np.load(tmp_path / "x.npy")[:8]
    y = run_image(load_image(tmp_path / "api"), x).outputs
    ref = c.final.forward(x)
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()
    hidden = x @ c.final.layers[0].weight.T + c.final.layers[0].bias
    relu_ref = np.maximum(hidden, 0) @ c.final.layers[1].weight.T + c.final.layers[1].bias
    assert np.abs(relu_ref - ref).max() > 0.2 * np.abs(ref).max()
    # none on the systolic engine: Linear layers back to back in a graph image.
    status, cap = _run(f"compress {tmp_path}/m.npz --engine systolic --activation none "
                       f"--calibration {tmp_path}/x.npy -o {tmp_path}/sn", capsys)
    assert status == 0, cap.err
    m = json.loads((tmp_path / "sn" / "manifest.json").read_text())
    assert [n["op"] for n in m["graph"]["nodes"]] == ["Linear", "Linear"]


@pytest.fixture(scope="module")
def bad_onnx(work):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    node = helper.make_node("Hardmax", ["x"], ["y"], name="odd")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, work / "bad.onnx")
    return work / "bad.onnx"


def _edit(src, dst, change, redigest: bool):
    import shutil
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    change(m, dst)
    if redigest:
        m["digest"] = digest(m)
    (dst / "manifest.json").write_text(json.dumps(m))


def test_refusals_are_one_line(work, bad_onnx, capsys):
    d = work
    _compress(d, "cnn", capsys)
    img = d / "cnn_img"
    _refused(f"compress {bad_onnx} --engine systolic --calibration {d}/cnn_cal.npy -o {d}/o",
             capsys, r"node 'odd' \(Hardmax\)")
    _refused(f"compress {d}/cnn.onnx --engine eie -o {d}/o", capsys,
             r"graph has Conv2d, MaxPool2d, Flatten; .*use --engine systolic")
    _refused(f"compress {d}/cnn.onnx --engine systolic -o {d}/o", capsys,
             r"give --calibration")
    _refused(f"compress {d}/cnn.onnx --engine systolic --calibration {d}/resblock_cal.npy "
             f"-o {d}/o", capsys, r"--calibration: inputs must have shape \(N, 1, 8, 8\)")
    _refused(f"compress {d}/cnn.onnx --engine systolic --activation gelu --calibration "
             f"{d}/cnn_cal.npy -o {d}/o", capsys, r"states its own activations")
    _refused(f"compress {d}/cnn.onnx --engine systolic --quality 1 --calibration "
             f"{d}/cnn_cal.npy -o {d}/o", capsys, r"--quality is for MLP images")
    np.savez(d / "w.npz", **{"fc1.weight": np.ones((3, 4)), "fc2.weight": np.ones((2, 3))})
    _refused(f"compress {d}/w.npz --engine eie --activation gelu -o {d}/o", capsys,
             r"EIE engine runs relu or none.*--engine systolic")
    _refused(f"run {img} --input {d}/resblock_x.npy -o {d}/o.npy", capsys,
             r"inputs must have shape \(N, 1, 8, 8\)")

    def tamper(m, dst):
        m["graph"]["nodes"][0]["params"]["act_min"] += 5
    _edit(img, d / "t1", tamper, redigest=False)
    _refused(f"run {d}/t1 --input {d}/cnn_x.npy -o {d}/o.npy", capsys,
             r"edited after it was written \(digest mismatch\)")

    def truncate(m, dst):
        f = dst / m["graph"]["nodes"][0]["files"]["weight"]["path"]
        f.write_bytes(f.read_bytes()[:-1])
    _edit(img, d / "t2", truncate, redigest=False)
    _refused(f"run {d}/t2 --input {d}/cnn_x.npy -o {d}/o.npy", capsys,
             r"conv1\.weight\.bin: \d+ bytes on disk, the manifest says \d+: the file was "
             r"truncated")

    def outside(m, dst):
        m["graph"]["nodes"][0]["files"]["weight"]["path"] = "../cnn.onnx"
    _edit(img, d / "t3", outside, redigest=True)
    _refused(f"report {d}/t3", capsys, r"must be a plain file name inside the image folder")

    def wrong_kind(m, dst):
        m["graph"]["nodes"][2]["kind"] = "lut"          # pool1 as a lookup table
    _edit(img, d / "t4", wrong_kind, redigest=True)
    _refused(f"report {d}/t4", capsys, r"node pool1: a lut node cannot be a MaxPool2d")

    def wrong_shape(m, dst):
        m["graph"]["nodes"][2]["shape"] = [4, 3, 3]
    _edit(img, d / "t5", wrong_shape, redigest=True)
    _refused(f"report {d}/t5", capsys, r"node pool1 \(MaxPool2d\): shape \[4, 3, 3\] in the "
                                       r"manifest, the graph gives \[4, 4, 4\]")

    def missing_param(m, dst):
        del m["graph"]["nodes"][0]["params"]["act_max"]
    _edit(img, d / "t6", missing_param, redigest=True)
    _refused(f"run {d}/t6 --input {d}/cnn_x.npy -o {d}/o.npy", capsys,
             r"node conv1: a gemm node has the parameters")


def test_per_node_bits(work, capsys):
    """--bits node=b,... widens or narrows each layer's codebook; a bare number is every
    other node's; a node left without one, not in the graph or without weights: one line."""
    d = work
    m = _compress(d, "cnn", capsys, "--bits conv1=5,fc=2,3")
    bits = {r["name"]: r["bits"] for r in m["compression"]["layers"]}
    assert bits == {"conv1": 5, "conv2": 3, "fc": 2}
    base = f"compress {d}/cnn.onnx --engine systolic --calibration {d}/cnn_cal.npy -o {d}/o"
    _refused(f"{base} --bits conv1=5", capsys, r"no codebook width for node 'conv2'")
    _refused(f"{base} --bits conv9=4,3", capsys, r"node 'conv9', which is not in the graph")
    _refused(f"{base} --bits relu1=3,4", capsys, r"'relu1' \(Relu\), which has no weights")
