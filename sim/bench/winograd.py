"""Winograd F(2×2, 3×3) against im2col on the systolic engine (:mod:`quantize.winograd`).

* **Cost** (model): VGG-16's thirteen 3×3 stride-1 layers at their ImageNet shapes,
  batch 1, on the 16×16 array: the im2col GEMM (``M = H·W``, ``K = 9C``, ``N = O``) and the
  16 Winograd GEMMs (``M`` = 2×2 output tiles, ``K = C``, ``N = O``), each job's cycles
  from :func:`hw.systolic.driver.model_cycles`; multiplies; the host's transform
  additions and the words the engine reads, counted separately.
* **Accuracy** (golden): random 3×3 layers (int8 weights, ReLU'd or signed inputs),
  calibrated on one batch and measured on another; and the digits CNN's two convolutions
  (both 3×3, padding 1) swapped for Winograd, calibrated on 500 training images, measured
  on the test split: output differences in int8 steps against im2col, cosine, and the
  network's accuracy.
* **Graph images**: the digits CNN compressed as ``nnaccel compress --bits 8`` does it
  (calibrated on 500 training images), written as graph images with im2col, with both
  convolutions on Winograd (``--winograd``, headroom 1 and 1.25) and with conv2 alone,
  loaded and run through the graph runtime: golden accuracy on the 360 test images,
  cost-model cycles, and one test image on the 8×8 RTL (every word against golden,
  measured cycles).
* **RTL**: ResNet-18 layer1.0.conv1's channels (64 → 64) at 8×8 on the 8×8 engine: the 16
  Winograd GEMMs and the im2col GEMM in one Verilator run, every word against the golden
  model, measured cycles against the model (``NNACCEL_WINOGRAD_RTL=0`` skips it).

Writes ``<out_dir>/winograd.json`` and the committed record ``docs/results/winograd.json``.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

from hw.systolic import PRESETS, SystolicConfig
from hw.systolic.driver import model_cycles
from quantize.backends import backend
from quantize.compress_graph import compress_graph
from quantize.digits import load_digits_split
from quantize.graph_image import graph_config, write_graph_image
from quantize.graph_quant import quantize_graph
from quantize.graph_run import _gemm_layer, _host_layer, add_winograd, plan_config, run_graph
from quantize.image import load_image
from quantize.int8 import quantize_multiplier
from quantize.train_cnn import train_digits_cnn
from quantize.winograd import WinogradConv, cost
from sim.golden import host_ops
from sim.systolic import GemmJob, run_jobs

from .convs import LAYERS
from .results import RECORDS, provenance

__all__ = ["vgg_costs", "random_accuracy", "digits_cnn", "digits_images", "rtl_check", "main"]

ARRAY = 16
#: Calibrated ranges widened by these factors (1: the calibration data's own range).
HEADROOMS = (1.0, 1.25)


def _fits(shapes, rows):
    try:
        SystolicConfig.fit(shapes, rows=rows, cols=rows)
        return None
    except ValueError as e:
        return str(e)


def vgg_costs(rows: int = ARRAY) -> list[dict]:
    """Both schedules of every VGG-16 layer on a ``rows × rows`` array (cost model)."""
    cfg = SystolicConfig(rows=rows, cols=rows)      # the model reads rows and cols only
    out = []
    for la in (la for la in LAYERS if la.net == "VGG-16"):
        c = cost(cfg, 1, la.c, la.h, la.h, la.o)
        c.update(layer=la.name, c=la.c, h=la.h, o=la.o,
                 im2col_config_error=_fits([tuple(c["im2col_gemm"])], rows),
                 winograd_config_error=_fits([tuple(c["winograd_gemm"])], rows))
        out.append(c)
    return out


def _steps(y, ref, zp):
    """int8 step differences and the cosine of the zero-point-subtracted outputs."""
    d = np.abs(y.astype(np.int64) - ref.astype(np.int64))
    a, b = (y.astype(np.float64) - zp).ravel(), (ref.astype(np.float64) - zp).ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return {"outputs": int(d.size), "equal": float(np.mean(d == 0)),
            "within_1": float(np.mean(d <= 1)), "max_steps": int(d.max()),
            "mean_steps": float(d.mean()), "cosine": cos}


def _random_layer(rng, c, o, zp):
    g = rng.integers(-127, 128, (o, c, 3, 3))
    # Output scale chosen so im2col's outputs span about ±100 of the int8 range.
    real = rng.uniform(0.5, 2, o) * 100 / (127 * 127 * np.sqrt(9 * c))
    mult, shift = zip(*(quantize_multiplier(r) for r in real), strict=True)
    return WinogradConv(g, rng.integers(-20000, 20000, o), np.array(mult), np.array(shift),
                        zp, -5)


def random_accuracy(seed: int = 0, headrooms=HEADROOMS) -> list[dict]:
    """Random layers, calibrated on 64 samples and measured on 8 others, per headroom."""
    rng = np.random.default_rng(seed)
    out = []
    for c, o, hw in ((16, 16, 8), (64, 64, 8), (256, 64, 6)):
        for relu in (True, False):
            zp = -128 if relu else 0
            wc = _random_layer(rng, c, o, zp)
            floor = zp + 20

            def inputs(n, relu=relu, c=c, hw=hw, floor=floor):
                a = rng.integers(-128, 128, (n, c, hw, hw))
                return np.maximum(a, floor) if relu else a
            cal, a = inputs(64), inputs(8)
            for h in headrooms:
                wc.calibrate(cal, h)
                y, res = wc.run(a)
                row = {"c": c, "o": o, "hw": hw, "inputs": "relu" if relu else "signed",
                       "headroom": h, "saturated": _saturated(res),
                       **_steps(y, wc.im2col(a), wc.output_zero_point)}
                out.append(row)
                print(f"  random {c}->{o} @{hw} {row['inputs']} headroom {h}: equal "
                      f"{row['equal']:.3f}, within 1 {row['within_1']:.3f}, max "
                      f"{row['max_steps']}, cosine {row['cosine']:.5f}, saturated "
                      f"{row['saturated']:.4f}", flush=True)
    return out


def _saturated(results) -> float:
    """Fraction of the engine's product codes at −128 or 127 (clipped or at the edge)."""
    m = np.stack([np.asarray(r["output"]) for r in results])
    return float(np.mean((m == -128) | (m == 127)))


def _walk(qg, q, wino=None):
    """The int8 graph on golden, convolutions in ``wino`` as Winograd; returns the
    output and each layer's input."""
    engine, cfg = backend("golden"), SystolicConfig()
    values, seen = {qg.graph.input_name: q}, {}
    for layer in qg.layers:
        x = values[layer.inputs[0]]
        seen[layer.name] = x
        if layer.kind == "gemm" and wino and layer.name in wino:
            values[layer.output] = wino[layer.name].run(x)[0]
        elif layer.kind == "gemm":
            values[layer.output] = _gemm_layer(layer, x, cfg, engine, None)[0]
        else:
            values[layer.output] = _host_layer(layer, values)
    return values[qg.output], seen


def digits_cnn() -> dict:
    """The digits CNN with both 3×3 convolutions on Winograd against im2col."""
    xtr, ytr, xte, yte = load_digits_split()
    xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    qg = quantize_graph(train_digits_cnn(xtr, ytr), xtr[:500])
    out_ref, seen_te = _walk(qg, qg.quantize_input(xte))
    check = run_graph(qg, xte, "golden").output
    assert np.array_equal(out_ref, check), "the walk differs from run_graph"
    _, seen_cal = _walk(qg, qg.quantize_input(xtr[:500]))
    convs = [la for la in qg.layers if la.op == "Conv2d"]
    acc_ref = float(np.mean(out_ref.argmax(1) == yte))
    res = {"test_images": len(yte), "calibration_images": 500, "accuracy_im2col": acc_ref,
           "headrooms": {}}
    for h in HEADROOMS:
        wino = {la.name: WinogradConv.from_layer(la).calibrate(seen_cal[la.name], h)
                for la in convs}
        layers = {}
        for la in convs:
            wc, a = wino[la.name], seen_te[la.name]
            ref = _gemm_layer(la, a, SystolicConfig(), backend("golden"), None)[0]
            assert np.array_equal(ref, wc.im2col(a)), "im2col reference differs"
            y, engine = wc.run(a)
            layers[la.name] = {"c": int(a.shape[1]), "o": int(wc.g.shape[0]),
                               "hw": int(a.shape[2]), "saturated": _saturated(engine),
                               **_steps(y, ref, wc.output_zero_point)}
        out_w, _ = _walk(qg, qg.quantize_input(xte), wino)
        acc_w = float(np.mean(out_w.argmax(1) == yte))
        res["headrooms"][str(h)] = {
            "layers": layers, "accuracy_winograd": acc_w,
            "predictions_agree": float(np.mean(out_ref.argmax(1) == out_w.argmax(1)))}
        print(f"  digits CNN headroom {h}: accuracy im2col {acc_ref:.4f}, Winograd "
              f"{acc_w:.4f}; " + "; ".join(f"{k} equal {v['equal']:.3f} within 1 "
                                           f"{v['within_1']:.3f} max {v['max_steps']}"
                                           for k, v in layers.items()), flush=True)
    return res


def _engine_cycles(run) -> dict:
    return {r["name"]: r["cycles"] for r in run.layers if r["where"] == "engine"}


def digits_images(out_dir, rtl: bool = True) -> dict:
    """The digits CNN as graph images, im2col and Winograd, through the graph runtime."""
    xtr, ytr, xte, yte = load_digits_split()
    xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    cg = compress_graph(train_digits_cnn(xtr, ytr), bits=8)
    qg = quantize_graph(cg.graph, xtr[:500])
    base = PRESETS["8x8"].replace(act_lut=True)
    res, ref = {"test_images": len(yte), "calibration_images": 500, "rtl_array": "8x8"}, None
    # conv1 has one input channel (K = 1 fills one array row): conv2 alone is the fastest.
    for name, headroom, names in (("im2col", None, None), ("winograd", 1.0, None),
                                  ("winograd_1.25", 1.25, None),
                                  ("winograd_conv2", 1.0, ["conv2"])):
        q = qg if headroom is None else add_winograd(qg, xtr[:500], names, headroom)
        folder = Path(out_dir) / "winograd_images" / name
        write_graph_image(cg, q, graph_config(q, 8, 8), folder, force=True)
        image = load_image(folder)
        run = run_graph(image.qgraph, xte, "golden", config=image.config)
        pred = run.output.argmax(1)
        ref = pred if ref is None else ref
        row = {"headroom": headroom, "winograd_layers": list(image.qgraph.winograd),
               "accuracy": float(np.mean(pred == yte)),
               "predictions_agree_im2col": float(np.mean(pred == ref)),
               "image_bytes": image.image_bytes, "model_cycles_360": run.cycles,
               "model_layer_cycles_360": _engine_cycles(run)}
        if rtl and headroom != 1.25:
            assert plan_config(image.qgraph, 1, base=base) == base
            gold = run_graph(image.qgraph, xte[:1], "golden", config=base)
            meas = run_graph(image.qgraph, xte[:1], "rtl", config=base)
            row["rtl_one_image"] = {
                "words_equal": bool(np.array_equal(meas.output, gold.output)),
                "cycles": meas.cycles, "model_cycles": gold.cycles,
                "layer_cycles": _engine_cycles(meas), "model_layer_cycles": _engine_cycles(gold)}
        res[name] = row
        print(f"  digits CNN image {name}: accuracy {row['accuracy']:.4f}, agree "
              f"{row['predictions_agree_im2col']:.4f}, model cycles (360) {run.cycles}"
              + (f", RTL one image {row['rtl_one_image']['cycles']} cycles (model "
                 f"{row['rtl_one_image']['model_cycles']}), words equal "
                 f"{row['rtl_one_image']['words_equal']}" if "rtl_one_image" in row else ""),
              flush=True)
    return res


def rtl_check(seed: int = 5) -> dict:
    """64 → 64 channels at 8×8 on the 8×8 RTL: both schedules, one simulation."""
    rng = np.random.default_rng(seed)
    wc = _random_layer(rng, 64, 64, -128)
    a = np.maximum(rng.integers(-128, 128, (1, 64, 8, 8)), -128 + 20)
    wc.calibrate(a)
    wjobs, grid, out = wc.jobs(a)
    jobs = [GemmJob(**j.arrays()) for j in wjobs]
    cols = host_ops.im2col(a, (3, 3), (1, 1), wc.pads, wc.input_zero_point)
    jobs.append(GemmJob(cols, wc.g.reshape(64, -1).T, wc.bias, wc.multiplier, wc.shift,
                        wc.input_zero_point, wc.output_zero_point))
    cfg = SystolicConfig.fit([j.shape for j in jobs], rows=8, cols=8)
    start = time.monotonic()
    runs = run_jobs(cfg, jobs)
    wrong = [int((r.output != j.golden(cfg.rounding)).sum()) for j, r in zip(jobs, runs,
                                                                            strict=True)]
    model = [model_cycles(cfg, *j.shape) for j in jobs]
    y = wc.finish(np.stack([np.asarray(r.output, np.int64) for r in runs[:16]]), grid, out)
    ref = runs[16].output.reshape(8, 8, 64).transpose(2, 0, 1)[None]
    res = {"array": "8x8", "config": {d: getattr(cfg, d) for d in SystolicConfig.DEPTHS},
           "winograd_gemm": list(jobs[0].shape), "im2col_gemm": list(jobs[16].shape),
           "winograd_rtl_cycles": sum(r.cycles for r in runs[:16]),
           "winograd_model_cycles": sum(model[:16]),
           "im2col_rtl_cycles": runs[16].cycles, "im2col_model_cycles": model[16],
           "wrong_words": sum(wrong), "words": sum(j.shape[0] * j.shape[2] for j in jobs),
           "versus_im2col": _steps(y, ref, wc.output_zero_point),
           "seconds": round(time.monotonic() - start)}
    res["cycles_ratio_rtl"] = res["im2col_rtl_cycles"] / res["winograd_rtl_cycles"]
    print(f"  RTL 8x8: Winograd 16x {res['winograd_gemm']} {res['winograd_rtl_cycles']} "
          f"cycles (model {res['winograd_model_cycles']}), im2col {res['im2col_gemm']} "
          f"{res['im2col_rtl_cycles']} (model {res['im2col_model_cycles']}), "
          f"{res['wrong_words']} of {res['words']} words wrong", flush=True)
    return res


def main(out_dir):
    started = provenance()
    start = time.monotonic()
    figures = {"array": f"{ARRAY}x{ARRAY}", "vgg16": vgg_costs()}
    for r in figures["vgg16"]:
        print(f"  VGG-16 {r['layer']}: im2col {r['im2col_cycles']} cycles, Winograd "
              f"{r['winograd_cycles']} ({r['cycles_ratio']:.2f}x), MACs "
              f"{r['macs_ratio']:.2f}x", flush=True)
    im, wi = (sum(r[k] for r in figures["vgg16"]) for k in ("im2col_cycles",
                                                             "winograd_cycles"))
    figures["vgg16_total"] = {"im2col_cycles": im, "winograd_cycles": wi,
                              "cycles_ratio": im / wi,
                              "macs_ratio": sum(r["im2col_macs"] for r in figures["vgg16"])
                              / sum(r["winograd_macs"] for r in figures["vgg16"]),
                              # Winograd only where it is faster (not conv1_1, C=3).
                              "cycles_ratio_where_faster": im / sum(
                                  min(r["im2col_cycles"], r["winograd_cycles"])
                                  for r in figures["vgg16"]),
                              "host_adds": sum(r["host_input_adds"] + r["host_output_adds"]
                                               for r in figures["vgg16"])}
    figures["random"] = random_accuracy()
    figures["digits_cnn"] = digits_cnn()
    figures["digits_images"] = digits_images(
        out_dir, rtl=os.environ.get("NNACCEL_WINOGRAD_RTL", "1") != "0")
    if os.environ.get("NNACCEL_WINOGRAD_RTL", "1") != "0":
        figures["rtl"] = rtl_check()
    figures = {"measured": {**started, "bench_seconds": round(time.monotonic() - start)},
               **figures}
    text = json.dumps(figures, indent=1, ensure_ascii=False) + "\n"
    (Path(out_dir) / "winograd.json").write_text(text)
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / "winograd.json").write_text(text)
    return figures["vgg16_total"]
