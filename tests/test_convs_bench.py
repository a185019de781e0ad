"""Suite ``convs``: the layer table, the cost-model figures and the rendered record
(no SCALE-Sim, no Verilator)."""

import json

import pytest

from hw.systolic import SystolicConfig
from hw.systolic.driver import model_cycles
from sim.bench import convs, results


def _by(net, name):
    return next(x for x in convs.LAYERS if x.net == net and x.name == name)


def test_layer_table_counts():
    nets = [x.net for x in convs.LAYERS]
    # ResNet-18: the stem, 16 block convs and 3 downsample projections.
    assert (nets.count("AlexNet"), nets.count("VGG-16"), nets.count("ResNet-18")) == (5, 13, 20)
    assert len({x.label for x in convs.LAYERS}) == len(convs.LAYERS)


@pytest.mark.parametrize("net, name, stride, out, m, k, n", [
    ("VGG-16", "conv1_1", 1, 224, 224 * 224, 3 * 9, 64),
    ("VGG-16", "conv5_3", 1, 14, 14 * 14, 512 * 9, 512),
    ("AlexNet", "conv1", 4, 55, 55 * 55, 3 * 121, 96),
    ("AlexNet", "conv2", 1, 27, 27 * 27, 96 * 25, 256),
    ("ResNet-18", "conv1", 2, 112, 112 * 112, 3 * 49, 64),
    ("ResNet-18", "layer2.0.downsample", 2, 28, 28 * 28, 64, 128),
    ("ResNet-18", "layer4.1.conv2", 1, 7, 7 * 7, 512 * 9, 512),
])
def test_known_shapes(net, name, stride, out, m, k, n):
    layer = _by(net, name)
    g = convs.gemm(layer)
    assert layer.stride == stride
    assert (g["out_h"], g["out_w"], g["m"], g["k"], g["n"]) == (out, out, m, k, n)
    assert g["macs"] == m * k * n


@pytest.mark.parametrize("name", ["conv1_2", "conv5_1"])
def test_only_weight_and_parameter_loads_come_before_compute(name):
    g = convs.gemm(_by("VGG-16", name))
    m, k, n = g["m"], g["k"], g["n"]
    f = convs.our_figures(g, 16)
    assert "config_error" not in f
    cfg = SystolicConfig.fit([(m, k, n)], rows=16, cols=16)
    assert f["cycles"] == model_cycles(cfg, m, k, n)
    kt, nt = -(-k // 16), -(-n // 16)
    # The weight stream (KT·NT·rows words) is what the command waits for, even where the
    # activations (KT·M words, streamed during compute) are far more (conv1_2: 1.8 M).
    assert f["serial_load_cycles"] == kt * nt * 16 < (kt * m if name == "conv1_2" else 10**9)
    # Compute alone (every tile's M rows) is all but a few per cent of the cycles.
    assert kt * nt * m < f["cycles"] < kt * nt * m * 1.02 + f["serial_load_cycles"] + 200
    assert f["utilization"] == pytest.approx(g["macs"] / (256 * f["cycles"]))


def test_vgg16_at_or_below_scalesim_with_activation_loads_overlapped():
    """On 16×16 every VGG-16 conv takes at most SCALE-Sim v3's cycles (the committed
    record's), loads included, and the mean utilization is at least 90 %."""
    record = json.loads((results.RECORDS / "convs.json").read_text())
    ours = []
    for row in record["layers"]:
        if row["net"] != "VGG-16":
            continue
        f = convs.our_figures(convs.gemm(_by(row["net"], row["layer"])), 16)
        assert f["cycles"] <= row["arrays"]["16x16"]["scalesim"]["cycles"], row["layer"]
        ours.append(f["utilization"])
    assert len(ours) == 13
    assert sum(ours) / len(ours) >= 0.90


def test_refused_config_keeps_its_reason_and_the_model_cycles():
    g = convs.gemm(_by("VGG-16", "conv5_1"))
    # K = 4608: the fitted config's accumulator holds this K's sums (k_limit), not the
    # K its power-of-two buffers would admit.
    assert "config_error" not in convs.our_figures(g, 16)
    g = {**g, "k": 70000}       # 70000 * 255 * 128 >= 2**31: no int32 accumulator holds it
    f = convs.our_figures(g, 16)
    with pytest.raises(ValueError) as e:
        SystolicConfig.fit([(g["m"], g["k"], g["n"])], rows=16, cols=16)
    assert f["config_error"] == str(e.value)
    assert f["cycles"] == model_cycles(SystolicConfig(rows=16, cols=16), g["m"], g["k"], g["n"])


def test_record_renders(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RECORDS", tmp_path / "records")
    layers = []
    for net, name in (("VGG-16", "conv1_1"), ("VGG-16", "conv5_1")):
        layer = _by(net, name)
        g = convs.gemm(layer)
        row = {"net": net, "layer": name, **g, "arrays": {}}
        for rows in convs.ARRAYS:
            f = convs.our_figures(g, rows)
            ss = {"demand_rows": f["cycles"] + 1, "cycles": f["cycles"]}
            if name == "conv1_1":
                ss.update(total_cycles=f["cycles"], stall_cycles=0,
                          total_cycles_incl_prefetch=2 * f["cycles"])
            f.update(scalesim=ss, ratio=1.0)
            row["arrays"][f"{rows}x{rows}"] = f
        layers.append(row)
    rtl = {"array": "8x8", "config": {"act_depth": 8}, "seconds": 1, "layers": [
        {"layer": "x", "m": 2, "k": 3, "n": 4, "rtl_cycles": 100, "model_cycles": 99,
         "model_error": -0.01, "mismatches": 0}]}
    full = {"sram_kb": 65536, "full_sim_rows": 10, "scalesim": "scalesim==3.0.0",
            "layers": layers, "rtl_check": rtl}
    (tmp_path / "convs.json").write_text(json.dumps(full))
    rec = json.loads(results.record("convs", tmp_path, seconds=3).read_text())
    assert rec["measured"]["bench_seconds"] == 3
    text = results.render({"convs": rec})
    c11 = layers[0]["arrays"]["16x16"]
    assert (f"| VGG-16 | conv1_1 | 50 176 | 27 | 64 | 86 704 128 | "
            f"{results._int(c11['cycles'])} | ") in text
    c51 = layers[1]["arrays"]["16x16"]
    assert (f"| VGG-16 | conv5_1 | 196 | 4 608 | 512 | 462 422 016 | "
            f"{results._int(c51['cycles'])} | ") in text     # configured: no †
    assert ("VGG-16 layers at or below SCALE-Sim's cycles: 2 of 2 (2 of the 2 that `fit` "
            "configures)") in text
    assert "Configs refused by `fit`: 0 of 2." in text
    assert "equals the compute-model figure above on 2 of them" in text
    assert "| x | 2×3×4 | 100 | 99 | -1.000 % | 0 |" in text
