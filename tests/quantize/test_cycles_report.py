"""Measured cycles beside the cost model: ``nnaccel run`` on rtl writes ``Y.cycles.json``
next to its outputs (never into the image), ``nnaccel report IMAGE --cycles Y.cycles.json``
shows them per layer and refuses a file measured on another image."""

import json
import re

import numpy as np
import pytest

from quantize.compress_graph import compress_graph
from quantize.graph_image import write_graph_image
from quantize.graph_quant import quantize_graph
from quantize.graph_run import run_graph
from quantize.image import load_image
from quantize.report import layer_rows
from quantize.run import CYCLES_FORMAT, cycles_path, read_cycles, record_cycles
from tests.cli import run_cli as _run

from .test_graph_blocks import RTL_CONFIG
from .test_graph_quant import ffn, inputs, resnet_block


def _image(graph, out, seed):
    """A graph image on the 8×8 engine with the activation table (the RTL graph tests'
    build)."""
    cg = compress_graph(graph, 0.5, 4)
    qg = quantize_graph(cg.graph, inputs(graph, 32, seed))
    write_graph_image(cg, qg, RTL_CONFIG, out)
    return load_image(out)


def _tree(folder):
    return sorted((p.name, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("cycles")
    g = ffn()
    np.save(d / "x.npy", inputs(g, 3, 5))
    return d, _image(g, d / "ffn", 1), _image(resnet_block(), d / "res", 2)


def test_sidecar_round_trip_and_report_columns(images, capsys):
    d, img, _ = images
    path = record_cycles(d / "y.npy", img, "rtl", 3, 5000, [2000, 3000])
    assert path == d / "y.cycles.json" == cycles_path(d / "y.npy")
    rec = read_cycles(path, img)
    assert rec["format"] == CYCLES_FORMAT and rec["image"] == img.manifest["digest"]
    assert [(r["name"], r["cycles"]) for r in rec["layers"]] == [("fc1", 2000), ("fc2", 3000)]
    status, cap = _run(f"report {d}/ffn --cycles {path}", capsys)
    assert status == 0, cap.err
    table = cap.out.split("per layer, ", 1)[1]
    assert table.startswith("3 inputs, cycles from the cost model, measured on rtl:")
    model = {r["name"]: r["cycles"] for r in layer_rows(img, 3)}
    for name, real in (("fc1", 2000), ("fc2", 3000)):
        row = re.search(rf"^{name}\s.*\s{model[name]}\s+\S+\s+{real}\s+(\S+)$", table, re.M)
        assert row and float(row[1]) == pytest.approx(real / model[name], abs=0.005), table
    # The GELU runs in the engine's table, and the model counts its words as the run's does.
    assert re.search(r"^gelu\s.*engine \(table\)", table, re.M)
    run = run_graph(img.qgraph, np.load(d / "x.npy"), "golden", config=img.config)
    assert model == {r["name"]: r["cycles"] for r in run.layers}
    total = re.search(r"^total\s.*\s(\d+)\s+\S+\s+5000\s+\S+$", table, re.M)
    assert total and int(total[1]) == run.cycles
    status, cap = _run(f"report {d}/ffn --cycles {path} --json", capsys)
    rep = json.loads(cap.out)
    assert rep["measured"] == {"backend": "rtl", "inputs": 3, "total_cycles": 5000}
    assert [r.get("measured_cycles") for r in rep["per_layer"]] == [2000, None, 3000]


def test_report_refuses_cycles_of_another_image_in_one_line(images, capsys):
    d, img, other = images
    path = record_cycles(d / "r.npy", other, "rtl", 2, 900, [300, 400, 200])
    status, cap = _run(f"report {d}/ffn --cycles {path}", capsys)
    assert status == 2
    assert re.fullmatch(r"nnaccel: error: --cycles \S+r\.cycles\.json: measured on another "
                        r"image \(checksum \w{12}, this image \w{12}\); run this image to "
                        r"measure it\n", cap.err), cap.err
    bad = d / "bad.cycles.json"
    bad.write_text(json.dumps({**read_cycles(path, other), "inputs": "two"}))
    with pytest.raises(ValueError, match=r"malformed .*conv1, conv2, proj\)$"):
        read_cycles(bad, other)
    (d / "text.json").write_text("{")
    with pytest.raises(ValueError, match=r"^--cycles \S+: not a cycles file"):
        read_cycles(d / "text.json", img)
    with pytest.raises(ValueError, match=r"^--cycles \S+nothere\.json: No such file"):
        read_cycles(d / "nothere.json", img)
    status, cap = _run(f"report {d}/res --cycles {path} --batch 5", capsys)
    assert status == 2 and "measured a run of 2 inputs" in cap.err


def test_a_golden_run_leaves_no_sidecar_and_removes_a_stale_one(images, capsys):
    d, img, _ = images
    record_cycles(d / "g.npy", img, "rtl", 3, 10, [4, 6])
    before = _tree(d / "ffn")
    status, cap = _run(f"run {d}/ffn --input {d}/x.npy -o {d}/g.npy", capsys)
    assert status == 0, cap.err
    assert not (d / "g.cycles.json").exists() and "cycles in" not in cap.out
    assert _tree(d / "ffn") == before
    # A sidecar that would land on an input is refused before anything runs.
    with open(d / "in.cycles.json", "wb") as f:
        np.save(f, np.load(d / "x.npy"))
    status, cap = _run(f"run {d}/ffn --input {d}/in.cycles.json -o {d}/in.npy", capsys)
    assert status == 2 and "-o " in cap.err and "would overwrite --input" in cap.err


@pytest.mark.rtl
def test_rtl_run_records_the_measured_cycles_per_layer(images, capsys):
    """The sidecar holds what the run measured: the same run through run_graph gives the
    same cycles layer by layer; the image folder is left as it was."""
    d, img, _ = images
    before = _tree(d / "ffn")
    status, cap = _run(f"run {d}/ffn --input {d}/x.npy -o {d}/y_rtl.npy --engine rtl",
                       capsys)
    assert status == 0, cap.err
    assert f"cycles in {d}/y_rtl.cycles.json" in cap.out
    assert _tree(d / "ffn") == before
    rec = read_cycles(d / "y_rtl.cycles.json", img)
    again = run_graph(img.qgraph, np.load(d / "x.npy"), "rtl", config=img.config)
    want = [(r["name"], r["cycles"]) for r in again.layers if r["where"] == "engine"]
    assert [(r["name"], r["cycles"]) for r in rec["layers"]] == want
    assert rec["total_cycles"] == again.cycles and rec["backend"] == "rtl"
    status, cap = _run(f"report {d}/ffn --cycles {d}/y_rtl.cycles.json", capsys)
    assert status == 0, cap.err
    print(cap.out.split("per layer, ", 1)[1])
    for name, cycles in want:
        assert re.search(rf"^{name}\s.*\s{cycles}\s+\d+\.\d\d$", cap.out, re.M), name


def test_a_run_that_measured_only_its_total(images, capsys):
    """EIE on Verilator measures one count per input, not per layer: the sidecar holds the
    total and the report shows it beside the model's total only."""
    d, img, _ = images
    path = record_cycles(d / "t.npy", img, "rtl", 3, 12345)
    assert [r["cycles"] for r in read_cycles(path, img)["layers"]] == [None, None]
    status, cap = _run(f"report {d}/ffn --cycles {path}", capsys)
    assert status == 0, cap.err
    assert re.search(r"^fc1\s.*%\s+-\s+-$", cap.out, re.M)
    assert re.search(r"^total\s.*%\s+12345\s+\d+\.\d\d$", cap.out, re.M)


@pytest.mark.rtl
def test_rtl_run_of_an_mlp_image_records_its_layers(tmp_path, capsys):
    """A systolic MLP image (on the same 8×8 build): one entry per layer, the cycles
    run_image measured for it."""
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.run import run_image
    from quantize.train import init_mlp
    model = init_mlp([16, 12, 5], seed=3)
    x = np.random.default_rng(4).normal(size=(6, 16))
    compress_to_image(model, "systolic", CompressSpec(bits=4, sparsity=0.5), tmp_path / "img",
                      calibration=x, config=RTL_CONFIG)
    np.save(tmp_path / "x.npy", x)
    status, cap = _run(f"run {tmp_path}/img --input {tmp_path}/x.npy -o {tmp_path}/y.npy "
                       f"--engine rtl", capsys)
    assert status == 0, cap.err
    image = load_image(tmp_path / "img")
    rec = read_cycles(tmp_path / "y.cycles.json", image)
    want = run_image(image, x, "rtl").info["layer_cycles"]
    assert [r["cycles"] for r in rec["layers"]] == want and rec["inputs"] == 6
    assert [r["name"] for r in rec["layers"]] == [s["name"] for s in image.manifest["layers"]]
