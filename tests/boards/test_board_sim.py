"""End to end without hardware: host driver → simulated UART → board top level (Verilator)."""

import tempfile

import numpy as np
import pytest

from boards.core import BoardCore, source_hash
from boards.engines import config_to_dict, engine_config, make_adapter
from boards.link import MAGIC
from boards.mac_engine import MacEngine, mac_golden
from sim import rtl

DIVISOR = 8
TIMEOUT = 40 * DIVISOR


#: A small systolic board that still holds a 64-24-10 MLP (one build for both tests).
SYSTOLIC_2X2 = {"rows": 2, "cols": 2, "act_depth": 128, "weight_depth": 1024, "acc_depth": 16,
                "param_depth": 16}


def _board(engine, config):
    # sim.rtl hashes hw/ into the key; the board's own sources go in here.
    return rtl.build(f"board_{engine}", (engine, config, DIVISOR, TIMEOUT, source_hash()),
                     lambda: BoardCore(make_adapter(engine, config), divisor=DIVISOR,
                                       timeout_cycles=TIMEOUT, max_payload=256))


def _run(engine, config, arrays, testcase="test_job", **extra):
    rtl.BUILD_ROOT.mkdir(parents=True, exist_ok=True)  # a fresh clone has no build/ yet
    with tempfile.TemporaryDirectory(dir=rtl.BUILD_ROOT) as tmp:
        path = f"{tmp}/job.npz"
        np.savez(path, **arrays)
        params = {"engine": engine, "config": config_to_dict(config), "divisor": DIVISOR,
                  "timeout_cycles": TIMEOUT, "job": path, **extra}
        return rtl.run(_board(engine, config), "sim.tb.board", params, testcase=testcase)


@pytest.mark.rtl
@pytest.mark.slow       # the framework's own engine; the systolic board covers the same path
def test_mac_board_end_to_end():
    config = engine_config("mac", {"rows": 5, "cols": 7})
    rng = np.random.default_rng(11)
    arrays = {"weights": rng.integers(-128, 128, (5, 7)), "x": rng.integers(-128, 128, 7)}
    result = _run("mac", config, arrays)
    assert result["y"] == mac_golden(arrays["weights"], arrays["x"]).tolist()
    # (no MacEngine instance here: one never elaborated warns when collected)
    assert result["cycles"] == 5 * 7 + MacEngine.LATENCY
    assert result["counters"][0] == 1 and result["counters"][2] == 35


@pytest.mark.rtl
def test_errors_over_the_uart():
    config = engine_config("systolic", SYSTOLIC_2X2)   # the same build as the tests below
    result = _run("systolic", config, {"x": np.zeros(1)}, testcase="test_errors")
    assert result == {"bad_crc": "BAD_CRC", "truncated": "TRUNCATED",
                      "bad_command": "BAD_COMMAND", "info_after": MAGIC}


@pytest.mark.rtl
def test_systolic_board_end_to_end():
    from sim.systolic import random_job
    config = engine_config("systolic", SYSTOLIC_2X2)
    job = random_job(np.random.default_rng(12), 6, 5, 3)   # 3 K tiles, 2 N tiles
    result = _run("systolic", config, job.arrays())
    assert np.array_equal(np.asarray(result["y"]), job.golden(config.rounding))
    counters = result["counters"]
    assert counters["useful_macs"] == 6 * 5 * 3 and counters["flags"] == 0
    assert counters["cycles"] <= result["cycles"]


@pytest.mark.rtl
def test_board_run_image(tmp_path):
    """A compressed MLP's image through the host driver on the simulated systolic board
    equals the golden run of the same image."""
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.digits import load_digits_split
    from quantize.image import load_image
    from quantize.run import run_image
    from quantize.train import init_mlp, train
    config = engine_config("systolic", SYSTOLIC_2X2)
    xtr, ytr, xte, _ = load_digits_split()
    model = train(init_mlp([64, 24, 10], seed=1), xtr, ytr, epochs=5)
    compress_to_image(model, "systolic", CompressSpec(bits=4, sparsity=0.7), tmp_path / "img",
                      calibration=xtr, config=config)
    x = xte[:3]
    np.save(tmp_path / "x.npy", x)
    result = _run("systolic", config, {}, testcase="test_image",
                  image=str(tmp_path / "img"), x=str(tmp_path / "x.npy"))
    golden = run_image(load_image(tmp_path / "img"), x, "golden")
    assert np.array_equal(np.asarray(result["raw"]), golden.raw)
    assert result["cycles"] == sum(result["layer_cycles"]) > 0


@pytest.mark.rtl
def test_board_run_graph_image(tmp_path):
    """A compressed CNN's graph image (conv, ReLU, max pool, residual-free FC) through the
    host driver on the simulated systolic board (the build of the tests above): engine
    layers on the board, host ops between, every int8 output equal to the golden run."""
    from quantize.compress_graph import compress_graph
    from quantize.graph import Graph, Node
    from quantize.graph_image import write_graph_image
    from quantize.graph_quant import quantize_graph
    from quantize.graph_run import plan_config
    from quantize.image import load_image
    from quantize.run import run_graph_image
    config = engine_config("systolic", SYSTOLIC_2X2)
    rng = np.random.default_rng(5)
    graph = Graph("x", (1, 6, 6), [
        Node("conv", "Conv2d", ("x",), "c", {"pads": (1, 1, 1, 1)},
             {"weight": rng.normal(0, 0.5, (3, 1, 3, 3)), "bias": rng.normal(0, 0.1, 3)}),
        Node("relu", "Relu", ("c",), "r"),
        Node("pool", "MaxPool2d", ("r",), "p", {"kernel": (2, 2), "stride": (2, 2)}),
        Node("flat", "Flatten", ("p",), "f"),
        Node("fc", "Linear", ("f",), "y", {},
             {"weight": rng.normal(0, 0.3, (5, 27)), "bias": rng.normal(0, 0.1, 5)}),
    ])
    cg = compress_graph(graph, {"conv": 0.3, "fc": 0.5}, 4)
    x = rng.normal(0, 1, (2, 1, 6, 6))
    qg = quantize_graph(cg.graph, rng.normal(0, 1, (32, 1, 6, 6)))
    assert plan_config(qg, len(x), base=config) == config      # the board build holds it
    write_graph_image(cg, qg, config, tmp_path / "img")
    np.save(tmp_path / "x.npy", x)
    result = _run("systolic", config, {}, testcase="test_image",
                  image=str(tmp_path / "img"), x=str(tmp_path / "x.npy"))
    golden = run_graph_image(load_image(tmp_path / "img"), x, "golden")
    np.testing.assert_array_equal(np.asarray(result["raw"]), golden.output)
    assert len(result["layer_cycles"]) == 2 and all(c > 0 for c in result["layer_cycles"])
    assert result["cycles"] == sum(result["layer_cycles"])


@pytest.mark.rtl
@pytest.mark.slow       # its Verilator build alone is ~3 min on a loaded 2-core machine
def test_eie_board_end_to_end():
    from hw.eie.driver import build_image, cmd_payload, load_beats
    from sim.eie import random_layer, run_layers
    config = engine_config("eie", {"pes": 2, "spmat_depth": 64, "ptr_depth": 64,
                                   "act_depth": 16, "bias_depth": 16})
    layer1, x = random_layer(config, 12, 10, 0.4, 0.7, seed=5)
    layer2, _ = random_layer(config, 10, 6, 0.5, 1.0, seed=6)
    layers = [layer1, layer2]
    image = build_image(config, layers)
    commands = [dict(c, emit=1) for c in image.commands]   # both layers' outputs
    arrays = {"beats": np.array([hex(b) for b in load_beats(image, x)]),
              "cmds": np.array([hex(cmd_payload(config, c)) for c in commands]),
              "emits": np.array([1 for _ in commands]),
              "rows": np.array([-(-c["out_features"] // config.pes) for c in commands]),
              "out_features": np.array([c["out_features"] for c in commands])}
    golden = run_layers(config, layers, x, engine="golden", image=image)
    result = _run("eie", config, arrays)
    assert result["y"] == golden["outputs"]
    assert result["counters"]["cycles"] > 0
