"""Bench ``cnn_methods``: compression methods side by side on the digits CNN.

The digits CNN (:func:`quantize.train_cnn.train_digits_cnn`: 3×3×16 conv → pool → 3×3×32
conv → pool → FC 10, 6,032 weights) trained on the 1,437 training images, then:

* **prune+share**: :func:`quantize.compress_graph.compress_graph` at the demo's per-layer
  sparsities and bits (conv1 50 % / 5 bits, conv2 70 % / 4, fc 80 % / 4), four pruning
  steps with masked retraining, k-means sharing;
* **ternary** / **binary**: every Conv2d and Linear weight (as its ``O × rest`` matrix)
  quantized per layer by :mod:`quantize.ternary`'s rules (TTQ threshold 0.05 max|v|;
  binary sign × per-layer scale), post-training and trained with the straight-through
  estimator through :func:`quantize.train_cnn.gradients` (the same per-layer state and
  gradients as the MLP's :func:`quantize.ternary.quantize_mlp`), counted at their true bits
  (2-bit or 1-bit codes, :func:`quantize.storage.layer_storage` ``dense=True``);
* **tucker2-rAxB**: conv2 factored by :func:`quantize.tucker.tucker_graph` (1×1 → 3×3 →
  1×1) at output rank A, input rank B (HOSVD + HOOI), fine-tuned, then shared (conv1 5
  bits, the rest 4) with the codebooks fine-tuned; **+prune** also prunes the factors,
  conv1 and fc, with masked retraining;
* **tucker2-chosen**: conv2's ranks chosen on a validation split carved from the training
  images (20 %, stratified, seed 0: 288 images) by :func:`quantize.tucker.choose_ranks`:
  a CNN trained on the other 1,149 images, each candidate of
  :func:`quantize.tucker.rank_grid` factored and fine-tuned :data:`SCAN_EPOCHS` epochs on
  them, the fewest weights within :data:`BUDGET` of the unfactored CNN's validation accuracy
  kept. The chosen ranks then go through the Tucker-2 pipeline (with and without pruning)
  on that CNN, scored on the validation and the test images (int8 golden), and, for the
  table row, on the CNN trained on all 1,437 training images, scored on the test images.
  conv1 (16 × 1 × 3 × 3, 144 weights) is not factored: its input rank is 1 and three
  convolutions save at most a few dozen weights;
* **+distill**: the same training with the float CNN's softened outputs mixed into the
  targets (Hinton et al.: T = 4, weight 0.5, :func:`quantize.train_cnn.teacher`), in the
  STE training of ternary and binary and in every fine-tuning, retraining and codebook
  step of Tucker-2 + pruning.

For each: the paper's accounting (codebook + relative-index bits, Huffman and plain,
:mod:`quantize.storage`) against the **original** CNN's 32-bit dense weights, the real
bytes of its systolic graph image (:func:`quantize.graph_image.write_graph_image`: int8
weights, biases and requantization; the systolic engine stores weights dense, so only a
factorization shrinks them), the float test accuracy, and the int8 golden test accuracy
over the 360 test images (TFLite-style per-channel int8, calibrated on 500 training images,
:func:`quantize.graph_run.run_graph`). :func:`plot` draws accuracy against both
compressions, ``build/bench/cnn_methods.png``, copied beside the record.
The Tucker-2 (16, 8) graph with pruning and the chosen-rank graph with pruning and
distillation also run on the 8×8 systolic RTL (Verilator) over every test image under random
stalls, every output word compared with golden.

``python -m sim.bench.cnn_methods`` writes ``build/bench/cnn_methods.json`` and the
committed record ``docs/results/cnn_methods.json``, rendered by :mod:`sim.bench.results`.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from hw.systolic.config import PRESETS
from quantize.compress_graph import compress_graph, weight_nodes
from quantize.digits import load_digits_split
from quantize.graph import Graph, Node
from quantize.graph_image import write_graph_image
from quantize.graph_quant import quantize_graph
from quantize.graph_run import plan_config, run_graph
from quantize.share import SharedLayer
from quantize.storage import DENSE_BITS, totals
from quantize.ternary import Adam, QuantSpec, _init_layer, _storage
from quantize.train import _batches
from quantize.train_cnn import accuracy, gradients, teacher, train, train_digits_cnn
from quantize.tucker import SUFFIXES, choose_ranks, rank_grid, tucker_graph

from ..rtl import BUILD_ROOT
from .methods import accuracy_plot
from .results import REPO, RESULTS_MD, provenance

__all__ = ["RECORD", "PLOT", "measure", "plot", "main"]

RECORD = REPO / "docs" / "results" / "cnn_methods.json"
#: The accuracy-against-compression figure, committed beside the record.
PLOT = REPO / "docs" / "results" / "cnn_methods.png"
#: Per-layer pruning and codebook bits of the demo's digits CNN (sim.demo).
SPARSITY = {"conv1": 0.5, "conv2": 0.7, "fc": 0.8}
BITS = {"conv1": 5, "conv2": 4, "fc": 4}
#: conv2 (32 × 16 × 3 × 3) at (output, input) ranks: (16, 8) holds 1,792 weights for
#: 4,608, (24, 12) 3,168, (8, 4) 448.
TUCKER_RANKS = ((24, 12), (16, 8), (8, 4))
TUCKER_HOOI = 3
TUCKER_EPOCHS = 20
#: Centroid fine-tuning after sharing the Tucker graphs (trained quantization).
CODEBOOK_EPOCHS = 5
TUCKER_SPARSITY = {"conv1": 0.5, "conv2.in": 0.3, "conv2.core": 0.6, "conv2.out": 0.5,
                   "fc": 0.8}
#: The Tucker-2 (+ pruning) graph run on the RTL, on this engine, with these stalls.
RTL_RANKS = (16, 8)
RTL_BASE = PRESETS["8x8"].replace(act_lut=True)
RTL_STALL = 0.25
QUANT_EPOCHS = 30
CALIBRATION = 500
#: Validation split for the rank choice: fraction of the training images, seed.
VALIDATION, VALIDATION_SEED = 0.2, 0
#: Allowed validation accuracy loss of a rank candidate (half a point).
BUDGET = 0.005
SCAN_EPOCHS = 8
#: Distillation: softmax temperature and weight of the soft term.
DISTILL_T, DISTILL_WEIGHT = 4.0, 0.5


def _matrix(w):
    return w.reshape(w.shape[0], -1)


def _with(graph: Graph, weights: dict, biases: dict) -> Graph:
    nodes = [Node(n.name, n.op, n.inputs, n.output, n.attrs,
                  {"weight": weights[n.name].reshape(n.weight.shape), "bias": biases[n.name]})
             if n.name in weights else n for n in graph.nodes]
    return Graph(graph.input_name, graph.input_shape, nodes)


def quantize_cnn(graph: Graph, spec: QuantSpec, x=None, y=None,
                 distill=None) -> tuple[Graph, list, dict]:
    """Ternary or binary weights for every weight node of ``graph``:
    ``(graph, storage rows, log)``; trained (STE) when ``x``/``y`` are given, towards
    ``distill``'s softened teacher outputs too when it is given."""
    nodes = weight_nodes(graph)
    states = {n.name: _init_layer(_matrix(n.weight), spec, None) for n in nodes}
    biases = {n.name: n.bias.astype(np.float32).copy() for n in nodes}
    shapes = {n.name: n.weight.shape for n in nodes}
    log = {"trained": x is not None}

    def current():
        return {k: st.quantize(spec) for k, st in states.items()}

    if x is not None:
        ternary = spec.mode == "ternary"
        params, lrs = [], []
        for k, st in states.items():
            params += [st.latent, st.hi, biases[k]] + ([st.lo] if ternary else [])
            lrs += [spec.lr, spec.scale_lr, spec.lr] + ([spec.scale_lr] if ternary else [])
        opt = Adam(params, lrs)
        rng = np.random.default_rng(spec.seed)
        with threadpool_limits(1):
            for _ in range(spec.epochs):
                for idx in _batches(len(x), spec.batch, rng):
                    w = current()
                    soft = (() if distill is None else
                            (distill.logits[idx], distill.temperature, distill.weight))
                    _, grads = gradients(graph, x[idx], y[idx],
                                         {k: [w[k].reshape(shapes[k]), biases[k]]
                                          for k in states}, *soft)
                    flat = []
                    for k, st in states.items():
                        dw, db = grads[k]
                        latent, dlo, dhi = st.backward(_matrix(dw).astype(np.float64), spec)
                        flat += [latent, dhi, db] + ([dlo] if ternary else [])
                    opt.step(params, flat)
                    for st in states.values():
                        np.clip(st.latent, -st.clip, st.clip, out=st.latent)
                        np.maximum(st.lo, 1e-3 * st.clip if ternary else 0.0, out=st.lo)
                        np.maximum(st.hi, 1e-3 * st.clip, out=st.hi)
        log["epochs"] = spec.epochs
    w = current()
    rows = []
    for k, st in states.items():
        lo = st.lo[0] if spec.mode == "ternary" else st.hi[0]
        s = SharedLayer(np.array([0, -lo, st.hi[0], 0], np.float32), st.index.copy(),
                        st.index != 0, 2, True)
        rows.append(_storage(k, s, spec))
        log[k] = {"density": float(np.mean(st.index != 0)), "hi": float(st.hi[0]),
                  "lo": float(lo)}
    return _with(graph, w, biases), rows, log


def _int8_accuracy(graph: Graph, xtr, xte, yte) -> float:
    qg = quantize_graph(graph, xtr[:CALIBRATION])
    return float(np.mean(run_graph(qg, xte, "golden").float_output.argmax(1) == yte))


def _image_bytes(graph: Graph, rows, xtr) -> int:
    """Bytes of the systolic graph image of ``graph`` (int8 weights, biases,
    requantization), written to a scratch folder."""
    qg = quantize_graph(graph, xtr[:CALIBRATION])
    cfg = plan_config(qg, 1, base=RTL_BASE)
    ops = {n.name: n.op for n in weight_nodes(graph)}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_graph_image(SimpleNamespace(storage=rows, ops=ops, log={}), qg, cfg,
                                     Path(tmp) / "image")
    return int(manifest["compression"]["image_bytes"])


def _row(description, graph, rows, original_bits, data, extra=None) -> dict:
    xtr, _, xte, yte = data
    t = totals(rows)
    image = _image_bytes(graph, rows, xtr)
    row = {"description": description,
           "layers": {r.name: {"shape": list(r.shape), "kept": r.kept, "bits": r.bits,
                               "huffman_bits": r.huffman_bits} for r in rows},
           "weights": t["weights"], "kept": t["kept"],
           "ratio_huffman": original_bits / t["huffman_bits"],
           "ratio_pq": original_bits / t["pq_bits"],
           "image_bytes": image, "image_ratio": original_bits / 8 / image,
           "float_accuracy": accuracy(graph, xte, yte),
           "int8_golden_accuracy": _int8_accuracy(graph, xtr, xte, yte), **(extra or {})}
    brief = {k: v for k, v in row.items()
             if k not in ("layers", "log", "factors", "selection")}
    print(f"[cnn_methods] {json.dumps(brief)}", flush=True)
    return row


def _tucker(graph, data, ranks, sparsity, epochs=TUCKER_EPOCHS, distill=None):
    """conv2 factored, fine-tuned ``epochs``, then (pruned and retrained and) shared, the
    codebooks fine-tuned; every training step towards ``distill`` too when given."""
    xtr, ytr = data[0], data[1]
    tg, info = tucker_graph(graph, {"conv2": ranks}, hooi=TUCKER_HOOI)
    factored_acc = accuracy(tg, data[2], data[3])
    tg = train(tg, xtr, ytr, epochs=epochs, lr=1e-3, seed=1, distill=distill)
    bits = {**BITS, **{"conv2" + s: BITS["conv2"] for s in SUFFIXES}}
    bits.pop("conv2")
    cg = compress_graph(tg, sparsity, bits, xtr, ytr, finetune_epochs=CODEBOOK_EPOCHS,
                        distill=distill)
    for v in info.values():
        v["relative_error"] = float(np.sqrt(v["error2"] / v["energy2"]))
    return cg, {"factors": info, "factored_float_accuracy": factored_acc,
                "finetuned_float_accuracy": accuracy(tg, data[2], data[3]),
                "finetune_epochs": epochs, "codebook_epochs": CODEBOOK_EPOCHS}


def _rtl(graph: Graph, data) -> dict:
    """The int8 graph on the 8×8 systolic RTL (Verilator) over every test image with random
    stalls, against its golden run, every output word."""
    xtr, _, xte, yte = data
    qg = quantize_graph(graph, xtr[:CALIBRATION])
    cfg = plan_config(qg, len(xte), base=RTL_BASE)
    golden = run_graph(qg, xte, "golden", config=cfg)
    rtl = run_graph(qg, xte, "rtl", config=cfg, stall=RTL_STALL, seed=2)
    out = {"array": f"{cfg.rows}x{cfg.cols}", "stall": RTL_STALL,
           "words": int(rtl.output.size),
           "wrong_words": int(np.count_nonzero(rtl.output != golden.output)),
           "accuracy": float(np.mean(rtl.float_output.argmax(1) == yte)),
           "cycles": int(sum(r["cycles"] for r in rtl.layers if r["cycles"]))}
    print(f"[cnn_methods] RTL: {out}", flush=True)
    return out


def _split(x, y):
    """``(x_fit, y_fit, x_val, y_val)``: :data:`VALIDATION` of the training images held
    out, stratified, seeded."""
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=VALIDATION,
                                                  random_state=VALIDATION_SEED, stratify=y)
    return x_fit, y_fit, x_val, y_val


def _chosen_ranks(data) -> dict:
    """conv2's ranks chosen on the validation split (module docstring), and the chosen
    pipeline's validation and test accuracy on the CNN that never saw the validation
    images."""
    xtr, ytr, xte, yte = data
    x_fit, y_fit, x_val, y_val = _split(xtr, ytr)
    fit_graph = train_digits_cnn(x_fit.reshape(len(x_fit), -1), y_fit)
    sel = choose_ranks(fit_graph, "conv2", x_fit, y_fit, x_val, y_val, rank_grid(
        (32, 16, 3, 3)), budget=BUDGET, epochs=SCAN_EPOCHS, hooi=TUCKER_HOOI, seed=1)
    print(f"[cnn_methods] rank scan: chosen {sel['ranks']}, reference "
          f"{sel['reference_accuracy']:.4f}, " + ", ".join(
              f"{tuple(r['ranks'])} {r['validation_accuracy']:.4f}" for r in sel["scan"]),
          flush=True)
    sel.update(fit_images=int(len(x_fit)), budget=BUDGET, scan_epochs=SCAN_EPOCHS,
               reference_int8_validation_accuracy=_int8_accuracy(fit_graph, x_fit, x_val,
                                                                 y_val),
               pipelines={})
    if sel["ranks"] is None:
        return sel
    fit_data = (x_fit, y_fit, x_val, y_val)
    for suffix, sparsity in (("", None), ("+prune", TUCKER_SPARSITY)):
        cg, _ = _tucker(fit_graph, fit_data, sel["ranks"], sparsity)
        sel["pipelines"]["tucker2-chosen" + suffix] = {
            "validation_float_accuracy": accuracy(cg.graph, x_val, y_val),
            "validation_int8_golden_accuracy": _int8_accuracy(cg.graph, x_fit, x_val, y_val),
            "test_int8_golden_accuracy": _int8_accuracy(cg.graph, x_fit, xte, yte)}
    print(f"[cnn_methods] chosen pipelines on the fitting CNN: {sel['pipelines']}", flush=True)
    return sel


def measure(rtl: bool = True) -> dict:
    """Train the digits CNN and run every method; the figures as a dict. With ``rtl`` the
    Tucker-2 graph at :data:`RTL_RANKS` with pruning and the chosen-rank one with pruning and
    distillation also run on the RTL."""
    xtr, ytr, xte, yte = load_digits_split()
    data = (xtr.reshape(-1, 1, 8, 8), ytr, xte.reshape(-1, 1, 8, 8), yte)
    graph = train_digits_cnn(xtr, ytr)
    original = sum(n.weight.size for n in weight_nodes(graph)) * DENSE_BITS
    soft = teacher(graph, data[0], DISTILL_T, DISTILL_WEIGHT)
    res = {"accounting": "ratio_huffman / ratio_pq: Deep Compression (codebook index + 5-bit "
                         "relative index, or a plain code where smaller; codebooks at 32 bits) "
                         "against the original CNN's 32-bit dense weights; image_bytes: the "
                         "systolic graph image (int8 weights stored dense, biases, "
                         "requantization), image_ratio against the 32-bit dense weights",
           "model": {"layers": {n.name: list(n.weight.shape) for n in weight_nodes(graph)},
                     "weights": original // DENSE_BITS, "train_images": int(len(xtr)),
                     "test_images": int(len(xte)),
                     "float_accuracy": accuracy(graph, data[2], yte),
                     "int8_golden_accuracy": _int8_accuracy(graph, data[0], data[2], yte),
                     "image_bytes": _image_bytes(graph, [], data[0])},
           "distillation": {"temperature": DISTILL_T, "weight": DISTILL_WEIGHT,
                            "teacher": "the float CNN above, on the training images"},
           "methods": {}}
    m = res["methods"]
    cg = compress_graph(graph, SPARSITY, BITS, data[0], ytr)
    m["prune+share"] = _row("pruning conv1 50 %, conv2 70 %, fc 80 %; 5/4/4-bit sharing; "
                            "retrained", cg.graph, cg.storage, original, data)
    for mode in ("ternary", "binary"):
        for trained, distill in ((False, None), (True, None), (True, soft)):
            spec = QuantSpec(mode, epochs=QUANT_EPOCHS)
            g, rows, log = quantize_cnn(graph, spec, *((data[0], ytr) if trained else ()),
                                        distill=distill)
            rule = ("TTQ, threshold 0.05 max|w|" if mode == "ternary"
                    else "binary, per-layer scale")
            what = (f"{rule}, every layer, "
                    + (f"STE-trained {QUANT_EPOCHS} epochs" if trained else "post-training")
                    + (f", distilled (T = {DISTILL_T:g}, weight {DISTILL_WEIGHT:g})"
                       if distill else ""))
            plain = sum(r.weights * (2 if mode == "ternary" else 1) + 2 * DENSE_BITS
                        for r in rows)
            name = mode + ("" if trained else "-post") + ("+distill" if distill else "")
            m[name] = _row(what, g, rows, original, data,
                           {"ratio_plain_code": original / plain, "log": log,
                            "distilled": distill is not None})
    for r in TUCKER_RANKS:
        name = f"tucker2-r{r[0]}x{r[1]}"
        head = (f"Tucker-2 conv2 at ranks ({r[0]}, {r[1]}) (HOSVD + {TUCKER_HOOI} HOOI), "
                f"fine-tuned {TUCKER_EPOCHS} epochs")
        cg, extra = _tucker(graph, data, r, None)
        m[name] = _row(f"{head}; 5/4-bit sharing, codebooks fine-tuned", cg.graph,
                       cg.storage, original, data, extra)
        cg, extra = _tucker(graph, data, r, TUCKER_SPARSITY)
        m[name + "+prune"] = row = _row(f"{head}; {_PRUNED}", cg.graph, cg.storage, original,
                                        data, extra)
        if rtl and r == RTL_RANKS:
            row["rtl"] = _rtl(cg.graph, data)
        if r == RTL_RANKS:
            cg, extra = _tucker(graph, data, r, TUCKER_SPARSITY, distill=soft)
            m[name + "+prune+distill"] = _row(
                f"{head}; {_PRUNED}; every step distilled", cg.graph, cg.storage, original,
                data, {**extra, "distilled": True})
    sel = _chosen_ranks(data)
    if sel["ranks"] is not None:
        r = sel["ranks"]
        head = (f"Tucker-2 conv2 at ranks ({r[0]}, {r[1]}) chosen on validation (the fewest "
                f"weights within {100 * BUDGET:g} point of the unfactored CNN on "
                f"{sel['validation_images']} held-out training images), fine-tuned "
                f"{TUCKER_EPOCHS} epochs")
        for suffix, sparsity, distill, how in (
                ("", None, None, "5/4-bit sharing, codebooks fine-tuned"),
                ("+prune", TUCKER_SPARSITY, None, _PRUNED),
                ("+prune+distill", TUCKER_SPARSITY, soft, _PRUNED + "; every step distilled")):
            cg, extra = _tucker(graph, data, r, sparsity, distill=distill)
            m["tucker2-chosen" + suffix] = row = _row(
                f"{head}; {how}", cg.graph, cg.storage, original, data,
                {**extra, "distilled": distill is not None})
            if rtl and suffix == "+prune+distill":
                row["rtl"] = _rtl(cg.graph, data)
    res["rank_selection"] = sel
    return res


_PRUNED = ("factors pruned 30/60/50 % (in/core/out), conv1 50 %, fc 80 %, retrained; 5/4-bit "
           "sharing, codebooks fine-tuned")


def plot(res: dict, path: Path) -> Path:
    """Test accuracy (int8 golden) against the paper's ratio and against the image bytes,
    one point per method, distilled rows hollow."""
    points = [{"name": k, "paper": r["ratio_huffman"], "bytes": r["image_bytes"],
               "accuracy": r["int8_golden_accuracy"], "distilled": r.get("distilled", False)}
              for k, r in res["methods"].items()]
    m = res["model"]
    return accuracy_plot(points, path, "digits CNN (6,032 weights): compression methods",
                         m["int8_golden_accuracy"], m["weights"] * 4, "int8 golden")


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, started = time.monotonic(), provenance()
    res = {**measure(), "plot": PLOT.relative_to(RESULTS_MD.parent).as_posix()}
    (out_dir / "cnn_methods.json").write_text(json.dumps(res, indent=1))
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps({"measured": {**started, "bench_seconds": round(
        time.monotonic() - start)}, **res}, indent=1, ensure_ascii=False) + "\n")
    shutil.copyfile(plot(res, out_dir / "cnn_methods.png"), PLOT)
    return res


if __name__ == "__main__":
    main(BUILD_ROOT / "bench")
